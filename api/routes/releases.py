"""Purchasing's release dates of pre-sale products.

`POST /purchasing/releases` (purchasing) sets when a product is released; it becomes a
pre-sale product, new orders with it wait for that day (the pre-order), and every order
already waiting for it is told the new date (its `move_release` Update: the order reads the
date and tells its customer). A date in the past releases them at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import AwareDatetime, BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import Principal, require
from api.deps import order_client_of, pool_of
from db.repositories import pre_orders
from orderflow.models.messages import ReleaseDateChange
from orderflow.models.order import Sku

router = APIRouter(tags=["inventory"])


class ReleaseBody(BaseModel):
    sku: Sku
    release_at: AwareDatetime
    note: str | None = Field(default=None, max_length=2000)


class ReleaseAnswer(BaseModel):
    sku: str
    release_at: datetime
    # Orders waiting for it that took the new date, and those that no longer waited.
    moved_orders: list[str]
    not_waiting: list[str]


@router.post("/purchasing/releases", response_model=ReleaseAnswer)
async def set_release(
    body: ReleaseBody,
    request: Request,
    who: Annotated[Principal, Depends(require("purchasing", "admin"))],
) -> ReleaseAnswer:
    pool = pool_of(request)
    if not await pre_orders.set_release(pool, body.sku, body.release_at):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown SKU {body.sku}")
    storefront = order_client_of(request)
    moved, not_waiting = [], []
    for order_id in await pre_orders.waiting_for(pool, body.sku):
        try:
            await storefront.move_release(order_id, ReleaseDateChange(by=who.actor, note=body.note))
            moved.append(order_id)
        except (WorkflowUpdateFailedError, RPCError):
            # Released or closed meanwhile: it reads the catalogue when it goes on anyway.
            not_waiting.append(order_id)
    return ReleaseAnswer(
        sku=body.sku, release_at=body.release_at, moved_orders=moved, not_waiting=not_waiting
    )
