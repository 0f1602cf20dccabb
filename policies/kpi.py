"""KPIs of the order process, computed from the event data of one period (pure, no I/O).

A period's cohort is the orders placed in it, with everything that has happened to them so
far. A step's cycle time runs from the previous step's milestone (for step 1: the order's
placement) to the step's own milestone (`orderflow.process.STEPS`), so the eight cycle
times of a completed order add up to its lead time. Durations are seconds; rates are
fractions in [0, 1], None when nothing was there to count.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from orderflow.models import OrderStatus
from orderflow.process import STEPS

MILESTONES: tuple[OrderStatus, ...] = tuple(step.milestone for step in STEPS)


# ------------------------------------------------------------------ inputs (plain rows)
@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    order_type: str | None
    channel: str
    status: str
    placed_at: datetime
    lines: int
    # first time of each status the order reached, and every kind of event it has
    reached: Mapping[str, datetime] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset()
    # kind -> first time, for the events that mark a decision
    kind_times: Mapping[str, datetime] = field(default_factory=dict)
    # SKUs short when stock was first tried (from the `backordered` event)
    short_skus: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ShipmentFacts:
    order_id: str
    carrier: str
    expected_delivery: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class FollowUpFacts:
    order_id: str
    attempt: int
    escalated: bool


@dataclass(frozen=True)
class FeedbackFacts:
    department: str
    category: str
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class MoneyFacts:
    """The cohort's money in one currency: captured (at checkout or since), refunded
    (settled) and disputed by card holders' banks."""

    currency: str
    captured: Decimal
    refunded: Decimal
    disputed: Decimal


@dataclass(frozen=True)
class ForecastFacts:
    """One replenishment run's forecast for a SKU (mean units a day from `as_of`) beside what
    sold in the `days` after it."""

    sku: str
    as_of: date
    method: str
    forecast_daily: float
    sold: int
    days: int


@dataclass(frozen=True)
class DeliveredLineFacts:
    """A line of a delivered order of the cohort: what could be sent back."""

    order_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class ReturnFacts:
    """A return of an order of the cohort, with its units per SKU. `came_back`: the parcel
    reached the warehouse; `refunded_at`: when a REFUNDED return's refund was made."""

    return_id: str
    order_id: str
    reason: str
    status: str
    currency: str
    requested_at: datetime
    came_back: bool = False
    refund_amount: Decimal | None = None
    refunded_at: datetime | None = None
    lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class KpiInputs:
    orders: Sequence[OrderFacts] = ()
    review_task_statuses: Mapping[str, str] = field(default_factory=dict)
    shipments: Sequence[ShipmentFacts] = ()
    follow_ups: Sequence[FollowUpFacts] = ()
    feedback: Sequence[FeedbackFacts] = ()
    ratings: Sequence[int] = ()
    money: Sequence[MoneyFacts] = ()
    # The cohort's orders known to be fraud so far (a reviewer's reject, a person's report,
    # a chargeback), and the risk version that scored each order (None: the settings).
    fraud: frozenset[str] = frozenset()
    risk_versions: Mapping[str, int | None] = field(default_factory=dict)
    # Forecasts made in the period whose horizon has passed, beside the sales in it.
    forecasts: Sequence[ForecastFacts] = ()
    # The cohort's delivered lines and its orders' returns so far.
    delivered_lines: Sequence[DeliveredLineFacts] = ()
    returns: Sequence[ReturnFacts] = ()


# ------------------------------------------------------------------ results
class Quantiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    count: int
    p50: float | None
    p95: float | None
    mean: float | None


class CarrierKpi(BaseModel):
    carrier: str
    shipments: int
    delivered: int
    on_time: int
    on_time_rate: float | None


class FeedbackKpi(BaseModel):
    department: str
    category: str
    tickets: int
    open: int
    resolution_seconds: Quantiles


class ForecastAccuracyKpi(BaseModel):
    """A SKU's forecasts of the period against what then sold: units a day, the mean
    absolute error and the bias (forecast minus actual), each per day."""

    sku: str
    forecasts: int
    method: str
    forecast_daily: float
    actual_daily: float
    mean_absolute_error: float
    bias: float


class MoneyKpi(BaseModel):
    captured: Decimal
    refunded: Decimal
    disputed: Decimal


class ReturnReasonKpi(BaseModel):
    """Returns given one reason, and the share of the delivered orders that sent something
    back for it."""

    reason: str
    returns: int
    units: int
    orders: int
    share_of_delivered_orders: float | None


