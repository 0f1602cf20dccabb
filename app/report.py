"""The improvement loop's report: KPIs of a period from the event data, optionally beside a
second period, as rich tables, JSON, or an HTML page with charts (matplotlib, embedded as
PNG) — so a change to the process can be judged before and after.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime
from typing import Any

import asyncpg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from db.repositories import kpi as kpi_sql
from orderflow.process import STEPS
from policies.kpi import Comparison, KpiReport, compare, compute_kpis, headlines


async def build_report(conn: asyncpg.Connection, start: datetime, end: datetime) -> KpiReport:
    """The KPIs of the orders placed in [start, end)."""
    return compute_kpis(start, end, await kpi_sql.load_inputs(conn, start, end))


# ------------------------------------------------------------------ formatting
def format_value(kind: str, value: float | None) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value:.1%}"
    if kind == "seconds":
        return format_seconds(value)
    if kind == "rating":
        return f"{value:.2f}"
    if kind == "amount":
        return f"{value:,.2f}"
    return f"{value:g}"


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def format_change(row: Comparison) -> str:
    if row.change is None:
        return "—"
    if row.kind == "rate":
        return f"{row.change * 100:+.1f} pp"
    relative = f" ({row.relative_change:+.0%})" if row.relative_change is not None else ""
    if row.kind == "seconds":
        sign = "+" if row.change >= 0 else "-"
        return f"{sign}{format_seconds(abs(row.change))}{relative}"
    if row.kind == "rating":
        return f"{row.change:+.2f}{relative}"
    return f"{row.change:+g}{relative}"


def _short(text: str, width: int = 60) -> str:
    # Reasons are the customer's own words, up to 500 characters.
    return text if len(text) <= width else text[: width - 1] + "…"


def _period(report: KpiReport) -> str:
    return f"{report.period_start:%Y-%m-%d %H:%M} – {report.period_end:%Y-%m-%d %H:%M} UTC"


# ------------------------------------------------------------------ terminal
def tables(report: KpiReport, before: KpiReport | None = None) -> list[Table]:
    """The report as rich tables; with `before`, the headline numbers side by side."""
    result = []
    if before is not None:
        table = Table(title=f"KPIs: {_period(before)}  vs  {_period(report)}")
        for column in ("KPI", "before", "after", "change"):
            table.add_column(column, justify="left" if column == "KPI" else "right")
        for row in compare(before, report):
            table.add_row(
                row.label,
                format_value(row.kind, row.before),
                format_value(row.kind, row.after),
                format_change(row),
            )
        result.append(table)
    else:
        table = Table(title=f"KPIs: {_period(report)}")
        table.add_column("KPI")
        table.add_column("value", justify="right")
        for h in headlines(report):
            table.add_row(h.label, format_value(h.kind, h.value))
        result.append(table)

    steps = Table(title="cycle time of every step")
    for column in ("step", "orders", "p50", "p95"):
        steps.add_column(column, justify="left" if column == "step" else "right")
    for step in STEPS:
        q = report.step_cycle_seconds[str(int(step.step))]
        steps.add_row(
            f"{int(step.step)}. {step.name}",
            str(q.count),
            format_value("seconds", q.p50),
            format_value("seconds", q.p95),
        )
    result.append(steps)

    mix = Table(title="orders by type and channel")
    mix.add_column("type")
    mix.add_column("orders", justify="right")
    mix.add_column("channel")
    mix.add_column("orders ", justify="right")
    types, channels = list(report.by_type.items()), list(report.by_channel.items())
    for i in range(max(len(types), len(channels))):
        t = types[i] if i < len(types) else ("", "")
        c = channels[i] if i < len(channels) else ("", "")
        mix.add_row(t[0], str(t[1]), c[0], str(c[1]))
    result.append(mix)

    flow = Table(title="review, stock and delivery")
    flow.add_column("measure")
    flow.add_column("count", justify="right")
    flow.add_column("of", justify="right")
    flow.add_column("rate", justify="right")
    for label, part, whole, value in (
        ("auto-approved", report.auto_approved, report.assessed, report.auto_approval_rate),
        ("flagged", report.flagged, report.assessed, report.flag_rate),
        ("flags overturned", report.overturned, report.reviewer_decisions, report.overturn_rate),
        ("known fraud flagged", report.fraud_flagged, report.labelled_fraud, report.risk_recall),
        ("backordered", report.backordered, report.stock_checked, report.backorder_rate),
        ("lines short of stock", report.lines_short, report.lines_checked, report.stockout_rate),
        ("delivered on time", report.on_time, report.delivered, report.on_time_rate),
        ("shipments followed up", report.orders_followed_up, report.shipments, None),
    ):
        flow.add_row(label, str(part), str(whole), format_value("rate", value))
    for carrier in report.by_carrier:
        flow.add_row(
            f"  on time: {carrier.carrier}",
            str(carrier.on_time),
            str(carrier.delivered),
            format_value("rate", carrier.on_time_rate),
        )
    result.append(flow)

    feedback = Table(title="feedback tickets by department and category")
    for column in ("department", "category", "tickets", "open", "resolution p50", "p95"):
        feedback.add_column(
            column, justify="right" if column not in ("department", "category") else "left"
        )
    for f in report.feedback:
        feedback.add_row(
            f.department,
            f.category,
            str(f.tickets),
            str(f.open),
            format_value("seconds", f.resolution_seconds.p50),
            format_value("seconds", f.resolution_seconds.p95),
        )
    rating = format_value("rating", report.average_rating)
    feedback.caption = f"average rating {rating} from {report.reviews} reviews"
    result.append(feedback)

    forecast = Table(title="forecast against actual sales (units a day, the week after each run)")
    for column in ("sku", "runs", "method", "forecast", "actual", "mean abs. error", "bias"):
        forecast.add_column(column, justify="left" if column in ("sku", "method") else "right")
    for sku in report.forecast_accuracy:
        forecast.add_row(
            sku.sku,
            str(sku.forecasts),
            sku.method,
            f"{sku.forecast_daily:.2f}",
            f"{sku.actual_daily:.2f}",
            f"{sku.mean_absolute_error:.2f}",
            f"{sku.bias:+.2f}",
        )
    forecast.caption = f"weighted absolute % error {format_value('rate', report.forecast_wape)}"
    result.append(forecast)
    result += return_tables(report)
    return result


# Enough rows for a terminal; every SKU is in --json and the snapshot.
RETURN_SKU_ROWS = 20


def return_tables(report: KpiReport) -> list[Table]:
    """Returns of the period's delivered orders: by reason, by SKU, and their refunds."""
    reasons = Table(title="returns by reason (of the delivered orders)")
    for column in ("reason", "returns", "units", "orders", "of delivered orders"):
        reasons.add_column(column, justify="left" if column == "reason" else "right")
    for r in report.returns_by_reason:
        reasons.add_row(
            _short(r.reason),
            str(r.returns),
            str(r.units),
            str(r.orders),
            format_value("rate", r.share_of_delivered_orders),
        )
    reasons.caption = (
        f"{report.orders_returned} of {report.delivered_orders} delivered orders sent something"
        f" back ({format_value('rate', report.order_return_rate)}); {report.returned_units} of"
        f" {report.delivered_units} units ({format_value('rate', report.return_rate)})"
    )

    skus = Table(title="return rate by SKU (units returned / delivered)")
    for column in ("sku", "delivered", "returned", "return rate"):
        skus.add_column(column, justify="left" if column == "sku" else "right")
    for k in report.returns_by_sku[:RETURN_SKU_ROWS]:
        skus.add_row(
            k.sku,
            str(k.delivered_units),
            str(k.returned_units),
            format_value("rate", k.return_rate),
        )
    if len(report.returns_by_sku) > RETURN_SKU_ROWS:
        skus.caption = f"{len(report.returns_by_sku) - RETURN_SKU_ROWS} more SKUs in --json"

    refunds = Table(title="refunds for returns")
    for column in ("currency", "refunds", "amount"):
        refunds.add_column(column, justify="left" if column == "currency" else "right")
    for currency, money in report.return_refunds_by_currency.items():
        refunds.add_row(currency, str(money.refunds), format_value("amount", float(money.amount)))
    wait = report.time_to_refund_seconds
    refunds.caption = (
        f"time to refund p50 {format_value('seconds', wait.p50)},"
        f" p95 {format_value('seconds', wait.p95)} ({wait.count} refunds)"
    )
    return [reasons, skus, refunds]


