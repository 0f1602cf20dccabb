"""Returns in the KPI report (policies/kpi.py): return rates by reason and by SKU, refunds
for returns per currency and the time from request to refund, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from policies.kpi import (
    DeliveredLineFacts,
    KpiInputs,
    KpiReport,
    ReturnFacts,
    compare,
    compute_kpis,
    counts_as_returned,
    headlines,
    reason_key,
    return_kpis,
)

START = datetime(2026, 11, 2, tzinfo=UTC)
END = START + timedelta(days=7)
T0 = START + timedelta(hours=1)

# Four delivered orders: 10 mugs and 4 tins in all.
DELIVERED = [
    DeliveredLineFacts("A", "MUG", 2),
    DeliveredLineFacts("A", "TIN", 1),
    DeliveredLineFacts("B", "MUG", 4),
    DeliveredLineFacts("C", "MUG", 4),
    DeliveredLineFacts("D", "TIN", 3),
]


def ret(
    return_id: str,
    order_id: str,
    lines: dict[str, int],
    *,
    reason: str = "too small",
    status: str = "APPROVED",
    currency: str = "EUR",
    came_back: bool = False,
    refund: str | None = None,
    refunded_after: timedelta | None = None,
) -> ReturnFacts:
    return ReturnFacts(
        return_id=return_id,
        order_id=order_id,
        reason=reason,
        status=status,
        currency=currency,
        requested_at=T0,
        came_back=came_back,
        refund_amount=Decimal(refund) if refund is not None else None,
        refunded_at=T0 + refunded_after if refunded_after is not None else None,
        lines=lines,
    )


def test_refused_and_unsent_returns_send_nothing_back() -> None:
    assert counts_as_returned(ret("R", "A", {}, status="REQUESTED"))
    assert counts_as_returned(ret("R", "A", {}, status="IN_TRANSIT"))
    assert counts_as_returned(ret("R", "A", {}, status="REFUNDED", came_back=True))
    assert not counts_as_returned(ret("R", "A", {}, status="REJECTED"))
    assert not counts_as_returned(ret("R", "A", {}, status="CLOSED"))
    # Back at the warehouse but nothing accepted: the units did come back.
    assert counts_as_returned(ret("R", "A", {}, status="CLOSED", came_back=True))


def test_reasons_in_another_case_or_spacing_are_one() -> None:
    assert reason_key("  Too   SMALL ") == reason_key("too small") == "too small"
    assert reason_key("   ") == "(none)"


def test_return_rate_by_reason_and_by_sku() -> None:
    returns = [
        ret("A-1", "A", {"MUG": 2, "TIN": 1}, reason="Too small", status="REFUNDED", refund="30"),
        ret("B-1", "B", {"MUG": 1}, reason="too  small"),
        ret("C-1", "C", {"MUG": 1}, reason="broken", status="CLOSED", came_back=True),
        # Refused and never sent back: not counted anywhere.
        ret("D-1", "D", {"TIN": 3}, reason="broken", status="REJECTED"),
        ret("D-2", "D", {"TIN": 3}, reason="broken", status="CLOSED"),
        # Of an order not delivered (in this cohort): no rate to count it in.
        ret("X-1", "X", {"MUG": 1}, reason="broken"),
    ]
    result = return_kpis(DELIVERED, returns)
    assert (result.delivered_orders, result.delivered_units) == (4, 14)
    assert (result.returns, result.orders_returned, result.returned_units) == (3, 3, 5)
    assert result.order_return_rate == 0.75
    assert result.return_rate == pytest.approx(5 / 14)
    assert [(r.reason, r.returns, r.units, r.orders) for r in result.by_reason] == [
        ("too small", 2, 4, 2),
        ("broken", 1, 1, 1),
    ]
    assert [r.share_of_delivered_orders for r in result.by_reason] == [0.5, 0.25]
    # Most units returned first.
    assert [(k.sku, k.delivered_units, k.returned_units) for k in result.by_sku] == [
        ("MUG", 10, 4),
        ("TIN", 4, 1),
    ]
    assert [k.return_rate for k in result.by_sku] == [0.4, 0.25]


def test_a_return_never_counts_more_than_its_line_delivered() -> None:
    # Two returns of the same mugs (a hand-edited row): the older one holds them.
    early = ret("B-1", "B", {"MUG": 3})
    late = replace(early, return_id="B-2", requested_at=T0 + timedelta(days=1))
    result = return_kpis([DeliveredLineFacts("B", "MUG", 4)], [late, early])
    assert result.returned_units == 4 and result.return_rate == 1.0
    assert [(r.returns, r.units) for r in result.by_reason] == [(2, 4)]


def test_refunds_per_currency_and_time_to_refund() -> None:
    day = timedelta(days=1)
    returns = [
        ret("A-1", "A", {"MUG": 1}, status="REFUNDED", refund="12.50", refunded_after=2 * day),
        ret("B-1", "B", {"MUG": 1}, status="REFUNDED", refund="7.25", refunded_after=4 * day),
        ret(
            "C-1",
            "C",
            {"MUG": 1},
            status="REFUNDED",
            currency="USD",
            refund="9.99",
            refunded_after=6 * day,
        ),
        # Inspected, refund under way (or refused by the PSP): no refund yet.
        ret("D-1", "D", {"TIN": 1}, status="INSPECTED", came_back=True, refund="5.00"),
        # Closed with nothing accepted: refund 0.00 but no refund made.
        ret("D-2", "D", {"TIN": 1}, status="CLOSED", came_back=True, refund="0.00"),
    ]
    result = return_kpis(DELIVERED, returns)
    assert result.refunds == 3
    assert {c: (m.refunds, m.amount) for c, m in result.refunds_by_currency.items()} == {
        "EUR": (2, Decimal("19.75")),
        "USD": (1, Decimal("9.99")),
    }
    assert result.refunded_amount == Decimal("29.74")
    assert result.time_to_refund.count == 3
    assert result.time_to_refund.p50 == 4 * 86400
    assert result.time_to_refund.p95 == pytest.approx(5.8 * 86400)


def test_the_report_carries_the_returns_and_compares_them() -> None:
    returns = [
        ret(
            "A-1",
            "A",
            {"MUG": 2},
            status="REFUNDED",
            came_back=True,
            refund="25.00",
            refunded_after=timedelta(hours=30),
        )
    ]
    before = compute_kpis(START - timedelta(days=7), START, KpiInputs(delivered_lines=DELIVERED))
    after = compute_kpis(START, END, KpiInputs(delivered_lines=DELIVERED, returns=returns))
    assert after.returns == 1 and after.returned_units == 2
    assert after.return_refunded_amount == Decimal("25.00")
    assert after.return_refunds_by_currency["EUR"].refunds == 1
    assert after.time_to_refund_seconds.p50 == 30 * 3600
    values = {h.key: h.value for h in headlines(after)}
    assert values["return_rate"] == pytest.approx(2 / 14)
    assert values["order_return_rate"] == 0.25
    assert values["return_refunded_amount"] == 25.0
    assert values["time_to_refund_p50"] == 30 * 3600
    rows = {r.key: r for r in compare(before, after)}
    assert rows["return_rate"].before == 0.0 and rows["return_rate"].change == pytest.approx(1 / 7)
    assert rows["time_to_refund_p50"].before is None


def test_nothing_delivered_has_no_return_rates_and_old_snapshots_still_load() -> None:
    report = compute_kpis(START, END, KpiInputs())
    assert report.return_rate is None and report.order_return_rate is None
    assert report.returns_by_reason == [] and report.time_to_refund_seconds.count == 0
    stored = report.model_dump(mode="json")
    for key in (
        "delivered_orders",
        "returns",
        "return_rate",
        "returns_by_reason",
        "returns_by_sku",
        "return_refunded_amount",
        "return_refunds_by_currency",
        "time_to_refund_seconds",
    ):
        stored.pop(key)
    loaded = KpiReport.model_validate(stored)
    assert loaded.return_rate is None and loaded.time_to_refund_seconds.p50 is None
    assert loaded.return_refunded_amount == Decimal("0.00")
