"""The KPI computations of the improvement loop (policies/kpi.py), without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderflow.models import OrderStatus
from policies.kpi import (
    MILESTONES,
    FeedbackFacts,
    FollowUpFacts,
    KpiInputs,
    KpiSnapshotRequest,
    OrderFacts,
    ShipmentFacts,
    compare,
    compute_kpis,
    headlines,
    percentile,
    quantiles,
    rate,
    snapshot_period,
    step_durations,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
START, END = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def completed_order(order_id: str, *, minutes_per_step: float = 1.0, **kw: object) -> OrderFacts:
    reached = {str(m): at(minutes_per_step * (i + 1)) for i, m in enumerate(MILESTONES)}
    values: dict[str, object] = {
        "order_id": order_id,
        "order_type": "normal",
        "channel": "web",
        "status": "COMPLETED",
        "placed_at": T0,
        "lines": 1,
        "reached": reached,
        "kinds": frozenset({"order_received", "auto_approved", "stock_reserved"}),
        "kind_times": {},
    }
    values.update(kw)
    return OrderFacts(**values)  # type: ignore[arg-type]


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50),
    st.floats(min_value=0, max_value=1),
)
def test_percentile_agrees_with_numpy(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.quantile(values, q)), abs=1e-6)


def test_percentile_edges() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_quantiles_and_rate() -> None:
    q = quantiles([10.0, 20.0, 30.0])
    assert (q.count, q.p50, q.mean) == (3, 20.0, 20.0)
    assert quantiles([]).p50 is None and quantiles([]).count == 0
    assert rate(1, 4) == 0.25
    assert rate(0, 0) is None
    with pytest.raises(ValueError):
        rate(5, 4)


def test_cycle_times_of_a_completed_order_add_up_to_its_lead_time() -> None:
    order = completed_order("A", minutes_per_step=3)
    durations = step_durations(order.placed_at, order.reached)
    assert sorted(durations) == list(range(1, 9))
    assert all(d == 180.0 for d in durations.values())
    lead = (order.reached["COMPLETED"] - order.placed_at).total_seconds()
    assert sum(durations.values()) == lead


def test_a_step_counts_only_when_both_its_milestones_were_reached() -> None:
    reached = {"RECEIVED": at(1), "CLASSIFIED": at(2), "REJECTED": at(30)}
    assert step_durations(T0, reached) == {1: 60.0, 2: 60.0}
    # A backordered order that got its stock: step 4 runs from APPROVED to RESERVED.
    reached = {
        "RECEIVED": at(1),
        "CLASSIFIED": at(2),
        "APPROVED": at(3),
        "BACKORDERED": at(3.5),
        "RESERVED": at(63),
    }
    assert step_durations(T0, reached)[4] == 3600.0
    # The storefront's clock may run ahead: never a negative duration.
    assert step_durations(at(5), {"RECEIVED": at(1)}) == {1: 0.0}


def test_compute_kpis_on_a_small_period() -> None:
    flagged_then_approved = completed_order(
        "F1",
        kinds=frozenset({"review_flagged", "review_approved"}),
        kind_times={"review_flagged": at(2.5), "review_approved": at(12.5)},
        channel="mobile",
    )
    rejected = OrderFacts(
        order_id="F2",
        order_type="bulk",
        channel="marketplace",
        status="REJECTED",
        placed_at=T0,
        lines=2,
        reached={
            "RECEIVED": at(1),
            "CLASSIFIED": at(2),
            "PENDING_REVIEW": at(3),
            "REJECTED": at(4),
        },
        kinds=frozenset({"review_flagged", "review_rejected"}),
        kind_times={"review_flagged": at(3), "review_rejected": at(4)},
    )
    backordered = completed_order(
        "B1",
        lines=3,
        short_skus=frozenset({"SKU-KETTLE"}),
        reached={
            **completed_order("x").reached,
            "BACKORDERED": at(3.5),
        },
    )
    in_flight = OrderFacts(
        order_id="P1",
        order_type=None,
        channel="web",
        status="RECEIVED",
        placed_at=T0,
        lines=1,
        reached={"RECEIVED": at(1)},
    )
    orders = [completed_order("A"), flagged_then_approved, rejected, backordered, in_flight]
    data = KpiInputs(
        orders=orders,
        review_task_statuses={"F1": "approved", "F2": "rejected", "F3": "expired"},
        shipments=[
            ShipmentFacts("A", "dhl", at(100), at(90)),
            ShipmentFacts("F1", "dhl", at(100), at(120)),
            ShipmentFacts("B1", "ups", at(100), None),
        ],
        follow_ups=[FollowUpFacts("B1", 1, False), FollowUpFacts("B1", 2, True)],
        feedback=[
            FeedbackFacts("logistics", "delivery", at(0), at(60)),
            FeedbackFacts("logistics", "delivery", at(0), None),
            FeedbackFacts("quality", "product", at(0), at(30)),
        ],
        ratings=[5, 4, 3],
    )
    report = compute_kpis(START, END, data)

    assert report.orders == 5
    assert report.by_type == {"bulk": 1, "normal": 3, "unclassified": 1}
    assert report.by_channel == {"marketplace": 1, "mobile": 1, "web": 3}
    assert report.assessed == 4 and report.auto_approved == 2 and report.flagged == 2
    assert report.auto_approval_rate == 0.5 and report.flag_rate == 0.5
    # One of two reviewer decisions overturned the flag; the timeout is no decision.
    assert report.reviewer_decisions == 2 and report.overturned == 1
    assert report.overturn_rate == 0.5 and report.review_timeouts == 1
    assert report.review_decision_seconds.count == 2
    assert report.review_decision_seconds.p50 == pytest.approx((600 + 60) / 2)
    # Stock was tried for the three orders that got past review.
    assert report.stock_checked == 3 and report.backordered == 1
    assert report.lines_checked == 5 and report.lines_short == 1
    assert report.stockout_rate == pytest.approx(0.2)
    assert report.skus_short == ["SKU-KETTLE"]
    assert report.delivered == 2 and report.on_time == 1 and report.on_time_rate == 0.5
    assert [(c.carrier, c.on_time_rate) for c in report.by_carrier] == [("dhl", 0.5), ("ups", None)]
    assert report.follow_ups == 2 and report.orders_followed_up == 1
    assert report.escalated_follow_ups == 1
    assert report.follow_up_rate == pytest.approx(1 / 3)
    assert [(f.department, f.category, f.tickets, f.open) for f in report.feedback] == [
        ("logistics", "delivery", 2, 1),
        ("quality", "product", 1, 0),
    ]
    assert report.feedback[0].resolution_seconds.p50 == 3600.0
    assert report.average_rating == 4.0 and report.ratings == {"3": 1, "4": 1, "5": 1}
    # Completed orders: 8 steps of 1 minute each.
    assert report.lead_time_seconds.count == 3 and report.lead_time_seconds.p50 == 480.0
    assert report.step_cycle_seconds["3"].count == 3  # the rejected order has no step 3 time
    assert report.step_cycle_seconds["1"].count == 5
    # Round trip: a snapshot stored as JSON reads back the same report.
    assert type(report).model_validate_json(report.model_dump_json()) == report


def test_empty_period_has_no_rates() -> None:
    report = compute_kpis(START, END, KpiInputs())
    assert report.orders == 0
    assert report.flag_rate is None and report.on_time_rate is None
    assert report.average_rating is None
    assert all(q.count == 0 for q in report.step_cycle_seconds.values())


def test_compare_two_periods() -> None:
    before = compute_kpis(START, END, KpiInputs(orders=[completed_order("A", minutes_per_step=2)]))
    after = compute_kpis(
        END,
        END + timedelta(days=7),
        KpiInputs(orders=[completed_order("B"), completed_order("C")]),
    )
    rows = {r.key: r for r in compare(before, after)}
    assert [r.key for r in compare(before, after)] == [h.key for h in headlines(before)]
    assert rows["orders"].before == 1 and rows["orders"].after == 2
    assert rows["orders"].change == 1 and rows["orders"].relative_change == 1.0
    assert rows["lead_time_p50"].before == 960.0 and rows["lead_time_p50"].after == 480.0
    assert rows["lead_time_p50"].relative_change == -0.5
    assert rows["step_3_p95"].before == 120.0
    assert rows["on_time_rate"].change is None
    assert {OrderStatus.COMPLETED.value} == set(after.by_status)


def test_snapshot_period_is_whole_utc_days_before_today() -> None:
    now = datetime(2026, 11, 16, 0, 5, 12, tzinfo=UTC)
    period = snapshot_period(now, KpiSnapshotRequest())
    assert period.period_end == datetime(2026, 11, 16, tzinfo=UTC)
    assert period.period_start == datetime(2026, 11, 9, tzinfo=UTC)
    berlin = timezone(timedelta(hours=1))
    late = snapshot_period(datetime(2026, 11, 16, 0, 30, tzinfo=berlin), KpiSnapshotRequest(days=1))
    assert late.period_end == datetime(2026, 11, 15, tzinfo=UTC)  # 23:30 UTC on the 15th
    asked = KpiSnapshotRequest(period_start=START, period_end=END)
    assert snapshot_period(now, asked).period_start == START
    with pytest.raises(ValueError):
        snapshot_period(now, KpiSnapshotRequest(period_start=END, period_end=START))