class ReturnSkuKpi(BaseModel):
    """Units of a SKU sent back against units of it delivered."""

    sku: str
    delivered_units: int
    returned_units: int
    return_rate: float | None


class ReturnRefundKpi(BaseModel):
    refunds: int
    amount: Decimal


class KpiReport(BaseModel):
    period_start: datetime
    period_end: datetime
    orders: int
    by_type: dict[str, int]
    by_channel: dict[str, int]
    by_status: dict[str, int]
    # step number (as text, JSON keys) -> cycle time
    step_cycle_seconds: dict[str, Quantiles]
    lead_time_seconds: Quantiles
    assessed: int
    auto_approved: int
    flagged: int
    auto_approval_rate: float | None
    flag_rate: float | None
    reviewer_decisions: int
    overturned: int
    overturn_rate: float | None
    review_timeouts: int
    review_decision_seconds: Quantiles
    stock_checked: int
    backordered: int
    backorder_rate: float | None
    lines_checked: int
    lines_short: int
    stockout_rate: float | None
    skus_short: list[str]
    shipments: int
    delivered: int
    on_time: int
    on_time_rate: float | None
    by_carrier: list[CarrierKpi]
    follow_ups: int
    orders_followed_up: int
    escalated_follow_ups: int
    follow_up_rate: float | None
    feedback_tickets: int
    feedback: list[FeedbackKpi]
    reviews: int
    average_rating: float | None
    ratings: dict[str, int]
    # Summed over the cohort's currencies (a shop in one currency reads them as they are);
    # per currency in `money_by_currency`. Defaults: snapshots stored before they existed.
    captured_amount: Decimal = Decimal("0.00")
    refunded_amount: Decimal = Decimal("0.00")
    disputed_amount: Decimal = Decimal("0.00")
    money_by_currency: dict[str, MoneyKpi] = Field(default_factory=dict)
    # The risk operating point: of the assessed orders known to be fraud, the share flagged
    # (recall on labelled outcomes), and how many orders each risk version scored ("settings":
    # the configured threshold). Defaults: snapshots stored before they existed.
    labelled_fraud: int = 0
    fraud_flagged: int = 0
    risk_recall: float | None = None
    risk_versions: dict[str, int] = Field(default_factory=dict)
    # Forecast against actual sales per SKU, and over all of them the weighted absolute
    # percentage error (sum of absolute errors / sum of actuals) of the daily forecast.
    forecast_accuracy: list[ForecastAccuracyKpi] = Field(default_factory=list)
    forecast_wape: float | None = None
    # Returns of the cohort's delivered orders (those refused or closed unsent do not count):
    # rates by reason and by SKU (only SKUs with a unit returned), refunds for returns per
    # currency (summed over currencies as `captured_amount` is), and the time from request
    # to refund. Defaults: snapshots stored before they existed.
    delivered_orders: int = 0
    delivered_units: int = 0
    returns: int = 0
    orders_returned: int = 0
    returned_units: int = 0
    order_return_rate: float | None = None
    return_rate: float | None = None
    returns_by_reason: list[ReturnReasonKpi] = Field(default_factory=list)
    returns_by_sku: list[ReturnSkuKpi] = Field(default_factory=list)
    return_refunds: int = 0
    return_refunded_amount: Decimal = Decimal("0.00")
    return_refunds_by_currency: dict[str, ReturnRefundKpi] = Field(default_factory=dict)
    time_to_refund_seconds: Quantiles = Quantiles(count=0, p50=None, p95=None, mean=None)


