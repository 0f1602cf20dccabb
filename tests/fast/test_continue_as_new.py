"""Continue-as-new after shipment: each field of `CarriedState` crosses to the next run, and
the behaviour that depends on it is the same after the crossing as before.

The policy's `continue_as_new_history_length` is set to its minimum (20), so the first run
continues as new right after the hand-over to the carrier, and later runs after a few
messages or follow-ups. `FIELD_PROOFS` names the test that proves each field; a field added
to `CarriedState` without a test here fails `test_every_carried_field_is_proved_here`.

Two fields (`lost_reason`, `holding_tickets`) are, as the workflow is written, empty
whenever a run continues: it decides only in the tracking loop, which it leaves for
logistics as soon as `lost_reason` is set, and leaves for good at delivery (before which no
complaint holds completion). For them a run is started from a
hand-made `CarriedState`, exactly as continue-as-new starts it, and the tests prove that the
next run acts on them; that `_carry` fills them in is not provable from outside.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from orderflow.models import (
    Awaiting,
    Classification,
    OrderPolicy,
    OrderStatus,
    PackedReport,
    ReviewDecision,
    RiskAssessment,
    RiskReason,
    ShipmentBooking,
    TimelineEntry,
    TrackingUpdate,
)
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import (
    CarriedState,
    FeedbackRequest,
    FeedbackResolved,
    LostParcelResolution,
    RebookRequest,
)
from tests.fast.harness import Harness
from tests.fast.shop import tracking_number

# Production durations; the warehouse automatic; a new run every 20 history events.
CONTINUING = OrderPolicy(auto_warehouse=True, continue_as_new_history_length=20)
SLACK = timedelta(minutes=1)

FIELD_PROOFS = {
    "status": "test_continue_as_new_after_shipment_keeps_what_people_see",
    "timeline": "test_continue_as_new_after_shipment_keeps_what_people_see",
    "classification": "test_continue_as_new_after_shipment_keeps_what_people_see",
    "assessment": "test_continue_as_new_after_shipment_keeps_what_people_see",
    "booking": "test_continue_as_new_after_shipment_keeps_what_people_see",
    "runs": "test_continue_as_new_after_shipment_keeps_what_people_see",
    "seen_tracking": "test_continue_as_new_keeps_the_tracking_events_seen",
    "follow_up_attempt": "test_continue_as_new_keeps_the_follow_up_count_and_schedule",
    "follow_up_at": "test_continue_as_new_keeps_the_follow_up_count_and_schedule",
    "packed": "test_continue_as_new_keeps_case_and_replacement_numbers_and_the_weight",
    "reship_no": "test_continue_as_new_keeps_case_and_replacement_numbers_and_the_weight",
    "lost_cases": "test_continue_as_new_keeps_case_and_replacement_numbers_and_the_weight",
    "booking_holds": "test_booking_hold_after_continue_as_new_gets_its_own_attempt_and_key",
    "lost_reason": "test_a_run_resumed_with_a_lost_parcel_opens_the_next_case_at_once",
    "through_psp": "test_a_continued_run_refunds_a_lost_parcel_through_the_psp_as_begun",
    "tracking_inbox": "test_continue_as_new_carries_events_that_came_while_it_waited_for_a_handler",
    "holding_tickets": "test_a_run_resumed_with_an_open_complaint_completes_only_once_it_is_resolved",
}


def test_every_carried_field_is_proved_here() -> None:
    assert set(FIELD_PROOFS) == set(CarriedState.model_fields)
    missing = {name for name in FIELD_PROOFS.values() if name not in globals()}
    assert not missing, f"no such test: {missing}"


async def _next_run(harness: Harness, order_id: str, *, reship_no: int = 0) -> None:
    """Carrier events for the parcel under way until the order has continued as new once
    more (each event grows the history by a handful of events)."""
    before = len(await harness.runs(order_id))
    for _ in range(12):
        await harness.track(order_id, "IN_TRANSIT", reship_no=reship_no)
        await harness.settle(order_id)
        if len(await harness.runs(order_id)) > before:
            return
    raise AssertionError(f"order {order_id} did not continue as new")


async def test_continue_as_new_after_shipment_keeps_what_people_see(harness: Harness) -> None:
    shop = harness.shop
    shop.flagged, shop.risk_score = True, 71.5
    shop.order_type, shop.department = "cross_border", "export"
    order = await harness.place(policy=CONTINUING)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.REVIEW_DECISION, "review")
    await harness.storefront.decide_review(oid, ReviewDecision(decision="approve", reviewer="rita"))
    runs = await harness.continued(oid, beyond=1)
    await harness.settle(oid)
    carried = runs[1].carried
    assert carried is not None and carried.runs == 2

    view = await harness.view(oid)
    assert view.status == OrderStatus.SHIPPED and view.awaiting == Awaiting.DELIVERY
    assert (view.order_type, view.department) == ("cross_border", "export")
    assert (view.risk_score, view.flagged) == (71.5, True)
    assert view.risk_reasons == [RiskReason(code="fake", message="set by the test", points=71.5)]
    assert (view.carrier, view.tracking_number) == ("dhl", tracking_number(oid))
    assert view.timeline == carried.timeline
    assert [(e.status, e.details.get("note")) for e in view.timeline] == [
        (OrderStatus.RECEIVED, None),
        (OrderStatus.CLASSIFIED, None),
        (OrderStatus.PENDING_REVIEW, None),
        (OrderStatus.APPROVED, None),
        (OrderStatus.RESERVED, None),
        (OrderStatus.PICKING, None),
        (OrderStatus.PICKING, "picked"),
        (OrderStatus.PACKED, None),
        (OrderStatus.SHIPPED, None),
    ]
    assert shop.count(ActivityName.RECORD_ORDER) == 1, "a continued run starts no new order"

    # Shipped, so a cancel is still refused in the new run.
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await harness.storefront.cancel(oid, "too late")
    assert isinstance(failed.value.cause, ApplicationError)
    assert "already shipped" in failed.value.cause.message
    # The carried booking is the parcel its events are matched against.
    await harness.track(oid, "IN_TRANSIT", event_id="e-transit")
    await harness.settle(oid)
    view = await harness.view(oid)
    assert view.status == OrderStatus.IN_TRANSIT and view.timeline[-1].step == 7
    # Each run hands over its own number.
    await _next_run(harness, oid)
    assert [r.carried.runs for r in await harness.runs(oid) if r.carried] == [2, 3]

    await harness.track(oid, "DELIVERED")
    final = await harness.result(oid)
    assert final.status == OrderStatus.COMPLETED
    assert final.timeline[: len(carried.timeline)] == carried.timeline
    assert shop.count(ActivityName.CANCEL_ORDER) == 0


async def test_continue_as_new_keeps_the_tracking_events_seen(harness: Harness) -> None:
    shop = harness.shop
    order = await harness.place(policy=CONTINUING)
    oid = order.order_id
    await harness.continued(oid, beyond=1)
    await harness.settle(oid)
    first = await harness.track(oid, "IN_TRANSIT", event_id="e-first")
    await harness.settle(oid)
    await _next_run(harness, oid)
    latest = (await harness.runs(oid))[-1].carried
    assert latest is not None and "e-first" in latest.seen_tracking

    # The carrier repeats an event the earlier run took: the new run drops it.
    await harness.storefront.tracking_event(oid, first)
    await harness.track(oid, "OUT_FOR_DELIVERY", event_id="e-out")
    await harness.settle(oid)
    recorded = [t.update.event_id for t in shop.inputs(ActivityName.RECORD_TRACKING)]
    assert recorded.count("e-first") == 1
    assert recorded[-1] == "e-out"
    assert len(recorded) == len(set(recorded))


async def test_continue_as_new_keeps_the_follow_up_count_and_schedule(harness: Harness) -> None:
    # A silent carrier: expected in 2 days, 1 day's grace, then a follow-up a day, escalated
    # from the 3rd, lost after the 6th, counted across runs and each on its own day.
    shop = harness.shop
    order = await harness.place(policy=CONTINUING)
    oid = order.order_id
    await harness.continued(oid, beyond=1)
    await harness.settle(oid)
    handed_over = shop.inputs(ActivityName.BOOK_SHIPMENT)[0].requested_at

    await harness.sleep(timedelta(days=8, minutes=10))
    await harness.called(ActivityName.OPEN_LOST_PARCEL_CASE)
    await harness.settle(oid)
    follow_ups = shop.inputs(ActivityName.FOLLOW_UP_DELIVERY)
    assert [(f.attempt, f.escalate) for f in follow_ups] == [
        (1, False),
        (2, False),
        (3, True),
        (4, True),
        (5, True),
        (6, True),
    ]
    (case,) = shop.inputs(ActivityName.OPEN_LOST_PARCEL_CASE)
    assert case.reason == "not delivered after 6 follow-ups"
    # The follow-ups were made by more than one run: the count and the date crossed.
    assert len(set(shop.runs_of(ActivityName.FOLLOW_UP_DELIVERY))) > 1
    handed = [r.carried for r in await harness.runs(oid) if r.carried and r.carried.follow_up_at]
    assert any(c.follow_up_attempt > 0 for c in handed)

    view = await harness.view(oid)
    times = [e.at for e in view.timeline if e.details.get("note") == "delivery follow-up"]
    assert timedelta(days=3) <= times[0] - handed_over < timedelta(days=3) + SLACK
    for earlier, later in itertools.pairwise(times):
        assert timedelta(days=1) <= later - earlier < timedelta(days=1) + SLACK


async def test_continue_as_new_keeps_case_and_replacement_numbers_and_the_weight(
    harness: Harness,
) -> None:
    shop = harness.shop
    shop.packed_weight_kg = 3.4
    order = await harness.place(policy=CONTINUING)
    oid = order.order_id
    await harness.continued(oid, beyond=1)
    await harness.settle(oid)

    await harness.track(oid, "LOST")
    await harness.settle(oid)
    await harness.storefront.resolve_lost_parcel(oid, LostParcelResolution(action="reship"))
    await harness.settle(oid)
    await _next_run(harness, oid, reship_no=1)
    latest = (await harness.runs(oid))[-1].carried
    assert latest is not None
    assert (latest.reship_no, latest.lost_cases, latest.packed.weight_kg) == (1, 1, 3.4)

    # The replacement is lost too: the next case and the next replacement, same weight.
    await harness.track(oid, "LOST", reship_no=1)
    await harness.settle(oid)
    outcome = await harness.storefront.resolve_lost_parcel(
        oid, LostParcelResolution(action="reship")
    )
    assert outcome.tracking_number == tracking_number(oid, 2)
    cases = shop.inputs(ActivityName.OPEN_LOST_PARCEL_CASE)
    assert [(c.case_no, c.tracking_number) for c in cases] == [
        (1, tracking_number(oid, 0)),
        (2, tracking_number(oid, 1)),
    ]
    case_runs = shop.runs_of(ActivityName.OPEN_LOST_PARCEL_CASE)
    assert case_runs[0] != case_runs[1], "the second case must be opened by a later run"
    taken = shop.inputs(ActivityName.TAKE_REPLACEMENT_STOCK)
    assert [(t.case_no, t.reship_no) for t in taken] == [(1, 1), (2, 2)]
    bookings = shop.inputs(ActivityName.BOOK_SHIPMENT)
    assert [(b.reship_no, b.weight_kg) for b in bookings] == [(0, 3.4), (1, 3.4), (2, 3.4)]

    await harness.track(oid, "DELIVERED", reship_no=2)
    assert (await harness.result(oid)).status == OrderStatus.COMPLETED


async def test_booking_hold_after_continue_as_new_gets_its_own_attempt_and_key(
    harness: Harness,
) -> None:
    # The bug of `_booking_holds` not being carried: after continue-as-new a refused reship
    # was held as attempt 1 again, its event key `delivery.booking_refused.1` collided, and
    # logistics was never told of the second hold.
    shop = harness.shop
    shop.refuse_bookings = 1
    order = await harness.place(policy=CONTINUING)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.CARRIER_BOOKING, "the first hold")
    await harness.storefront.retry_booking(oid, RebookRequest(by="lou"))
    runs = await harness.continued(oid, beyond=1)
    await harness.settle(oid)
    assert runs[1].carried is not None and runs[1].carried.booking_holds == 1

    await harness.track(oid, "LOST")
    await harness.settle(oid)
    shop.refuse_bookings = 1
    reship = asyncio.create_task(
        harness.storefront.resolve_lost_parcel(oid, LostParcelResolution(action="reship"))
    )
    try:
        await harness.called(ActivityName.HOLD_SHIPMENT, times=2)
        await harness.settle(oid)
        view = await harness.view(oid)
        assert view.awaiting == Awaiting.CARRIER_BOOKING

        holds = shop.inputs(ActivityName.HOLD_SHIPMENT)
        hold_runs = shop.runs_of(ActivityName.HOLD_SHIPMENT)
        assert hold_runs[0] != hold_runs[1], "the second hold must be made by a later run"
        assert [h.attempt for h in holds] == [1, 2]
        assert shop.collisions == []
        assert shop.told == [
            "logistics: booking refused (attempt 1)",
            "logistics: lost parcel case 1",
            "logistics: booking refused (attempt 2)",
        ]

        await harness.storefront.retry_booking(oid, RebookRequest(by="lou"))
        outcome = await reship
        assert outcome.tracking_number == tracking_number(oid, 1)
    finally:
        # A failed assertion must not leave the reship waiting past the test.
        reship.cancel()


async def test_continue_as_new_carries_events_that_came_while_it_waited_for_a_handler(
    harness: Harness,
) -> None:
    # A run that decides to continue first lets running handlers finish. Feedback whose
    # recording is held keeps it waiting; a carrier event that comes meanwhile sits in the
    # inbox, and the next run must apply it. The short workflow task timeout makes the task
    # holding the feedback hand over, so the events reach the order while it is held.
    shop = harness.shop
    order = await harness.place(policy=CONTINUING, task_timeout=timedelta(seconds=1))
    oid = order.order_id
    await harness.continued(oid, beyond=1)
    await harness.settle(oid)
    # Feedback grows the history without a turn of the tracking loop (where a run decides
    # to continue): after it, the next carrier event makes the run decide.
    for n in itertools.count():
        if await harness.history_length(oid) >= CONTINUING.continue_as_new_history_length:
            break
        await harness.storefront.submit_feedback(oid, _feedback(f"k-{n}"))
    gate = shop.gate(ActivityName.RECORD_FEEDBACK)
    held = asyncio.create_task(harness.storefront.submit_feedback(oid, _feedback("k-held")))
    try:
        await asyncio.wait_for(gate.entered.wait(), timeout=10)
        await harness.track(oid, "IN_TRANSIT", event_id="e-deciding")
        await harness.called(ActivityName.RECORD_TRACKING)
        waiting = await harness.track(oid, "OUT_FOR_DELIVERY", event_id="e-waiting")
        await harness.signal_taken(oid)
        assert len(await harness.runs(oid)) == 2, "continued before the handler finished"
        gate.open()
        await held
    finally:
        held.cancel()
    runs = await harness.continued(oid, beyond=2)
    await harness.settle(oid)
    assert runs[2].carried is not None and runs[2].carried.tracking_inbox == [waiting]

    recorded = shop.inputs(ActivityName.RECORD_TRACKING)
    assert [t.update.event_id for t in recorded] == ["e-deciding", "e-waiting"]
    by_run = shop.runs_of(ActivityName.RECORD_TRACKING)
    assert by_run[0] != by_run[1], "the waiting event must be applied by the next run"
    view = await harness.view(oid)
    assert view.status == OrderStatus.OUT_FOR_DELIVERY


def _feedback(key: str) -> FeedbackRequest:
    return FeedbackRequest(category="other", message="gift wrap, please", request_key=key)


async def _shipped(harness: Harness, order_id: str, reship_no: int = 0) -> CarriedState:
    """What a run that shipped the order's parcel (the n-th) hands to the next."""
    now = await harness.now()
    return CarriedState(
        status=OrderStatus.IN_TRANSIT,
        timeline=[TimelineEntry(status=OrderStatus.SHIPPED, step=6, at=now)],
        classification=Classification(order_type="normal", department="sales", rule="fake shop"),
        assessment=RiskAssessment(score=10, flagged=False),
        packed=PackedReport(weight_kg=2.0, by="auto-warehouse"),
        booking=ShipmentBooking(
            carrier="dhl",
            tracking_number=tracking_number(order_id, reship_no),
            delivery_note="DN",
            expected_delivery=now + timedelta(days=2),
            choice_reason="fake shop",
            cost=Decimal("4.90"),
        ),
    )


