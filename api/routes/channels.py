"""Marketplaces as channels: where each feed stands, and the orders that could not be
mapped (channel exceptions), which customer service fixes and places, or rejects (admin:
customer service has no operator role of its own).

- `GET /channels`: every marketplace's feed, its cursor, last poll and last error, and its
  orders by state;
- `GET /channels/exceptions`: feed orders waiting for a person, with the raw payload and
  the problem;
- `POST /channels/exceptions/{marketplace}/{external_order_id}/place`: place the corrected
  payload (422 with the problem while it still does not map), then acknowledge it to the
  marketplace (503 when the marketplace does not answer: send again, nothing is placed
  twice);
- `POST /channels/exceptions/{marketplace}/{external_order_id}/reject`: nobody places it,
  and the marketplace is told it is cancelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field
from temporalio.exceptions import ApplicationError

from activities.marketplace_client import MarketplaceClient, MarketplaceUnavailable
from api.auth import Principal, require
from api.deps import order_client_of, pool_of, settings_of
from db.repositories import catalogue
from db.repositories import marketplace as feeds
from orderflow.models.marketplace import MarketplaceCancellation
from policies.marketplace_mapping import map_feed_order

router = APIRouter(tags=["channels"])


class Feed(BaseModel):
    marketplace: str
    cursor: str | None
    polled_at: datetime | None
    orders_seen: int
    last_error: str | None
    last_error_at: datetime | None
    # The feed's lag: seconds since it was last read without an error (None: never).
    read_at: datetime | None
    lag_seconds: float | None
    placed: int
    unacknowledged: int
    exceptions: int
    rejected: int


class ChannelException(BaseModel):
    marketplace: str
    external_order_id: str
    problem: str | None
    raw: dict[str, Any]
    received_at: datetime


class PlaceBody(BaseModel):
    # The feed order, corrected (the marketplace's shape, as in `raw`).
    raw: dict[str, Any]
    note: str = Field(default="placed after correction", max_length=2000)


class RejectBody(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class Resolution(BaseModel):
    marketplace: str
    external_order_id: str
    status: str
    order_id: str | None = None


@router.get("/channels", response_model=list[Feed])
async def channel_status(
    request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> list[Feed]:
    return [Feed(**dict(row)) for row in await feeds.feeds(pool_of(request))]


@router.get("/channels/exceptions", response_model=list[ChannelException])
async def channel_exceptions(
    request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> list[ChannelException]:
    rows = await feeds.exceptions(pool_of(request))
    return [
        ChannelException(
            marketplace=r["marketplace"],
            external_order_id=r["external_order_id"],
            problem=r["problem"],
            raw=r["raw"],
            received_at=r["received_at"],
        )
        for r in rows
    ]


async def _exception_or_404(request: Request, marketplace: str, external_order_id: str) -> Any:
    row = await feeds.feed_order(pool_of(request), marketplace, external_order_id)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no order {external_order_id} from marketplace {marketplace}",
        )
    return row


@router.post(
    "/channels/exceptions/{marketplace}/{external_order_id}/place", response_model=Resolution
)
async def place_exception(
    marketplace: str,
    external_order_id: str,
    body: PlaceBody,
    request: Request,
    who: Annotated[Principal, Depends(require("admin"))],
) -> Resolution:
    row = await _exception_or_404(request, marketplace, external_order_id)
    raw = {**body.raw, "id": external_order_id}
    pool = pool_of(request)
    if row["status"] == "exception":
        skus = [str(line.get("sku")) for line in raw.get("lines") or [] if isinstance(line, dict)]
        sold = set(await catalogue.products_by_sku(pool, skus))
        mapped = map_feed_order(marketplace, raw, sold)
        if mapped.order is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, mapped.problem or "not a new order"
            )
        resolved = await feeds.resolve_as_placed(
            pool,
            marketplace,
            external_order_id,
            order_id=mapped.order.order_id,
            raw=raw,
            by=who.actor,
            note=body.note,
        )
        if resolved is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "resolved by someone else meanwhile")
        await order_client_of(request).place_order(mapped.order)
    elif row["status"] != "mapped" or row["acknowledged_at"] is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"order {external_order_id} from {marketplace} is {row['status']}, "
            "not a channel exception",
        )
    row = await _exception_or_404(request, marketplace, external_order_id)
    # Placed (now, or by an earlier try whose acknowledgement failed): tell the marketplace.
    async with httpx.AsyncClient() as http:
        try:
            await MarketplaceClient(settings_of(request), http).acknowledge(
                marketplace, external_order_id
            )
        except MarketplaceUnavailable as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"placed as {row['order_id']}, but {exc}: send again to acknowledge it",
            ) from exc
        except ApplicationError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    await feeds.acknowledged(pool, marketplace, external_order_id)
    return Resolution(
        marketplace=marketplace,
        external_order_id=external_order_id,
        status="placed",
        order_id=row["order_id"],
    )


@router.post(
    "/channels/exceptions/{marketplace}/{external_order_id}/reject", response_model=Resolution
)
async def reject_exception(
    marketplace: str,
    external_order_id: str,
    body: RejectBody,
    request: Request,
    who: Annotated[Principal, Depends(require("admin"))],
) -> Resolution:
    """Nobody places it; the marketplace is told it is cancelled (503 when it does not
    answer: send again, it is told once)."""
    row = await _exception_or_404(request, marketplace, external_order_id)
    if row["status"] == "exception":
        row = await feeds.reject(
            pool_of(request), marketplace, external_order_id, by=who.actor, note=body.note
        )
    if row is None or row["status"] != "rejected" or row["order_id"] is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"order {external_order_id} from {marketplace} is not a channel exception",
        )
    async with httpx.AsyncClient() as http:
        try:
            await MarketplaceClient(settings_of(request), http).push_cancellation(
                marketplace,
                external_order_id,
                MarketplaceCancellation(reason=row["resolution_note"] or body.note),
                key=f"cancellation-{marketplace}-{external_order_id}",
            )
        except MarketplaceUnavailable as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"rejected, but {exc}: send again to tell the marketplace",
            ) from exc
        except ApplicationError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return Resolution(
        marketplace=marketplace, external_order_id=external_order_id, status="rejected"
    )
