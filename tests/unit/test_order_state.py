"""The order workflow's state by step (workflows/order_state.py) and the continue-as-new input
built from it: every carried field belongs to one part, and a run that continued as new before
the state was split by step resumes on today's code, which hands on the same shape.

`continued_before_state_by_step.json` is the input of a fourth run exactly as the workflow of
before the split wrote it (fast tier: a booking refused once, a parcel lost and reshipped);
only its layout was indented.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from orderflow.models import (
    CancelRequest,
    OrderStatus,
    OrderWorkflowInput,
    ReviewDecision,
    TrackingUpdate,
)
from orderflow.models.messages import CarriedState, RebookRequest
from workflows.order import OrderWorkflow
from workflows.order_state import (
    OrderState,
    ParcelState,
    Part,
    TrackingState,
    check_carried_state,
    part_types,
)

WRITTEN_BEFORE = Path(__file__).with_name("continued_before_state_by_step.json")


def _old_input() -> dict[str, Any]:
    loaded = json.loads(WRITTEN_BEFORE.read_text())
    assert isinstance(loaded, dict)
    return loaded


async def _decode(data: dict[str, Any]) -> OrderWorkflowInput:
    """As the worker reads a run's input: the payload through the production converter."""
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(data).encode())
    (decoded,) = await pydantic_data_converter.decode([payload], [OrderWorkflowInput])
    assert isinstance(decoded, OrderWorkflowInput)
    return decoded


async def _encoded_carried(carried: CarriedState) -> dict[str, Any]:
    (payload,) = await pydantic_data_converter.encode([carried])
    loaded = json.loads(payload.data)
    assert isinstance(loaded, dict)
    return loaded


def test_every_carried_field_is_carried_by_exactly_one_part() -> None:
    carried = [name for part in part_types() for name in part.carried_fields()]
    assert sorted(carried) == sorted(CarriedState.model_fields)


def test_a_carried_field_missing_from_carried_state_fails_the_check() -> None:
    class Forgotten(Part):
        last_carrier_status: str | None = None

    with pytest.raises(TypeError, match=r"not in CarriedState \['last_carrier_status'\]"):
        check_carried_state([*part_types(), Forgotten])
    with pytest.raises(TypeError, match=r"by two parts \['follow_up_at', "):
        check_carried_state([*part_types(), TrackingState])
    with pytest.raises(TypeError, match=r"in no part \['booking', 'booking_holds', 'reship_no'\]"):
        check_carried_state([p for p in part_types() if p is not ParcelState])


def test_per_run_fields_are_not_carried() -> None:
    state = OrderState()
    state.review.decision = ReviewDecision(decision="approve")
    state.cancellation.request = CancelRequest(reason="changed my mind")
    state.tracking.delivered = True
    assert state.model_dump()["review"] == {"classification": None, "assessment": None}
    assert state.model_dump()["cancellation"] == {}
    assert "delivered" not in state.model_dump()["tracking"]


async def test_an_input_written_before_the_split_resumes_with_every_carried_field() -> None:
    data = await _decode(_old_input())
    assert data.carried is not None
    state = OrderState.resume(data.carried)

    progress, parcel = state.progress, state.parcel
    assert (progress.status, progress.runs, len(progress.timeline)) == (
        OrderStatus.IN_TRANSIT,
        4,
        17,
    )
    assert progress.timeline == data.carried.timeline
    assert state.review.classification is not None and state.review.assessment is not None
    assert state.review.assessment.score == 71.5
    assert state.warehouse.packed is not None and state.warehouse.packed.weight_kg == 1.25
    assert parcel.booking is not None and parcel.booking.tracking_number.endswith("-1")
    assert (parcel.reship_no, parcel.booking_holds) == (1, 1)
    assert (state.lost_parcel.lost_cases, state.lost_parcel.lost_reason) == (1, None)
    assert state.tracking.seen_tracking == sorted(data.carried.seen_tracking)
    assert len(state.tracking.seen_tracking) == 4
    assert state.tracking.follow_up_at == data.carried.follow_up_at
    # Implied by a run that continued: the parcel is with the carrier; nothing else is.
    assert parcel.shipping_started
    assert progress.awaiting is None and state.cancellation.request is None
    assert not state.tracking.delivered and not state.aftercare.completed

    # The parts are the run's own: changing them leaves the input as it was.
    state.progress.timeline.clear()
    state.tracking.seen_tracking.append("later")
    assert len(data.carried.timeline) == 17 and "later" not in data.carried.seen_tracking


async def test_carrying_a_resumed_state_writes_back_exactly_what_was_read() -> None:
    old = _old_input()
    # Every field set, so that each one is compared.
    old["carried"] |= {
        "lost_reason": "not delivered after 6 follow-ups",
        "tracking_inbox": [
            {
                "event_id": "e-late",
                "tracking_number": old["carried"]["booking"]["tracking_number"],
                "status": "OUT_FOR_DELIVERY",
                "at": "2026-11-29T08:00:00Z",
                "details": "depot",
            }
        ],
        "follow_up_attempt": 2,
        "holding_tickets": ["FB-1", "FB-2"],
    }
    data = await _decode(old)
    assert data.carried is not None
    carried = OrderState.resume(data.carried).carry()
    # Fields added since are written at the value that keeps the old behaviour.
    added = {"through_psp": False}
    assert await _encoded_carried(carried) == old["carried"] | added
    assert list(carried.model_dump()) == list(old["carried"]) + list(added)


async def test_the_workflow_resumed_from_an_old_input_answers_as_before() -> None:
    data = await _decode(_old_input())
    assert data.carried is not None
    workflow = OrderWorkflow(data)
    view = workflow.view()
    assert view.status == OrderStatus.IN_TRANSIT and view.awaiting is None
    assert (view.carrier, view.tracking_number) == ("dhl", data.carried.booking.tracking_number)
    assert (view.order_type, view.risk_score, view.flagged) == ("normal", 71.5, True)
    assert view.timeline == data.carried.timeline

    order_id = data.order.order_id
    with pytest.raises(ApplicationError, match=f"order {order_id} has already shipped"):
        workflow._validate_cancel(CancelRequest(reason="too late"))
    with pytest.raises(ApplicationError, match=r"awaits no review decision \(status IN_TRANSIT\)"):
        workflow._validate_decision(ReviewDecision(decision="approve"))
    with pytest.raises(ApplicationError, match="is not waiting for a carrier booking"):
        workflow._validate_retry_booking(RebookRequest())

    # A repeat of an event the earlier runs took is dropped; a new one is kept once.
    seen = data.carried.seen_tracking[0]
    for event_id in (seen, "e-new", "e-new"):
        workflow.tracking_event(
            TrackingUpdate(
                event_id=event_id,
                tracking_number=data.carried.booking.tracking_number,
                status="IN_TRANSIT",
                at=data.received_at + timedelta(days=1),
            )
        )
    assert [u.event_id for u in workflow._state.tracking.tracking_inbox] == ["e-new"]
