"""The weekly process review: which week a run covers, and the pack of every step with its
figures against last week and the 4-week median, its issues and its changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from orderflow.models.process_review import ProcessReviewRequest, review_week
from policies.kpi import KpiInputs, KpiReport, OrderFacts, compute_kpis
from policies.process_review import build_pack

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


def test_the_week_is_the_last_whole_one_or_the_one_asked_for() -> None:
    for now in (MONDAY + timedelta(minutes=20), MONDAY + timedelta(days=6, hours=23)):
        week = review_week(now, ProcessReviewRequest())
        assert (week.week_start, week.week_end) == (MONDAY - timedelta(days=7), MONDAY)
    asked = review_week(MONDAY, ProcessReviewRequest(week_start=date(2026, 11, 4)))
    assert asked.week_start == datetime(2026, 11, 4, tzinfo=UTC)
    assert asked.week_end - asked.week_start == timedelta(days=7)


def _week(start: datetime, review_minutes: list[float]) -> KpiReport:
    orders = []
    for n, minutes in enumerate(review_minutes):
        placed = start + timedelta(hours=n)
        classified = placed + timedelta(seconds=1)
        orders.append(
            OrderFacts(
                order_id=f"O-{start:%m%d}-{n}",
                order_type="standard",
                channel="web",
                status="APPROVED",
                placed_at=placed,
                lines=1,
                reached={
                    "RECEIVED": placed,
                    "CLASSIFIED": classified,
                    "APPROVED": classified + timedelta(minutes=minutes),
                },
                kinds=frozenset({"auto_approved"}),
            )
        )
    return compute_kpis(start, start + timedelta(days=7), KpiInputs(orders=orders))


def test_the_pack_has_every_step_with_its_figures_issues_and_changes() -> None:
    this = _week(MONDAY, [10, 10])
    prior = [_week(MONDAY - timedelta(days=7 * i), [m]) for i, m in enumerate([20, 40, 60, 80], 1)]
    raised = {
        "ticket_id": "PI-1",
        "step": 3,
        "raised_at": MONDAY + timedelta(days=1),
        "resolved_at": None,
    }
    resolved = {
        "ticket_id": "PI-0",
        "step": 3,
        "raised_at": MONDAY - timedelta(days=3),
        "resolved_at": MONDAY + timedelta(days=2),
    }
    change = {"id": 7, "setting": "order_policy.review_sla", "steps": [3]}
    pack = build_pack(
        week_start=MONDAY,
        week_end=MONDAY + timedelta(days=7),
        this_week=this,
        prior_weeks=prior,
        sla_breaches={3: 1, 5: 0},
        issues=[resolved, raised],
        open_issues={3: 1},
        changes=[change],
    )
    assert [s.step for s in pack.steps] == list(range(1, 9))
    review = pack.steps[2]
    assert review.name == "Review" and review.department == "risk" and review.orders == 2
    p50 = next(f for f in review.figures if f.key == "step_3_p50")
    assert (p50.this_week, p50.last_week, p50.median_4_weeks) == (600.0, 1200.0, 3000.0)
    assert "flag_rate" in {f.key for f in review.figures}
    assert [i["ticket_id"] for i in review.issues_raised] == ["PI-1"]
    assert [i["ticket_id"] for i in review.issues_resolved] == ["PI-0"]
    assert review.open_issues == 1 and review.sla_breaches == 1
    assert [c["id"] for c in review.changes] == [7]
    picking = pack.steps[4]
    assert picking.sla_breaches == 0 and picking.changes == [] and picking.issues_raised == []
    assert pack.steps[0].sla_breaches is None, "step 1 has no service level counted"
    assert (pack.orders_this_week, pack.orders_last_week) == (2, 1)
