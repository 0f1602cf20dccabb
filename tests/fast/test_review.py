"""Step 3 at the production durations (review SLA 4 h, deadline 24 h), skipped by the server:
escalation at the SLA, rejection with a refund at the deadline, a late decision still taken."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from orderflow.models import Awaiting, OrderStatus, OrderView, ReviewDecision
from orderflow.models.activity_names import ActivityName
from orderflow.models.steps import ReviewOutcomeInput
from tests.fast.harness import PRODUCTION, Harness

# Workflow time runs on in real time between sleeps: a timer fires at most this late.
SLACK = timedelta(minutes=1)


def _entered(view: OrderView, status: OrderStatus) -> datetime:
    return next(e.at for e in view.timeline if e.status == status)


def _noted(view: OrderView, note: str) -> list[datetime]:
    return [e.at for e in view.timeline if e.details.get("note") == note]


async def test_unanswered_review_escalates_at_the_sla_and_is_rejected_at_the_deadline(
    harness: Harness,
) -> None:
    harness.shop.flagged = True
    order = await harness.place(policy=PRODUCTION)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.REVIEW_DECISION, "review")
    (assessed,) = harness.shop.inputs(ActivityName.ASSESS_RISK)
    assert (assessed.review_sla, assessed.review_deadline) == (
        timedelta(hours=4),
        timedelta(hours=24),
    )

    await harness.sleep(timedelta(hours=3, minutes=50))
    assert harness.shop.count(ActivityName.ESCALATE_REVIEW) == 0, "escalated before the SLA"
    await harness.sleep(timedelta(minutes=15))
    await harness.called(ActivityName.ESCALATE_REVIEW)
    view = await harness.view(order.order_id)
    assert view.status == OrderStatus.PENDING_REVIEW
    assert view.awaiting == Awaiting.REVIEW_DECISION
    opened = _entered(view, OrderStatus.PENDING_REVIEW)
    (escalated,) = _noted(view, "review escalated")
    assert timedelta(hours=4) <= escalated - opened < timedelta(hours=4) + SLACK

    final = await harness.result(order.order_id)
    assert final.status == OrderStatus.REJECTED
    rejected = _entered(final, OrderStatus.REJECTED)
    assert timedelta(hours=24) <= rejected - opened < timedelta(hours=24) + SLACK
    assert harness.shop.inputs(ActivityName.RECORD_REVIEW_DECISION) == [
        ReviewOutcomeInput(
            order_id=order.order_id,
            decision=ReviewDecision(decision="reject", reviewer="system", note="review_timeout"),
            timed_out=True,
        )
    ]
    assert harness.shop.refunds == ["review_timeout"]
    assert harness.shop.count(ActivityName.ESCALATE_REVIEW) == 1
    assert harness.shop.count(ActivityName.RESERVE_STOCK) == 0
    assert harness.shop.told == ["supervisor: review overdue"]


async def test_decision_after_escalation_moves_the_order_on(harness: Harness) -> None:
    harness.shop.flagged = True
    order = await harness.place(policy=PRODUCTION)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.REVIEW_DECISION, "review")
    await harness.sleep(timedelta(hours=5))
    await harness.called(ActivityName.ESCALATE_REVIEW)

    view = await harness.storefront.decide_review(
        order.order_id, ReviewDecision(decision="approve", reviewer="rita", note="called them")
    )
    assert view.status != OrderStatus.PENDING_REVIEW and view.awaiting != Awaiting.REVIEW_DECISION
    (recorded,) = harness.shop.inputs(ActivityName.RECORD_REVIEW_DECISION)
    assert recorded.decision.reviewer == "rita" and recorded.timed_out is False
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.DELIVERY, "shipment")
    # The deadline passes while the parcel is under way: nothing of the review fires again.
    await harness.sleep(timedelta(hours=20))
    assert harness.shop.count(ActivityName.ESCALATE_REVIEW) == 1
    assert harness.shop.count(ActivityName.RECORD_REVIEW_DECISION) == 1
    assert harness.shop.refunds == []


async def test_a_decision_is_refused_while_no_review_is_awaited(harness: Harness) -> None:
    order = await harness.place(policy=PRODUCTION)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.DELIVERY, "shipment")
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await harness.storefront.decide_review(
            order.order_id, ReviewDecision(decision="approve", reviewer="rita")
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "WrongState"
    assert harness.shop.count(ActivityName.RECORD_REVIEW_DECISION) == 0
