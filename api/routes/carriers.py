"""The carrier webhook: signed tracking events, each applied at most once."""

from __future__ import annotations

import secrets
import time
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ValidationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import order_client_of, pool_of, settings_of
from db.repositories import delivery, returns, tracking
from orderflow.models import TrackingUpdate
from orderflow.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CarrierSecretMissing,
    carrier_secret,
    verify_signature,
)
from starter.return_client import ReturnClient

router = APIRouter(tags=["carriers"])

# Checked against when a carrier has no secret, so that case costs the same HMAC as others.
_NO_SECRET = secrets.token_hex(32)


class TrackingEventOutcome(BaseModel):
    event_id: str
    outcome: str
    order_id: str | None = None


@router.post("/carriers/{carrier}/events", response_model=TrackingEventOutcome)
async def carrier_event(
    carrier: str,
    request: Request,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
) -> TrackingEventOutcome:
    body = await request.body()
    pool = pool_of(request)
    # The signature first, and one answer for every way it fails: a caller without a
    # carrier's secret learns nothing, not even which carriers exist or are configured.
    try:
        secret = carrier_secret(settings_of(request), carrier)
    except CarrierSecretMissing:
        secret = None
    valid = verify_signature(secret or _NO_SECRET, body, timestamp, signature, now=int(time.time()))
    if secret is None or not valid:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid carrier signature")
    if not await delivery.carrier_known(pool, carrier):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown carrier {carrier}")
    try:
        update = TrackingUpdate.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid tracking event: {exc.errors()[0]['msg']}") from exc

    async with pool.acquire() as conn, conn.transaction():
        order_id = await tracking.order_for_tracking_number(conn, carrier, update.tracking_number)
        outcome = "applied" if order_id else "unknown_tracking_number"
        return_id = None
        if order_id is None:
            return_id = await returns.return_for_tracking(conn, carrier, update.tracking_number)
        if return_id is not None:
            return await _return_parcel_event(request, conn, carrier, update, return_id)
        if order_id is None:
            replaced = await delivery.order_for_lost_parcel(conn, carrier, update.tracking_number)
            if replaced is not None:
                # A lost parcel since replaced: kept on record for logistics, not applied.
                recorded = await tracking.record_received(
                    conn, carrier, update, replaced, "superseded_parcel"
                )
                return TrackingEventOutcome(
                    event_id=update.event_id,
                    outcome="superseded_parcel" if recorded else "duplicate",
                    order_id=replaced,
                )
        if not await tracking.record_received(conn, carrier, update, order_id, outcome):
            return TrackingEventOutcome(
                event_id=update.event_id, outcome="duplicate", order_id=order_id
            )
        if order_id is not None:
            # Signalled inside the transaction: if Temporal is unreachable the record rolls
            # back and the carrier's retry is applied, not dropped as a duplicate.
            try:
                await order_client_of(request).tracking_event(order_id, update)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                # The order's process has ended (completed, or resolved as lost): kept on
                # record and acknowledged, so the carrier stops retrying.
                outcome = "order_closed"
                await delivery.set_event_outcome(conn, carrier, update.event_id, outcome)
    if order_id is None:
        # Recorded above for logistics to look at, and refused.
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"unknown tracking number {update.tracking_number}"
        )
    return TrackingEventOutcome(event_id=update.event_id, outcome=outcome, order_id=order_id)


async def _return_parcel_event(
    request: Request,
    conn: asyncpg.Connection,
    carrier: str,
    update: TrackingUpdate,
    return_id: str,
) -> TrackingEventOutcome:
    """A scan of a parcel coming back: its return's workflow is told, once per event."""
    row = await returns.return_of(conn, return_id)
    assert row is not None
    order_id = row["order_id"]
    if not await tracking.record_received(conn, carrier, update, order_id, "return_parcel"):
        return TrackingEventOutcome(
            event_id=update.event_id, outcome="duplicate", order_id=order_id
        )
    client = ReturnClient(
        order_client_of(request).temporal, task_queue=settings_of(request).task_queue
    )
    outcome = "return_parcel"
    try:
        await client.parcel_tracking(return_id, update)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        outcome = "return_closed"
        await delivery.set_event_outcome(conn, carrier, update.event_id, outcome)
    return TrackingEventOutcome(event_id=update.event_id, outcome=outcome, order_id=order_id)