# ------------------------------------------------------------------ computations
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks (as numpy's
    default and PostgreSQL's percentile_cont); None for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def quantiles(values: Iterable[float]) -> Quantiles:
    data = list(values)
    return Quantiles(
        count=len(data),
        p50=percentile(data, 0.5),
        p95=percentile(data, 0.95),
        mean=sum(data) / len(data) if data else None,
    )


def rate(part: int, whole: int) -> float | None:
    if part < 0 or whole < 0 or part > whole:
        raise ValueError(f"{part} of {whole} is not a rate")
    return part / whole if whole else None


def _seconds(start: datetime, end: datetime) -> float:
    # Clocks differ (the storefront's placed_at): a step never takes negative time.
    return max((end - start).total_seconds(), 0.0)


def step_durations(placed_at: datetime, reached: Mapping[str, datetime]) -> dict[int, float]:
    """Seconds each step took for one order: from the previous milestone to its own."""
    durations: dict[int, float] = {}
    previous: datetime | None = placed_at
    for number, milestone in enumerate(MILESTONES, start=1):
        at = reached.get(milestone)
        if at is not None and previous is not None:
            durations[number] = _seconds(previous, at)
        previous = at
    return durations


def cycle_times(orders: Iterable[OrderFacts]) -> dict[str, Quantiles]:
    per_step: dict[int, list[float]] = {n: [] for n in range(1, len(MILESTONES) + 1)}
    for order in orders:
        for number, seconds in step_durations(order.placed_at, order.reached).items():
            per_step[number].append(seconds)
    return {str(n): quantiles(values) for n, values in per_step.items()}


def lead_times(orders: Iterable[OrderFacts]) -> Quantiles:
    done = OrderStatus.COMPLETED
    return quantiles(_seconds(o.placed_at, o.reached[done]) for o in orders if done in o.reached)


def _carriers(shipments: Sequence[ShipmentFacts]) -> list[CarrierKpi]:
    result = []
    for carrier in sorted({s.carrier for s in shipments}):
        own = [s for s in shipments if s.carrier == carrier]
        delivered = [s for s in own if s.delivered_at is not None]
        on_time = sum(1 for s in delivered if _on_time(s))
        result.append(
            CarrierKpi(
                carrier=carrier,
                shipments=len(own),
                delivered=len(delivered),
                on_time=on_time,
                on_time_rate=rate(on_time, len(delivered)),
            )
        )
    return result


def _on_time(shipment: ShipmentFacts) -> bool:
    return shipment.delivered_at is not None and shipment.delivered_at <= shipment.expected_delivery


def _feedback(tickets: Sequence[FeedbackFacts]) -> list[FeedbackKpi]:
    groups = sorted({(t.department, t.category) for t in tickets})
    result = []
    for department, category in groups:
        own = [t for t in tickets if (t.department, t.category) == (department, category)]
        result.append(
            FeedbackKpi(
                department=department,
                category=category,
                tickets=len(own),
                open=sum(1 for t in own if t.resolved_at is None),
                resolution_seconds=quantiles(
                    _seconds(t.created_at, t.resolved_at) for t in own if t.resolved_at is not None
                ),
            )
        )
    return result


def forecast_accuracy(
    facts: Sequence[ForecastFacts],
) -> tuple[list[ForecastAccuracyKpi], float | None]:
    """Per SKU (and overall WAPE) how far each forecast's units a day were from the units a
    day that sold over its horizon."""
    by_sku: dict[str, list[ForecastFacts]] = {}
    for fact in facts:
        if fact.days > 0:
            by_sku.setdefault(fact.sku, []).append(fact)
    rows = []
    errors = actuals = 0.0
    for sku, runs in sorted(by_sku.items()):
        actual = [f.sold / f.days for f in runs]
        forecast = [f.forecast_daily for f in runs]
        absolute = [abs(f - a) for f, a in zip(forecast, actual, strict=True)]
        errors += sum(absolute)
        actuals += sum(actual)
        rows.append(
            ForecastAccuracyKpi(
                sku=sku,
                forecasts=len(runs),
                method=Counter(f.method for f in runs).most_common(1)[0][0],
                forecast_daily=round(sum(forecast) / len(runs), 3),
                actual_daily=round(sum(actual) / len(runs), 3),
                mean_absolute_error=round(sum(absolute) / len(runs), 3),
                bias=round((sum(forecast) - sum(actual)) / len(runs), 3),
            )
        )
    return rows, (round(errors / actuals, 4) if actuals > 0 else None)


def counts_as_returned(ret: ReturnFacts) -> bool:
    """A return counts from its request on, unless customer service refused it or it
    closed with the parcel never back: then nothing was sent back."""
    if ret.status == "REJECTED":
        return False
    return not (ret.status == "CLOSED" and not ret.came_back)


def reason_key(reason: str) -> str:
    """Reasons are the customer's words: the same words in another case or spacing are one
    reason."""
    return " ".join(reason.split()).casefold() or "(none)"


@dataclass(frozen=True)
class ReturnsKpis:
    """The returns part of a `KpiReport`."""

    delivered_orders: int
    delivered_units: int
    returns: int
    orders_returned: int
    returned_units: int
    order_return_rate: float | None
    return_rate: float | None
    by_reason: list[ReturnReasonKpi]
    by_sku: list[ReturnSkuKpi]
    refunds: int
    refunded_amount: Decimal
    refunds_by_currency: dict[str, ReturnRefundKpi]
    time_to_refund: Quantiles


def return_kpis(
    delivered: Sequence[DeliveredLineFacts], returns: Sequence[ReturnFacts]
) -> ReturnsKpis:
    """Return rates of the delivered orders (by reason: orders; by SKU: units), the refunds
    made for returns per currency and the time from request to refund."""
    delivered_qty: dict[tuple[str, str], int] = {}
    for line in delivered:
        key = (line.order_id, line.sku)
        delivered_qty[key] = delivered_qty.get(key, 0) + line.quantity
    delivered_orders = {order_id for order_id, _ in delivered_qty}
    counted = sorted(
        (r for r in returns if r.order_id in delivered_orders and counts_as_returned(r)),
        key=lambda r: (r.requested_at, r.return_id),
    )
    # The request rules never let returns hold more of a line than was delivered; capping
    # keeps a hand-edited row from making a rate above 1 (oldest return first).
    left = dict(delivered_qty)
    units: dict[str, dict[str, int]] = {}
    for ret in counted:
        own = units.setdefault(ret.return_id, {})
        for sku, quantity in sorted(ret.lines.items()):
            take = min(max(quantity, 0), left.get((ret.order_id, sku), 0))
            if take:
                left[(ret.order_id, sku)] -= take
                own[sku] = own.get(sku, 0) + take

    delivered_by_sku: Counter[str] = Counter()
    for (_, sku), quantity in delivered_qty.items():
        delivered_by_sku[sku] += quantity
    returned_by_sku: Counter[str] = Counter()
    for own in units.values():
        returned_by_sku.update(own)
    by_sku = [
        ReturnSkuKpi(
            sku=sku,
            delivered_units=delivered_by_sku[sku],
            returned_units=returned,
            return_rate=rate(returned, delivered_by_sku[sku]),
        )
        for sku, returned in sorted(returned_by_sku.items(), key=lambda i: (-i[1], i[0]))
        if returned > 0
    ]

    reasons: dict[str, list[ReturnFacts]] = {}
    for ret in counted:
        reasons.setdefault(reason_key(ret.reason), []).append(ret)
    by_reason = [
        ReturnReasonKpi(
            reason=reason,
            returns=len(own_returns),
            units=sum(sum(units[r.return_id].values()) for r in own_returns),
            orders=len({r.order_id for r in own_returns}),
            share_of_delivered_orders=rate(
                len({r.order_id for r in own_returns}), len(delivered_orders)
            ),
        )
        for reason, own_returns in sorted(reasons.items(), key=lambda i: (-len(i[1]), i[0]))
    ]

    refunded = [r for r in returns if r.status == "REFUNDED" and r.refund_amount is not None]
    by_currency: dict[str, ReturnRefundKpi] = {}
    for currency in sorted({r.currency for r in refunded}):
        own_refunds = [r for r in refunded if r.currency == currency]
        by_currency[currency] = ReturnRefundKpi(
            refunds=len(own_refunds),
            amount=sum((r.refund_amount or Decimal("0") for r in own_refunds), Decimal("0.00")),
        )
    orders_returned = len({r.order_id for r in counted})
    returned_units = sum(returned_by_sku.values())
    delivered_units = sum(delivered_by_sku.values())
    return ReturnsKpis(
        delivered_orders=len(delivered_orders),
        delivered_units=delivered_units,
        returns=len(counted),
        orders_returned=orders_returned,
        returned_units=returned_units,
        order_return_rate=rate(orders_returned, len(delivered_orders)),
        return_rate=rate(returned_units, delivered_units),
        by_reason=by_reason,
        by_sku=by_sku,
        refunds=len(refunded),
        refunded_amount=sum((k.amount for k in by_currency.values()), Decimal("0.00")),
        refunds_by_currency=by_currency,
        time_to_refund=quantiles(
            _seconds(r.requested_at, r.refunded_at) for r in refunded if r.refunded_at is not None
        ),
    )


def compute_kpis(period_start: datetime, period_end: datetime, data: KpiInputs) -> KpiReport:
    orders = list(data.orders)
    assessed = [o for o in orders if {"auto_approved", "review_flagged"} & o.kinds]
    auto = sum(1 for o in assessed if "auto_approved" in o.kinds)
    flagged = sum(1 for o in assessed if "review_flagged" in o.kinds)
    # A reviewer's decision on a flag: approved overturns it; timeouts are nobody's decision.
    decisions = [s for s in data.review_task_statuses.values() if s in ("approved", "rejected")]
    overturned = sum(1 for s in decisions if s == "approved")
    timeouts = sum(1 for s in data.review_task_statuses.values() if s == "expired")
    decision_times = [
        _seconds(o.kind_times["review_flagged"], decided)
        for o in orders
        if "review_flagged" in o.kind_times
        for kind in ("review_approved", "review_rejected")
        if (decided := o.kind_times.get(kind)) is not None
    ]

    stock_checked = [
        o for o in orders if {OrderStatus.RESERVED, OrderStatus.BACKORDERED} & set(o.reached)
    ]
    backordered = sum(1 for o in stock_checked if OrderStatus.BACKORDERED in o.reached)
    lines_checked = sum(o.lines for o in stock_checked)
    lines_short = sum(len(o.short_skus) for o in stock_checked)

    shipments = list(data.shipments)
    delivered = [s for s in shipments if s.delivered_at is not None]
    on_time = sum(1 for s in delivered if _on_time(s))
    followed_up = {f.order_id for f in data.follow_ups}

    ratings = [r for r in data.ratings if 1 <= r <= 5]
    fraud = [o for o in assessed if o.order_id in data.fraud]
    fraud_flagged = sum(1 for o in fraud if "review_flagged" in o.kinds)
    versions = Counter(
        "settings" if (v := data.risk_versions.get(o.order_id)) is None else str(v)
        for o in assessed
    )
    accuracy, wape = forecast_accuracy(data.forecasts)
    returned = return_kpis(data.delivered_lines, data.returns)
    return KpiReport(
        period_start=period_start,
        period_end=period_end,
        orders=len(orders),
        by_type=dict(sorted(Counter(o.order_type or "unclassified" for o in orders).items())),
        by_channel=dict(sorted(Counter(o.channel for o in orders).items())),
        by_status=dict(sorted(Counter(o.status for o in orders).items())),
        step_cycle_seconds=cycle_times(orders),
        lead_time_seconds=lead_times(orders),
        assessed=len(assessed),
        auto_approved=auto,
        flagged=flagged,
        auto_approval_rate=rate(auto, len(assessed)),
        flag_rate=rate(flagged, len(assessed)),
        reviewer_decisions=len(decisions),
        overturned=overturned,
        overturn_rate=rate(overturned, len(decisions)),
        review_timeouts=timeouts,
        review_decision_seconds=quantiles(decision_times),
        labelled_fraud=len(fraud),
        fraud_flagged=fraud_flagged,
        risk_recall=rate(fraud_flagged, len(fraud)),
        risk_versions=dict(sorted(versions.items())),
        forecast_accuracy=accuracy,
        forecast_wape=wape,
        delivered_orders=returned.delivered_orders,
        delivered_units=returned.delivered_units,
        returns=returned.returns,
        orders_returned=returned.orders_returned,
        returned_units=returned.returned_units,
        order_return_rate=returned.order_return_rate,
        return_rate=returned.return_rate,
        returns_by_reason=returned.by_reason,
        returns_by_sku=returned.by_sku,
        return_refunds=returned.refunds,
        return_refunded_amount=returned.refunded_amount,
        return_refunds_by_currency=returned.refunds_by_currency,
        time_to_refund_seconds=returned.time_to_refund,
        stock_checked=len(stock_checked),
        backordered=backordered,
        backorder_rate=rate(backordered, len(stock_checked)),
        lines_checked=lines_checked,
        lines_short=lines_short,
        stockout_rate=rate(lines_short, lines_checked),
        skus_short=sorted({sku for o in stock_checked for sku in o.short_skus}),
        shipments=len(shipments),
        delivered=len(delivered),
        on_time=on_time,
        on_time_rate=rate(on_time, len(delivered)),
        by_carrier=_carriers(shipments),
        follow_ups=len(data.follow_ups),
        orders_followed_up=len(followed_up),
        escalated_follow_ups=sum(1 for f in data.follow_ups if f.escalated),
        follow_up_rate=rate(len(followed_up & {s.order_id for s in shipments}), len(shipments)),
        feedback_tickets=len(data.feedback),
        feedback=_feedback(data.feedback),
        reviews=len(ratings),
        average_rating=sum(ratings) / len(ratings) if ratings else None,
        ratings={str(r): n for r, n in sorted(Counter(ratings).items())},
        captured_amount=sum((m.captured for m in data.money), Decimal("0.00")),
        refunded_amount=sum((m.refunded for m in data.money), Decimal("0.00")),
        disputed_amount=sum((m.disputed for m in data.money), Decimal("0.00")),
        money_by_currency={
            m.currency: MoneyKpi(captured=m.captured, refunded=m.refunded, disputed=m.disputed)
            for m in sorted(data.money, key=lambda m: m.currency)
        },
    )


# ------------------------------------------------------------------ comparing periods
@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    kind: str  # "count" | "rate" | "seconds" | "rating"
    value: float | None


def headlines(report: KpiReport) -> list[Headline]:
    """The report's main numbers, flat, in a fixed order (for tables, charts, comparison)."""
    rows = [
        Headline("orders", "orders placed", "count", report.orders),
        Headline("lead_time_p50", "lead time p50", "seconds", report.lead_time_seconds.p50),
        Headline("lead_time_p95", "lead time p95", "seconds", report.lead_time_seconds.p95),
    ]
    for step in STEPS:
        cycle = report.step_cycle_seconds.get(str(int(step.step)))
        for q in ("p50", "p95"):
            rows.append(
                Headline(
                    f"step_{int(step.step)}_{q}",
                    f"step {int(step.step)} {step.name} {q}",
                    "seconds",
                    getattr(cycle, q) if cycle else None,
                )
            )
    rows += [
        Headline("auto_approval_rate", "auto-approval rate", "rate", report.auto_approval_rate),
        Headline("flag_rate", "flag rate", "rate", report.flag_rate),
        Headline("overturn_rate", "flags overturned by reviewers", "rate", report.overturn_rate),
        Headline("risk_recall", "known fraud flagged (recall)", "rate", report.risk_recall),
        Headline(
            "review_decision_p50",
            "review decision time p50",
            "seconds",
            report.review_decision_seconds.p50,
        ),
        Headline("backorder_rate", "backorder rate", "rate", report.backorder_rate),
        Headline("stockout_rate", "stock-out rate (lines)", "rate", report.stockout_rate),
        Headline("on_time_rate", "carrier on-time rate", "rate", report.on_time_rate),
        Headline("follow_ups", "delivery follow-ups", "count", report.follow_ups),
        Headline("follow_up_rate", "shipments followed up", "rate", report.follow_up_rate),
        Headline("feedback_tickets", "feedback tickets", "count", report.feedback_tickets),
        Headline("average_rating", "average rating", "rating", report.average_rating),
        Headline("captured_amount", "captured", "amount", float(report.captured_amount)),
        Headline("refunded_amount", "refunded", "amount", float(report.refunded_amount)),
        Headline("disputed_amount", "disputed", "amount", float(report.disputed_amount)),
        Headline(
            "order_return_rate", "delivered orders with a return", "rate", report.order_return_rate
        ),
        Headline("return_rate", "return rate (units)", "rate", report.return_rate),
        Headline(
            "return_refunded_amount",
            "refunded for returns",
            "amount",
            float(report.return_refunded_amount),
        ),
        Headline(
            "time_to_refund_p50",
            "return time to refund p50",
            "seconds",
            report.time_to_refund_seconds.p50,
        ),
        Headline(
            "time_to_refund_p95",
            "return time to refund p95",
            "seconds",
            report.time_to_refund_seconds.p95,
        ),
    ]
    return rows


@dataclass(frozen=True)
class Comparison:
    key: str
    label: str
    kind: str
    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def relative_change(self) -> float | None:
        if self.change is None or not self.before:
            return None
        return self.change / self.before


def compare(before: KpiReport, after: KpiReport) -> list[Comparison]:
    return [
        Comparison(a.key, a.label, a.kind, a.value, b.value)
        for a, b in zip(headlines(before), headlines(after), strict=True)
    ]


# ------------------------------------------------------------------ weekly snapshots
class KpiSnapshotRequest(BaseModel):
    """Input of the snapshot workflow; empty: the `days` whole UTC days before today."""

    period_start: datetime | None = None
    period_end: datetime | None = None
    days: int = Field(default=7, ge=1, le=366)


class KpiPeriod(BaseModel):
    period_start: datetime
    period_end: datetime


class KpiSnapshotResult(BaseModel):
    period_start: datetime
    period_end: datetime
    orders: int
    taken_at: datetime


def snapshot_period(now: datetime, request: KpiSnapshotRequest) -> KpiPeriod:
    """The period a snapshot covers: as requested, or whole UTC days ending at midnight."""
    end = request.period_end or now.astimezone(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    start = request.period_start or end - timedelta(days=request.days)
    if start >= end:
        raise ValueError(f"a period must end after it starts ({start} >= {end})")
    return KpiPeriod(period_start=start, period_end=end)