def print_report(console: Console, report: KpiReport, before: KpiReport | None = None) -> None:
    for table in tables(report, before):
        console.print(table)


# ------------------------------------------------------------------ JSON
def report_json(report: KpiReport, before: KpiReport | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"period": report.model_dump(mode="json")}
    if before is not None:
        data["compared_with"] = before.model_dump(mode="json")
        data["comparison"] = [
            {
                "key": row.key,
                "label": row.label,
                "kind": row.kind,
                "before": row.before,
                "after": row.after,
                "change": row.change,
                "relative_change": row.relative_change,
            }
            for row in compare(before, report)
        ]
    return data


# ------------------------------------------------------------------ HTML with charts
def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(
    title: str,
    labels: list[str],
    series: list[tuple[str, list[float]]],
    *,
    unit: str = "",
    horizontal: bool = False,
) -> str:
    figure = Figure(figsize=(8, max(3.0, 0.45 * len(labels)) if horizontal else 3.6))
    axes = figure.add_subplot()
    width = 0.8 / max(len(series), 1)
    positions = list(range(len(labels)))
    for i, (name, values) in enumerate(series):
        offsets = [p + (i - (len(series) - 1) / 2) * width for p in positions]
        if horizontal:
            axes.barh(offsets, values, height=width, label=name)
        else:
            axes.bar(offsets, values, width=width, label=name)
    if horizontal:
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.set_xlabel(unit)
    else:
        axes.set_xticks(positions, labels, rotation=20, ha="right")
        axes.set_ylabel(unit)
    axes.set_title(title)
    if len(series) > 1:
        axes.legend()
    axes.grid(axis="x" if horizontal else "y", alpha=0.3)
    return _png(figure)


