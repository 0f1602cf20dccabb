"""The weekly process review's one effect: build the week's pack (policies/process_review.py)
from five weeks of KPIs, the week's SLA breaches, process issues and changes; store it with
the week's KPI snapshot, as JSON and as an HTML page with a chart; and mail each department's
lead once per week. Built again, the week's pack is replaced and no mail goes twice."""

from __future__ import annotations

import base64
import html
import io
from datetime import timedelta
from typing import Any

import asyncpg
from matplotlib.figure import Figure
from temporalio import activity

from db.repositories import kpi as kpi_sql
from db.repositories import notifications, process_changes, process_review
from orderflow.models.activity_names import ActivityName
from orderflow.models.process_review import WEEK, ProcessReviewResult, ReviewWeek
from orderflow.process import DEPARTMENTS, STEPS
from orderflow.settings import Settings
from policies.kpi import KpiReport, compute_kpis
from policies.process_review import ProcessReviewPack, StepFigure, build_pack


class ProcessReviewActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    @activity.defn(name=ActivityName.BUILD_PROCESS_REVIEW)
    async def build_process_review(self, week: ReviewWeek) -> ProcessReviewResult:
        start, end = week.week_start, week.week_end
        async with self._pool.acquire() as conn:
            this_week = await _kpis(conn, start, end)
            prior = [
                await _kpis(conn, start - WEEK * i, start - WEEK * (i - 1)) for i in (1, 2, 3, 4)
            ]
            issues = [dict(r) for r in await process_review.issues_of_week(conn, start, end)]
            changes = [
                {**dict(r), "steps": list(r["steps"])}
                for r in await process_changes.list_changes(
                    conn, changed_from=start, changed_to=end
                )
            ]
            pack = build_pack(
                week_start=start,
                week_end=end,
                this_week=this_week,
                prior_weeks=prior,
                sla_breaches=await process_review.sla_breaches(
                    conn, start, end, self._settings.purchase_request_sla
                ),
                issues=issues,
                open_issues=await process_review.open_issues_at(conn, end),
                changes=changes,
            )
            async with conn.transaction():
                await kpi_sql.store_snapshot(conn, start, end, this_week.model_dump(mode="json"))
                await process_review.store_pack(
                    conn, start, end, pack.model_dump(mode="json"), pack_html(pack)
                )
                notified = 0
                for dep in DEPARTMENTS:
                    notified += await notifications.notify_department(
                        conn,
                        department=dep.code,
                        key=f"process-review:{start.date().isoformat()}:{dep.code}",
                        order_id=None,
                        kind="process_review_ready",
                        context=_notice_context(pack, dep.code),
                    )
        return ProcessReviewResult(
            week_start=start,
            week_end=end,
            steps=len(pack.steps),
            issues=len(issues),
            changes=len(changes),
            notified=notified,
        )


async def _kpis(conn: asyncpg.Connection, start: Any, end: Any) -> KpiReport:
    return compute_kpis(start, end, await kpi_sql.load_inputs(conn, start, end))


def _notice_context(pack: ProcessReviewPack, department: str) -> dict[str, Any]:
    return {
        "week_start": pack.week_start.date().isoformat(),
        "week_end": pack.week_end.date().isoformat(),
        "orders": pack.orders_this_week,
        "changes": len({c["id"] for s in pack.steps for c in s.changes}),
        "steps": [
            {
                "step": s.step,
                "name": s.name,
                "open_issues": s.open_issues,
                "issues_raised": len(s.issues_raised),
                "sla_breaches": s.sla_breaches,
                "changes": len(s.changes),
            }
            for s in pack.steps
            if s.department == department
        ],
    }


# ------------------------------------------------------------------ the HTML page
def _value(figure: StepFigure, value: float | None) -> str:
    if value is None:
        return "—"
    if figure.kind == "rate":
        return f"{value:.1%}"
    if figure.kind == "seconds":
        return _duration(value)
    if figure.kind == "rating":
        return f"{value:.2f}"
    return f"{value:g}"


