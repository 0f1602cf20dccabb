"""Stock for every operator, and purchasing's requests and goods received."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from api.auth import OPERATORS, Principal, require
from api.deps import order_client_of, pool_of
from api.idempotency import first_answer, remember, required_key
from api.pagination import Page, page_params, paged
from db.repositories import inventory
from orderflow.models import StockReceived
from orderflow.models.order import Sku

router = APIRouter(tags=["inventory"])

# Signals to served orders in flight at once.
_SIGNAL_LANES = 32
# Scope of receipts' idempotency keys.
_RECEIPTS = "purchasing.receipts"


class StockLevel(BaseModel):
    sku: str
    name: str
    unit_price: str
    currency: str
    weight_kg: float
    bin_location: str
    on_hand: int
    reserved: int
    available: int
    reorder_point: int
    order_up_to: int
    # units of waiting orders queued for this SKU
    backordered: int
    # quantity and id of the SKU's one open purchase request, if any
    open_purchase_request: int | None
    open_purchase_request_id: int | None


class PurchaseRequestView(BaseModel):
    id: int
    sku: str
    quantity: int
    reason: str
    created_at: str
    updated_at: str
    waiting_orders: int


class ReceiptBody(BaseModel):
    sku: Sku
    quantity: int = Field(ge=1, le=1_000_000)


class ReceiptResponse(BaseModel):
    receipt_id: int
    sku: str
    quantity: int
    on_hand: int
    served_orders: list[str]
    duplicate: bool


def _level(r) -> StockLevel:  # type: ignore[no-untyped-def]
    return StockLevel(
        sku=r["sku"],
        name=r["name"],
        unit_price=str(r["unit_price"]),
        currency=r["currency"],
        weight_kg=float(r["weight_kg"]),
        bin_location=r["bin_location"],
        on_hand=r["on_hand"],
        reserved=r["reserved"],
        available=r["available"],
        reorder_point=r["reorder_point"],
        order_up_to=r["order_up_to"],
        backordered=r["backordered"],
        open_purchase_request=r["open_request_quantity"],
        open_purchase_request_id=r["open_request_id"],
    )


@router.get("/inventory", response_model=list[StockLevel])
async def list_inventory(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require(*OPERATORS))],
    page: Annotated[Page, Depends(page_params)],
) -> list[StockLevel]:
    """Every SKU in SKU order, a page at a time (`limit`, `cursor`)."""
    after = page.after("text")
    found = await inventory.stock_levels(
        pool_of(request), after_sku=after[0] if after else None, limit=page.limit + 1
    )
    return [_level(r) for r in paged(found, page, request, response, lambda r: (r["sku"],))]


@router.get("/inventory/{sku}", response_model=StockLevel)
async def get_inventory(
    sku: str, request: Request, _: Annotated[Principal, Depends(require(*OPERATORS))]
) -> StockLevel:
    rows = await inventory.stock_levels(pool_of(request), sku)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown SKU {sku}")
    return _level(rows[0])


@router.get("/purchasing/requests", response_model=list[PurchaseRequestView])
async def purchase_requests(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("purchasing", "admin"))],
    page: Annotated[Page, Depends(page_params)],
) -> list[PurchaseRequestView]:
    """Open requests, oldest first, a page at a time (`limit`, `cursor`)."""
    found = await inventory.open_purchase_requests(
        pool_of(request), after=page.after("time", "int"), limit=page.limit + 1
    )
    return [
        PurchaseRequestView(
            id=r["id"],
            sku=r["sku"],
            quantity=r["quantity"],
            reason=r["reason"],
            created_at=r["created_at"].isoformat(),
            updated_at=r["updated_at"].isoformat(),
            waiting_orders=r["waiting_orders"],
        )
        for r in paged(found, page, request, response, lambda r: (r["created_at"], r["id"]))
    ]


@router.post("/purchasing/receipts", response_model=ReceiptResponse, status_code=201)
async def receive_goods(
    body: ReceiptBody,
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(require("purchasing"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> ReceiptResponse:
    pool = pool_of(request)
    key = required_key(idempotency_key)
    # Before the key is bound: a receipt refused here may be sent again, corrected, with it.
    if not await pool.fetchval("SELECT 1 FROM inventory WHERE sku = $1", body.sku):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown SKU {body.sku}")
    first = await first_answer(pool, _RECEIPTS, key, body.model_dump(mode="json"))
    if first is not None:
        # The first answer again (its orders served, on hand then), marked as a repeat.
        response.status_code = first.status_code
        return ReceiptResponse.model_validate({**first.response, "duplicate": True})
    # No surrounding transaction: the receipt is one, then each order served gets its own,
    # so serving a queue never holds one SKU's lock while waiting for another's.
    async with pool.acquire() as conn:
        receipt = await inventory.receive_stock(
            conn,
            sku=body.sku,
            quantity=body.quantity,
            receipt_key=key,
            received_by=who.actor,
        )
    storefront = order_client_of(request)
    lanes = asyncio.Semaphore(_SIGNAL_LANES)

    async def wake(order_id: str) -> None:
        # Its stock is already reserved, in queue order; the signal only wakes the workflow,
        # so the signals may go out in parallel.
        async with lanes:
            await storefront.stock_received(
                order_id, StockReceived(sku=receipt.sku, quantity=receipt.quantity)
            )

    await asyncio.gather(*(wake(order_id) for order_id in receipt.served_orders))
    answer = ReceiptResponse(
        receipt_id=receipt.receipt_id,
        sku=receipt.sku,
        quantity=receipt.quantity,
        on_hand=receipt.on_hand,
        served_orders=receipt.served_orders,
        duplicate=receipt.already,
    )
    if not receipt.already:
        # Stored after the orders were woken: a repeat finds the answer only once it is true.
        await remember(
            pool, _RECEIPTS, key, status_code=201, response=answer.model_dump(mode="json")
        )
    return answer