async def test_a_run_resumed_with_a_lost_parcel_opens_the_next_case_at_once(
    harness: Harness,
) -> None:
    order = harness.order()
    shipped = await _shipped(harness, order.order_id, reship_no=1)
    carried = shipped.model_copy(
        update={"lost_reason": "not delivered after 6 follow-ups", "lost_cases": 1, "reship_no": 1}
    )
    await harness.place(order, policy=CONTINUING, carried=carried)
    view = await harness.until(
        order.order_id, lambda v: v.awaiting == Awaiting.LOST_PARCEL_RESOLUTION, "the lost case"
    )
    (case,) = harness.shop.inputs(ActivityName.OPEN_LOST_PARCEL_CASE)
    assert (case.case_no, case.reason) == (2, "not delivered after 6 follow-ups")
    assert case.tracking_number == shipped.booking.tracking_number
    assert view.timeline[0] == carried.timeline[0]
    assert harness.shop.count(ActivityName.FOLLOW_UP_DELIVERY) == 0
    outcome = await harness.storefront.resolve_lost_parcel(
        order.order_id, LostParcelResolution(action="reship")
    )
    assert outcome.tracking_number == tracking_number(order.order_id, 2)


@pytest.mark.parametrize("through_psp", [True, False], ids=["psp", "begun-before-the-psp"])
async def test_a_continued_run_refunds_a_lost_parcel_through_the_psp_as_begun(
    harness: Harness, through_psp: bool
) -> None:
    order = harness.order()
    oid = order.order_id
    if through_psp:
        await harness.place(order, policy=CONTINUING)
        runs = await harness.continued(oid, beyond=1)
        carried = runs[-1].carried
        assert carried is not None and carried.through_psp
    else:
        # A run that continued on the code before the PSP: it carries no `through_psp`.
        shipped = await _shipped(harness, oid)
        assert not shipped.through_psp
        await harness.place(order, policy=CONTINUING, carried=shipped)
    await harness.settle(oid)
    await harness.track(oid, "LOST")
    await harness.until(oid, lambda v: v.awaiting == Awaiting.LOST_PARCEL_RESOLUTION, "lost case")
    await harness.storefront.resolve_lost_parcel(oid, LostParcelResolution(action="refund"))
    assert (await harness.result(oid)).status == OrderStatus.CANCELLED
    refunds = harness.shop.inputs(ActivityName.REFUND_PAYMENT)
    if through_psp:
        (refund,) = refunds
        assert (refund.reason, refund.amount) == ("parcel lost", None)
        first_run = harness.shop.runs_of(ActivityName.RECORD_ORDER)[0]
        assert harness.shop.runs_of(ActivityName.REFUND_PAYMENT)[0] != first_run
    else:
        assert refunds == []