def _duration(seconds: float) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _chart(pack: ProcessReviewPack) -> str:
    """Base64 PNG: each step's p50 cycle time this week, last week and the 4-week median."""
    labels = [f"{s.step}. {s.name}" for s in pack.steps]
    series = []
    for name, attr in (
        ("this week", "this_week"),
        ("last week", "last_week"),
        ("4-week median", "median_4_weeks"),
    ):
        values = []
        for s in pack.steps:
            p50 = next((f for f in s.figures if f.key == f"step_{s.step}_p50"), None)
            values.append((getattr(p50, attr) if p50 else None) or 0.0)
        series.append((name, values))
    top = max((v for _, values in series for v in values), default=0.0)
    size, unit = next(
        ((s, u) for s, u in ((86400, "days"), (3600, "hours"), (60, "minutes")) if top >= 2 * s),
        (1, "seconds"),
    )
    figure = Figure(figsize=(8, max(3.0, 0.5 * len(labels))))
    axes = figure.add_subplot()
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series):
        offsets = [p + (i - (len(series) - 1) / 2) * width for p in range(len(labels))]
        axes.barh(offsets, [v / size for v in values], height=width, label=name)
    axes.set_yticks(list(range(len(labels))), labels)
    axes.invert_yaxis()
    axes.set_xlabel(unit)
    axes.set_title("Cycle time per step (p50)")
    axes.legend()
    axes.grid(axis="x", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def pack_html(pack: ProcessReviewPack) -> str:
    e = html.escape
    week = f"{pack.week_start:%Y-%m-%d} – {pack.week_end - timedelta(days=1):%Y-%m-%d}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Process review {e(week)}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;"
        "padding:.2rem .5rem;text-align:right}td:first-child,th:first-child{text-align:left}"
        "</style></head><body>",
        f"<h1>Process review: week {e(week)}</h1>",
        f"<p>{pack.orders_this_week} orders placed this week"
        + (
            f", {pack.orders_last_week} the week before"
            if pack.orders_last_week is not None
            else ""
        )
        + ".</p>",
        f'<img alt="Cycle time per step" src="data:image/png;base64,{_chart(pack)}">',
    ]
    names = {int(s.step): s.name for s in STEPS}
    for s in pack.steps:
        parts.append(f"<h2>{s.step}. {e(names[s.step])} <small>({e(s.department)})</small></h2>")
        breaches = "not counted" if s.sla_breaches is None else str(s.sla_breaches)
        parts.append(
            f"<p>{s.orders} orders passed the step; SLA breaches: {breaches}; "
            f"open process issues at the week's end: {s.open_issues}.</p>"
        )
        parts.append(
            "<table><tr><th>KPI</th><th>this week</th><th>last week</th><th>4-week median</th></tr>"
        )
        for f in s.figures:
            parts.append(
                f"<tr><td>{e(f.label)}</td><td>{_value(f, f.this_week)}</td>"
                f"<td>{_value(f, f.last_week)}</td><td>{_value(f, f.median_4_weeks)}</td></tr>"
            )
        parts.append("</table>")
        for title, issues in (("Raised", s.issues_raised), ("Resolved", s.issues_resolved)):
            if issues:
                parts.append(f"<h3>{title} process issues</h3><ul>")
                for i in issues:
                    note = f" — resolved: {e(i['resolution'])}" if i.get("resolution") else ""
                    parts.append(
                        f"<li>{e(i['ticket_id'])} ({e(i['severity'])}, {e(i['status'])}): "
                        f"{e(i['description'])}{note}</li>"
                    )
                parts.append("</ul>")
        if s.changes:
            parts.append("<h3>Changes this week</h3><ul>")
            for c in s.changes:
                parts.append(
                    f"<li>#{c['id']} {e(str(c['changed_at'])[:16])} {e(c['setting'])}: "
                    f"{e(repr(c['old_value']))} → {e(repr(c['new_value']))} "
                    f"by {e(c['changed_by'])} — {e(c['reason'])}</li>"
                )
            parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
