"""An order a step can never process: when a local activity fails for good on the order's
data (non-retryable, type `Unprocessable`), the order is not retried forever at that step.
It ends REJECTED with "cannot be processed: ..." as the reason, what the steps did is
undone, and customer service has it in its queue."""

from __future__ import annotations

import pytest

from orderflow.models import OrderStatus
from orderflow.models.activity_names import ActivityName
from tests.fast.harness import INSTANT, Harness
from tests.fast.shop import PAYMENT_REFUNDED, STOCK_RELEASED


@pytest.mark.parametrize(
    ("failing", "step", "before"),
    [
        (ActivityName.RECORD_ORDER, 1, []),
        (ActivityName.CLASSIFY_ORDER, 1, [ActivityName.RECORD_ORDER]),
        (
            ActivityName.OPEN_PICK_TASK,
            4,
            [
                ActivityName.RECORD_ORDER,
                ActivityName.CLASSIFY_ORDER,
                ActivityName.ASSESS_RISK,
                ActivityName.RESERVE_STOCK,
            ],
        ),
    ],
)
async def test_a_step_that_fails_for_good_rejects_the_order_with_the_reason(
    harness: Harness, failing: ActivityName, step: int, before: list[ActivityName]
) -> None:
    shop = harness.shop
    shop.unprocessable[failing] = "DataError: date value out of range"
    order = await harness.place(policy=INSTANT)
    final = await harness.result(order.order_id)

    reason = "cannot be processed: DataError: date value out of range"
    assert final.status == OrderStatus.REJECTED
    assert final.timeline[-1].status == OrderStatus.REJECTED
    assert final.timeline[-1].details["reason"] == reason
    # Tried once (non-retryable), then the order was rejected: nothing after it ran but
    # the refund of the payment captured at checkout, when step 1 had recorded it.
    refunded = [ActivityName.REFUND_PAYMENT] if failing != ActivityName.RECORD_ORDER else []
    assert shop.names() == [*before, failing, ActivityName.REJECT_UNPROCESSABLE, *refunded]
    assert [r.reason for r in shop.inputs(ActivityName.REFUND_PAYMENT)] == [reason] * len(refunded)
    (rejected,) = shop.inputs(ActivityName.REJECT_UNPROCESSABLE)
    assert (rejected.step, rejected.activity, rejected.reason) == (step, failing.value, reason)
    assert shop.told[-1] == f"customer_service: {reason}"
    if failing == ActivityName.OPEN_PICK_TASK:
        assert shop.undone == [STOCK_RELEASED, PAYMENT_REFUNDED]


async def test_a_cancel_after_the_rejection_is_refused(harness: Harness) -> None:
    harness.shop.unprocessable[ActivityName.CLASSIFY_ORDER] = "ValueError: bad"
    order = await harness.place(policy=INSTANT)
    await harness.result(order.order_id)
    view = await harness.view(order.order_id)
    assert view.status == OrderStatus.REJECTED
