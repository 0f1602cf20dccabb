"""Review SLAs at production durations: the escalation at the review SLA and the rejection
at the final deadline fire exactly as configured (hours, skipped by the test server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import Order, OrderPolicy, ReviewDecision
from tests.helpers import events_of, order_json, wait_for_status
from tests.servers import Stack, running_stack

# Production review durations; everything else instant so the approved path can finish.
POLICY = OrderPolicy.instant().model_copy(
    update={"review_sla": timedelta(hours=4), "review_deadline": timedelta(hours=24)}
)


@pytest.fixture(scope="module")
async def stack(time_skipping_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(time_skipping_env, database_url, policy=POLICY) as running:
        yield running


async def _flagged_order(stack: Stack) -> Order:
    order = Order.model_validate(order_json(payment_status="failed"))
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order.order_id, "PENDING_REVIEW")
    return order


async def _task(stack: Stack, order_id: str):  # type: ignore[no-untyped-def]
    return await stack.pool.fetchrow(
        "SELECT status, opened_at, due_at, deadline_at, escalated_at, decided_by, note FROM review_tasks WHERE order_id = $1",
        order_id,
    )


async def test_unanswered_review_escalates_at_sla_and_is_rejected_at_deadline(
    stack: Stack, time_skipping_env: WorkflowEnvironment
) -> None:
    order = await _flagged_order(stack)
    task = await _task(stack, order.order_id)
    assert task["status"] == "open"
    assert task["due_at"] - task["opened_at"] == timedelta(hours=4)
    assert task["deadline_at"] - task["opened_at"] == timedelta(hours=24)

    await time_skipping_env.sleep(timedelta(hours=3, minutes=50))
    assert (await _task(stack, order.order_id))["status"] == "open", "not escalated before the SLA"

    await time_skipping_env.sleep(timedelta(minutes=15))
    task = await _task(stack, order.order_id)
    assert task["status"] == "escalated"
    supervisor_notices = await stack.pool.fetchval(
        "SELECT count(*) FROM notifications WHERE order_id = $1 AND kind = 'review_escalated'",
        order.order_id,
    )
    assert supervisor_notices == 1
    assert (
        await stack.pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order.order_id)
        == "PENDING_REVIEW"
    )

    await time_skipping_env.sleep(timedelta(hours=20, minutes=10))
    assert await wait_for_status(stack.pool, order.order_id, "REJECTED") == "REJECTED"
    task = await _task(stack, order.order_id)
    assert task["status"] == "expired" and task["note"] == "review_timeout"
    refund = await stack.pool.fetchrow(
        "SELECT reason FROM refunds WHERE order_id = $1", order.order_id
    )
    assert refund is not None and refund["reason"] == "review_timeout"
    kinds = [e["kind"] for e in await events_of(stack.pool, order.order_id)]
    assert kinds.count("review_escalated") == 1 and kinds.count("review_timeout") == 1


async def test_decision_after_escalation_moves_the_order_on(
    stack: Stack, time_skipping_env: WorkflowEnvironment
) -> None:
    order = await _flagged_order(stack)
    await time_skipping_env.sleep(timedelta(hours=5))
    assert (await _task(stack, order.order_id))["status"] == "escalated"

    view = await stack.storefront.decide_review(
        order.order_id,
        ReviewDecision(decision="approve", reviewer="rita", note="verified by phone"),
    )
    assert view.status != "PENDING_REVIEW"
    final = await stack.storefront.handle(order.order_id).result()
    assert final.status == "COMPLETED"
    task = await _task(stack, order.order_id)
    assert task["status"] == "approved" and task["decided_by"] == "rita"
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM refunds WHERE order_id = $1", order.order_id
        )
        == 0
    )


async def test_prompt_decision_never_escalates(
    stack: Stack, time_skipping_env: WorkflowEnvironment
) -> None:
    order = await _flagged_order(stack)
    await time_skipping_env.sleep(timedelta(hours=1))
    await stack.storefront.decide_review(
        order.order_id, ReviewDecision(decision="reject", reviewer="rita", note="stolen card")
    )
    final = await stack.storefront.handle(order.order_id).result()
    assert final.status == "REJECTED"
    kinds = [e["kind"] for e in await events_of(stack.pool, order.order_id)]
    assert "review_escalated" not in kinds and "review_rejected" in kinds
