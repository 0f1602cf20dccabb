"""`orderflow process-review --week YYYY-MM-DD`: build the week's process review pack now
(the weekly Schedule's workflow, run on demand through Temporal), then print its summary
or write its HTML page."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orderflow.settings import get_settings

console = Console()


def process_review(
    week: Annotated[
        str, typer.Option("--week", help="The week's first day (YYYY-MM-DD, from 00:00 UTC).")
    ],
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML page here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pack as JSON.")] = False,
) -> None:
    """Build (or rebuild) the weekly process review pack of a week: per step its KPIs
    against last week and the 4-week median, SLA breaches, process issues and changes;
    stored, and mailed to the department leads once."""
    from db.pool import connect
    from db.repositories import process_review as packs
    from orderflow.temporal_client import connect_temporal
    from starter.process_review_schedule import build_review_now

    try:
        day = date.fromisoformat(week)
    except ValueError as exc:
        raise typer.BadParameter(f"{week!r} is not a day (YYYY-MM-DD)") from exc
    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")

    async def build() -> Any:
        client = await connect_temporal(settings)
        await build_review_now(client, settings, day)
        conn = await connect(settings.database_url or "")
        try:
            return await packs.pack_of(conn, day)
        finally:
            await conn.close()

    row = asyncio.run(build())
    pack = row["pack"]
    if html is not None:
        html.write_text(row["html"], encoding="utf-8")
    if as_json:
        print(json.dumps(pack, indent=2))
        return
    table = Table(
        title=f"process review {pack['week_start'][:10]} – {pack['week_end'][:10]}: "
        f"{pack['orders_this_week']} orders"
    )
    for column in ("step", "orders", "p50 this / last / 4-wk median", "SLA breaches"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for column in ("open issues", "raised", "resolved", "changes"):
        table.add_column(column, justify="right")
    for s in pack["steps"]:
        p50 = next((f for f in s["figures"] if f["key"].endswith("_p50")), None)
        shown = "—"
        if p50 is not None:
            shown = " / ".join(
                "—" if v is None else f"{v:.0f} s"
                for v in (p50["this_week"], p50["last_week"], p50["median_4_weeks"])
            )
        table.add_row(
            f"{s['step']}. {s['name']}",
            str(s["orders"]),
            shown,
            "—" if s["sla_breaches"] is None else str(s["sla_breaches"]),
            str(s["open_issues"]),
            str(len(s["issues_raised"])),
            str(len(s["issues_resolved"])),
            str(len(s["changes"])),
        )
    console.print(table)
    if html is not None:
        console.print(f"HTML page written to {html}")
