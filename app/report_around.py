"""`orderflow report --around CHANGE_ID`: the KPIs of the steps a process change touches, in
equal windows before and after it, with each window's order count and a plain warning
when a window is too small to conclude anything (policies/process_around.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from app.report import build_report, format_value
from db.repositories import process_changes
from policies.kpi import KpiReport
from policies.process_around import (
    STEP_NAMES,
    AroundRow,
    Windows,
    around_rows,
    around_windows,
    window_warnings,
)


class AroundReport(BaseModel):
    change: dict[str, Any]
    windows: Windows
    before_orders: int
    after_orders: int
    rows: list[AroundRow]
    warnings: list[str]
    before: KpiReport
    after: KpiReport


async def build_around(
    conn: asyncpg.Connection,
    change_id: int,
    *,
    window: timedelta,
    minimum_orders: int,
    now: datetime | None = None,
) -> AroundReport:
    """LookupError for an unknown change; ValueError when nothing follows it yet."""
    row = await process_changes.change(conn, change_id)
    if row is None:
        raise LookupError(f"process change {change_id} not found")
    change = {**dict(row), "steps": list(row["steps"])}
    at = now or await conn.fetchval("SELECT now()")
    windows = around_windows(change["changed_at"], at, window)
    before = await build_report(conn, windows.before_start, windows.change_at)
    after = await build_report(conn, windows.change_at, windows.after_end)
    return AroundReport(
        change=change,
        windows=windows,
        before_orders=before.orders,
        after_orders=after.orders,
        rows=around_rows(before, after, change["steps"]),
        warnings=window_warnings(before, after, change["steps"], minimum_orders),
        before=before,
        after=after,
    )


def _change_text(row: AroundRow) -> str:
    if row.change is None:
        return "—"
    if row.kind == "rate":
        return f"{row.change * 100:+.1f} pp"
    if row.kind == "seconds":
        sign = "+" if row.change >= 0 else "-"
        return sign + format_value("seconds", abs(row.change))
    return f"{row.change:+g}"


def print_around(console: Console, report: AroundReport) -> None:
    c, w = report.change, report.windows
    console.print(
        f"[bold]change {c['id']}[/]: {c['setting']} {c['old_value']!r} → {c['new_value']!r} "
        f"at {c['changed_at']:%Y-%m-%d %H:%M} UTC by {c['changed_by']} — {c['reason']}"
    )
    table = Table(
        title=f"before {w.before_start:%Y-%m-%d %H:%M} – {w.change_at:%Y-%m-%d %H:%M} "
        f"({report.before_orders} orders)  vs  after – {w.after_end:%Y-%m-%d %H:%M} "
        f"({report.after_orders} orders)"
    )
    for column in ("step", "KPI", "before", "orders", "after", "orders ", "change"):
        table.add_column(column, justify="left" if column in ("step", "KPI") else "right")
    for row in report.rows:
        step = f"{row.step} {STEP_NAMES.get(row.step or 0, '')}" if row.step else ""
        table.add_row(
            step,
            row.label,
            format_value(row.kind, row.before),
            str(row.before_orders),
            format_value(row.kind, row.after),
            str(row.after_orders),
            _change_text(row),
        )
    console.print(table)
    if w.shortened:
        console.print(
            "The change is recent: both windows are as long as the time since it "
            f"({w.after_end - w.change_at})."
        )
    for warning in report.warnings:
        console.print(f"[yellow]warning: {warning}[/]")


def around_json(report: AroundReport) -> dict[str, Any]:
    return report.model_dump(mode="json", exclude={"before", "after"}) | {
        "before_report": report.before.model_dump(mode="json"),
        "after_report": report.after.model_dump(mode="json"),
    }


def run_around(
    database_url: str,
    change_id: int,
    *,
    window: timedelta,
    minimum_orders: int,
    as_json: bool,
    console: Console,
) -> int:
    """The command: print the report (table or JSON); the exit code (1: no such change, or
    nothing after it yet)."""
    import asyncio
    import json

    from db.pool import connect

    async def build() -> AroundReport:
        conn = await connect(database_url)
        try:
            return await build_around(conn, change_id, window=window, minimum_orders=minimum_orders)
        finally:
            await conn.close()

    try:
        report = asyncio.run(build())
    except (LookupError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    if as_json:
        print(json.dumps(around_json(report), indent=2))
    else:
        print_around(console, report)
    return 0