async def test_a_run_resumed_with_an_open_complaint_completes_only_once_it_is_resolved(
    harness: Harness,
) -> None:
    # The inbox holds the delivery the last run had not applied yet; a complaint ticket
    # holds completion past the quiet period (3 days) until it is resolved.
    order = harness.order()
    shipped = await _shipped(harness, order.order_id)
    delivered = TrackingUpdate(
        event_id="e-delivered",
        tracking_number=shipped.booking.tracking_number,
        status="DELIVERED",
        at=await harness.now(),
    )
    carried = shipped.model_copy(
        update={
            "seen_tracking": ["e-delivered"],
            "tracking_inbox": [delivered],
            "holding_tickets": ["FB-1"],
        }
    )
    policy = OrderPolicy(auto_warehouse=True, review_window=timedelta(0))
    await harness.place(order, policy=policy, carried=carried)
    view = await harness.until(
        order.order_id, lambda v: v.status == OrderStatus.DELIVERED, "the delivery"
    )
    (recorded,) = harness.shop.inputs(ActivityName.RECORD_TRACKING)
    assert recorded.update == delivered
    await harness.sleep(timedelta(days=3, minutes=5))
    view = await harness.until(
        order.order_id, lambda v: v.awaiting == Awaiting.COMPLAINT_RESOLUTION, "the complaint"
    )
    assert view.status == OrderStatus.DELIVERED
    assert harness.shop.count(ActivityName.COMPLETE_ORDER) == 0

    await harness.storefront.feedback_resolved(order.order_id, FeedbackResolved(ticket_id="FB-1"))
    final = await harness.result(order.order_id)
    assert final.status == OrderStatus.COMPLETED
    (completed,) = harness.shop.inputs(ActivityName.COMPLETE_ORDER)
    assert completed.how == "quiet_period"