def _seconds_unit(values: list[float]) -> tuple[float, str]:
    top = max(values, default=0.0)
    for size, unit in ((86400, "days"), (3600, "hours"), (60, "minutes")):
        if top >= 2 * size:
            return size, unit
    return 1, "seconds"


def charts(report: KpiReport, before: KpiReport | None = None) -> list[tuple[str, str]]:
    """(title, base64 PNG) of each chart of the report."""
    periods = [("before", before), ("after", report)] if before else [("period", report)]
    result = []

    step_labels = [f"{int(s.step)}. {s.name}" for s in STEPS]
    raw = [
        (f"{name} {q}", [getattr(r.step_cycle_seconds[str(int(s.step))], q) or 0.0 for s in STEPS])
        for name, r in periods
        for q in ("p50", "p95")
    ]
    size, unit = _seconds_unit([v for _, values in raw for v in values])
    series = [(name, [v / size for v in values]) for name, values in raw]
    result.append(
        (
            "Cycle time of every step",
            _bars("Cycle time per step", step_labels, series, unit=unit, horizontal=True),
        )
    )

    rate_keys = [
        ("auto-approval", "auto_approval_rate"),
        ("flagged", "flag_rate"),
        ("flags overturned", "overturn_rate"),
        ("known fraud flagged", "risk_recall"),
        ("backordered", "backorder_rate"),
        ("lines short", "stockout_rate"),
        ("on time", "on_time_rate"),
        ("followed up", "follow_up_rate"),
        ("units returned", "return_rate"),
    ]
    series = [
        (name, [100 * (getattr(r, key) or 0.0) for _, key in rate_keys]) for name, r in periods
    ]
    result.append(("Rates", _bars("Rates", [label for label, _ in rate_keys], series, unit="%")))

    types = sorted({t for _, r in periods if r for t in r.by_type})
    channels = sorted({c for _, r in periods if r for c in r.by_channel})
    mix_labels = [f"type: {t}" for t in types] + [f"channel: {c}" for c in channels]
    series = [
        (
            name,
            [float(r.by_type.get(t, 0)) for t in types]
            + [float(r.by_channel.get(c, 0)) for c in channels],
        )
        for name, r in periods
    ]
    result.append(
        ("Orders by type and channel", _bars("Orders", mix_labels, series, unit="orders"))
    )

    groups = sorted({(f.department, f.category) for _, r in periods if r for f in r.feedback})
    if groups:
        series = [
            (
                name,
                [
                    float(sum(f.tickets for f in r.feedback if (f.department, f.category) == g))
                    for g in groups
                ],
            )
            for name, r in periods
        ]
        labels = [f"{d} / {c}" for d, c in groups]
        result.append(
            (
                "Feedback tickets",
                _bars("Feedback tickets", labels, series, unit="tickets", horizontal=True),
            )
        )
    series = [(name, [float(r.ratings.get(str(n), 0)) for n in range(1, 6)]) for name, r in periods]
    result.append(("Ratings", _bars("Ratings", ["1", "2", "3", "4", "5"], series, unit="reviews")))

    # The SKUs with the largest errors of the (latest) period: forecast beside actual.
    worst = sorted(report.forecast_accuracy, key=lambda a: -a.mean_absolute_error)[:12]
    if worst:
        series = [
            ("forecast", [a.forecast_daily for a in worst]),
            ("actual", [a.actual_daily for a in worst]),
        ]
        result.append(
            (
                "Forecast against actual sales",
                _bars(
                    "Units a day: forecast and actual",
                    [a.sku for a in worst],
                    series,
                    unit="units/day",
                    horizontal=True,
                ),
            )
        )
    result += _return_charts(report, periods)
    return result


