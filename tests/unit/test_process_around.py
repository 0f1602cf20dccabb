"""Before and after a process change: equal windows around it, the touched steps' figures
side by side with the orders each counts, and warnings for windows too small to conclude."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policies.kpi import KpiInputs, KpiReport, OrderFacts, compute_kpis
from policies.process_around import around_rows, around_windows, window_warnings

CHANGE = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)


def test_windows_are_equal_and_shortened_to_the_time_since_the_change() -> None:
    week = timedelta(days=7)
    full = around_windows(CHANGE, CHANGE + timedelta(days=10), week)
    assert (full.before_start, full.after_end) == (CHANGE - week, CHANGE + week)
    assert not full.shortened
    recent = around_windows(CHANGE, CHANGE + timedelta(days=2), week)
    assert recent.change_at - recent.before_start == recent.after_end - recent.change_at
    assert recent.after_end == CHANGE + timedelta(days=2) and recent.shortened
    with pytest.raises(ValueError, match="nothing after it"):
        around_windows(CHANGE, CHANGE, week)
    with pytest.raises(ValueError):
        around_windows(CHANGE, CHANGE + week, timedelta(0))


def _order(n: int, placed: datetime, review_minutes: float, flagged: bool) -> OrderFacts:
    classified = placed + timedelta(seconds=1)
    approved = classified + timedelta(minutes=review_minutes)
    return OrderFacts(
        order_id=f"O-{n}",
        order_type="standard",
        channel="web",
        status="APPROVED",
        placed_at=placed,
        lines=1,
        reached={"RECEIVED": placed, "CLASSIFIED": classified, "APPROVED": approved},
        kinds=frozenset({"review_flagged" if flagged else "auto_approved"}),
    )


def _report(start: datetime, orders: list[OrderFacts]) -> KpiReport:
    return compute_kpis(start, start + timedelta(days=1), KpiInputs(orders=orders))


def test_the_review_steps_figures_before_and_after() -> None:
    day_before = CHANGE - timedelta(days=1)
    before = _report(
        day_before,
        [_order(i, day_before + timedelta(hours=i), 60, flagged=i < 2) for i in range(4)],
    )
    after = _report(
        CHANGE, [_order(10 + i, CHANGE + timedelta(hours=i), 30, flagged=False) for i in range(5)]
    )
    rows = {r.key: r for r in around_rows(before, after, [3])}
    assert list(rows)[:2] == ["step_3_p50", "step_3_p95"]
    p50 = rows["step_3_p50"]
    assert (p50.before, p50.after, p50.change) == (3600.0, 1800.0, -1800.0)
    assert (p50.before_orders, p50.after_orders) == (4, 5)
    flag = rows["flag_rate"]
    assert (flag.before, flag.after) == (0.5, 0.0) and flag.step == 3
    assert "backorder_rate" not in rows, "only the touched steps' figures"

    warnings = window_warnings(before, after, [3], minimum=5)
    assert len(warnings) == 1
    assert "window before the change has 4 orders, fewer than 5" in warnings[0]
    assert window_warnings(before, after, [3], minimum=4) == []
    # Enough orders in the window, but too few of them passed the step.
    assert "passed step 4" in window_warnings(before, after, [4], minimum=4)[0]