def _return_charts(
    report: KpiReport, periods: list[tuple[str, KpiReport]]
) -> list[tuple[str, str]]:
    """Returns by reason (each period) and the return rate of the SKUs sent back most (the
    latest period); none when nothing was sent back."""
    result = []
    counts: dict[str, int] = {}
    for _, r in periods:
        for reason in r.returns_by_reason:
            counts[reason.reason] = counts.get(reason.reason, 0) + reason.returns
    top = sorted(counts, key=lambda reason: (-counts[reason], reason))[:10]
    if top:
        series = [
            (
                name,
                [
                    float(sum(x.returns for x in r.returns_by_reason if x.reason == reason))
                    for reason in top
                ],
            )
            for name, r in periods
        ]
        labels = [_short(reason, 40) for reason in top]
        result.append(
            (
                "Returns by reason",
                _bars("Returns by reason", labels, series, unit="returns", horizontal=True),
            )
        )
    most = report.returns_by_sku[:12]
    if most:
        series = [("units returned", [100 * (k.return_rate or 0.0) for k in most])]
        result.append(
            (
                "Return rate by SKU",
                _bars(
                    "Units returned of units delivered",
                    [k.sku for k in most],
                    series,
                    unit="%",
                    horizontal=True,
                ),
            )
        )
    return result


def _returns_html(report: KpiReport) -> str:
    """The page's returns tables (by reason, SKUs sent back most, refunds); empty when the
    period had none."""
    if not (report.returns or report.return_refunds):
        return ""

    def esc(text: object) -> str:
        return html.escape(str(text))

    def table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
        cells = "".join(f"<th>{esc(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return f"<table><tr>{cells}</tr>{body}</table>"

    def rate(value: float | None) -> str:
        return format_value("rate", value)

    wait = report.time_to_refund_seconds
    return (
        "<h2>Returns</h2>"
        f"<p>{report.orders_returned} of {report.delivered_orders} delivered orders sent"
        f" something back ({esc(rate(report.order_return_rate))}); {report.returned_units} of"
        f" {report.delivered_units} units ({esc(rate(report.return_rate))}). Time from request"
        f" to refund: p50 {esc(format_value('seconds', wait.p50))}, p95"
        f" {esc(format_value('seconds', wait.p95))} ({wait.count} refunds).</p>"
        + table(
            ("reason", "returns", "units", "orders", "of delivered orders"),
            [
                (
                    _short(r.reason, 80),
                    r.returns,
                    r.units,
                    r.orders,
                    rate(r.share_of_delivered_orders),
                )
                for r in report.returns_by_reason
            ],
        )
        + table(
            ("sku", "delivered", "returned", "return rate"),
            [
                (k.sku, k.delivered_units, k.returned_units, rate(k.return_rate))
                for k in report.returns_by_sku[:RETURN_SKU_ROWS]
            ],
        )
        + table(
            ("currency", "refunds for returns", "amount"),
            [
                (currency, m.refunds, format_value("amount", float(m.amount)))
                for currency, m in report.return_refunds_by_currency.items()
            ],
        )
    )


def report_html(report: KpiReport, before: KpiReport | None = None) -> str:
    def esc(text: object) -> str:
        return html.escape(str(text))

    if before is not None:
        head = "<tr><th>KPI</th><th>before</th><th>after</th><th>change</th></tr>"
        rows = "".join(
            f"<tr><td>{esc(r.label)}</td><td>{esc(format_value(r.kind, r.before))}</td>"
            f"<td>{esc(format_value(r.kind, r.after))}</td><td>{esc(format_change(r))}</td></tr>"
            for r in compare(before, report)
        )
        subtitle = f"{esc(_period(before))} (before) vs {esc(_period(report))} (after)"
    else:
        head = "<tr><th>KPI</th><th>value</th></tr>"
        rows = "".join(
            f"<tr><td>{esc(h.label)}</td><td>{esc(format_value(h.kind, h.value))}</td></tr>"
            for h in headlines(report)
        )
        subtitle = esc(_period(report))
    figures = "".join(
        f'<figure><img alt="{esc(title)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{esc(title)}</figcaption></figure>"
        for title, png in charts(report, before)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orderflow KPI report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .7rem; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: 0 1rem 1rem 0; }}
</style></head>
<body>
<h1>orderflow KPI report</h1>
<p>{subtitle}. Cohort: the orders placed in the period and all that happened to them.</p>
<table>{head}{rows}</table>
{_returns_html(report)}
{figures}
</body></html>
"""
