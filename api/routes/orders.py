"""The storefront's and customer's endpoints: place, read, cancel an order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from api.auth import CUSTOMER, OPERATORS, Principal, require
from api.customer_view import OrderActions, customer_details, open_actions
from api.deps import (
    order_client_of,
    pool_of,
    settings_of,
    workflow_errors_as_http,
)
from api.limits import rate_limited
from db.repositories import cancellation, catalogue, events, orders, returns, unprocessable
from orderflow.access import customer_token
from orderflow.models import (
    Address,
    CancelRequest,
    CancelResult,
    Order,
    OrderStatus,
    Payment,
    Step,
)

router = APIRouter(tags=["orders"])


class PlacedOrderResponse(BaseModel):
    order_id: str
    workflow_id: str
    status: str
    access_token: str


class TimelineItem(BaseModel):
    step: int
    step_name: str
    status: str | None
    kind: str
    actor: str
    at: str
    details: dict[str, Any]


class OrderLine(BaseModel):
    sku: str
    name: str | None
    quantity: int
    unit_price: str
    line_total: str


class OrderStatusResponse(BaseModel):
    order_id: str
    status: str
    order_type: str | None
    department: str | None
    risk_score: float | None
    risk_reasons: list[dict[str, Any]]
    flagged: bool
    placed_at: str | None
    total: str | None
    currency: str | None
    carrier: str | None
    tracking_number: str | None
    expected_delivery: str | None
    timeline: list[TimelineItem]
    # For the customer's page (and anyone else): the order as placed, and which of
    # the customer's requests it takes now. Defaults while the order is not yet recorded.
    items: list[OrderLine] = Field(default_factory=list)
    shipping_address: Address | None = None
    locale: str | None = None
    actions: OrderActions = Field(default_factory=OrderActions)


class CancelBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def placed_at_problem(
    placed_at: datetime | None, *, now: datetime, max_age: timedelta, max_ahead: timedelta
) -> str | None:
    """Why the storefront's `placed_at` cannot be accepted at `now`, or None.

    Checked here, at placement, and not in the `Order` model: the model is validated again
    inside the workflow, where it must not depend on the clock."""
    if placed_at is None:
        return None
    try:
        offset = placed_at - now
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+01:00: a time before year 1 in UTC, which no database
        # or clock can represent.
        return "placed_at is out of range"
    if offset < -max_age:
        return f"placed_at {placed_at.isoformat()} is more than {max_age} in the past"
    if offset > max_ahead:
        return f"placed_at {placed_at.isoformat()} is more than {max_ahead} in the future"
    return None


def authorization_problem(payment: Payment, *, now: datetime) -> str | None:
    """Why an authorised payment cannot be accepted at `now` (it has lapsed), or None.

    Checked at placement and not in the `Payment` model, for the reason of `placed_at`."""
    expires = payment.authorization_expires_at
    if payment.status != "authorized" or expires is None:
        return None
    try:
        lapsed = expires <= now
    except OverflowError:
        return "payment.authorization_expires_at is out of range"
    if lapsed:
        return f"payment authorization has expired (at {expires.isoformat()})"
    return None


async def _check_against_catalogue(request: Request, order: Order) -> None:
    settings = settings_of(request)
    if order.exchange_of is not None:
        # The shop places replacements itself, uncharged: from outside it would be free goods.
        raise HTTPException(
            422, "exchange_of is set only by the shop for an exchange's replacement order"
        )
    now = datetime.now(UTC)
    problem = placed_at_problem(
        order.placed_at,
        now=now,
        max_age=settings.placed_at_max_age,
        max_ahead=settings.placed_at_max_ahead,
    ) or authorization_problem(order.payment, now=now)
    if problem:
        raise HTTPException(422, problem)
    if order.currency not in settings.shop_currencies:
        raise HTTPException(
            422,
            f"currency {order.currency} is not accepted; use {', '.join(settings.shop_currencies)}",
        )
    if len(order.items) > settings.max_lines_per_order:
        raise HTTPException(422, f"at most {settings.max_lines_per_order} lines per order")
    products = await catalogue.products_by_sku(pool_of(request), [i.sku for i in order.items])
    problems: list[str] = []
    for item in order.items:
        product = products.get(item.sku)
        if product is None or not product["active"]:
            problems.append(f"unknown SKU {item.sku}")
            continue
        if item.quantity > settings.max_quantity_per_line:
            problems.append(
                f"{item.sku}: quantity {item.quantity} exceeds the limit of {settings.max_quantity_per_line}"
            )
        if item.unit_price != product["unit_price"] or product["currency"] != order.currency:
            problems.append(
                f"{item.sku}: unit price {item.unit_price} {order.currency} does not match the "
                f"catalogue price {product['unit_price']} {product['currency']}"
            )
    if problems:
        raise HTTPException(422, "; ".join(problems))


@router.post(
    "/orders",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PlacedOrderResponse,
    responses={200: {"description": "the order existed already"}},
)
async def place_order(
    order: Order,
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("storefront", "admin"))],
    __: Annotated[None, Depends(rate_limited("place"))],
) -> PlacedOrderResponse:
    pool = pool_of(request)
    settings = settings_of(request)
    existing = await orders.order_summary(pool, order.order_id)
    if existing is None:
        await _check_against_catalogue(request, order)
        placed = await order_client_of(request).place_order(order, policy=settings.order_policy)
        if not placed.created:
            response.status_code = status.HTTP_200_OK
        workflow_id, current = placed.workflow_id, str(placed.status)
    else:
        response.status_code = status.HTTP_200_OK
        workflow_id, current = existing["workflow_id"], existing["status"]
    return PlacedOrderResponse(
        order_id=order.order_id,
        workflow_id=workflow_id,
        status=current,
        access_token=customer_token(settings.customer_token_secret, order.order_id),
    )


@router.get("/orders/{order_id}", response_model=OrderStatusResponse)
async def get_order(
    order_id: str,
    request: Request,
    who: Annotated[Principal, Depends(require(*OPERATORS, customer=True))],
) -> OrderStatusResponse:
    found = await _order_status(order_id, request)
    return customer_view(found) if who.role == CUSTOMER else found


def customer_view(response: OrderStatusResponse) -> OrderStatusResponse:
    """The order as its customer sees it: without the shop's risk review (score, reasons,
    flag, reviewers' notes), which operators still see in full."""
    return response.model_copy(
        update={
            "risk_score": None,
            "risk_reasons": [],
            "flagged": False,
            "timeline": [
                item.model_copy(
                    update={
                        "details": customer_details(
                            step=item.step, kind=item.kind, status=item.status, details=item.details
                        )
                    }
                )
                for item in response.timeline
            ],
        }
    )


async def _order_status(order_id: str, request: Request) -> OrderStatusResponse:
    pool = pool_of(request)
    row = await orders.order_summary(pool, order_id)
    if row is None:
        # Accepted a moment ago and not yet written by step 1 (perhaps no worker is running):
        # the start of its workflow's history holds the order as placed.
        placed = await order_client_of(request).placed_input(order_id)
        if placed is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} not found")
        order = placed.order
        # Or it never will be: step 1 could not record it, and the order was rejected.
        rejected = await unprocessable.of_order(pool, order_id)
        return OrderStatusResponse(
            order_id=order_id,
            status=OrderStatus.REJECTED if rejected else OrderStatus.RECEIVED,
            order_type=None,
            department=None,
            risk_score=None,
            risk_reasons=[],
            flagged=False,
            placed_at=(order.placed_at or placed.received_at).isoformat(),
            total=str(order.total),
            currency=order.currency,
            carrier=None,
            tracking_number=None,
            expected_delivery=None,
            timeline=[]
            if rejected is None
            else [
                TimelineItem(
                    step=rejected["step"],
                    step_name=Step(rejected["step"]).label,
                    status=OrderStatus.REJECTED,
                    kind="order_unprocessable",
                    actor="system",
                    at=rejected["recorded_at"].isoformat(),
                    details={"reason": rejected["reason"]},
                )
            ],
        )
    history = await events.timeline(pool, order_id)
    facts = await orders.customer_facts(pool, order_id)
    assert facts is not None  # the row read just before: orders are never deleted
    return_until = None
    if row["status"] in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
        delivered = await returns.delivered_at(pool, order_id)
        if delivered is not None:
            return_until = delivered + settings_of(request).return_policy.window
    return OrderStatusResponse(
        order_id=order_id,
        status=row["status"],
        order_type=row["order_type"],
        department=row["department"],
        risk_score=float(row["risk_score"]) if row["risk_score"] is not None else None,
        risk_reasons=row["risk_reasons"] or [],
        flagged=row["flagged"],
        placed_at=row["placed_at"].isoformat(),
        total=str(row["total"]),
        currency=row["currency"],
        carrier=row["carrier"],
        tracking_number=row["tracking_number"],
        expected_delivery=row["expected_delivery"].isoformat()
        if row["expected_delivery"]
        else None,
        items=[OrderLine(**line) for line in facts["items"]],
        shipping_address=facts["shipping_address"],
        locale=facts["locale"] or settings_of(request).default_locale,
        actions=open_actions(
            row["status"],
            completed_at=facts["completed_at"],
            reviewed=facts["reviewed"],
            # The API places every order with its settings' policy (place_order).
            review_window=settings_of(request).order_policy.review_window,
            now=datetime.now(UTC),
            return_until=return_until,
        ),
        timeline=[
            TimelineItem(
                step=e["step"],
                step_name=Step(e["step"]).label,
                status=e["status"],
                kind=e["kind"],
                actor=e["actor"],
                at=e["occurred_at"].isoformat(),
                details=e["details"],
            )
            for e in history
        ],
    )


class CancelPending(BaseModel):
    order_id: str
    status: str
    cancellation: str = "pending"
    detail: str


@router.post(
    "/orders/{order_id}/cancel",
    response_model=CancelResult,
    responses={
        202: {
            "model": CancelPending,
            "description": "no worker could take the cancel yet: it is recorded with the "
            "order and takes effect, once, as soon as the order runs again",
        }
    },
)
async def cancel_order(
    order_id: str,
    body: CancelBody,
    request: Request,
    who: Annotated[Principal, Depends(require("storefront", "admin", customer=True))],
    _: Annotated[None, Depends(rate_limited("cancel"))],
) -> CancelResult | JSONResponse:
    pool = pool_of(request)
    storefront = order_client_of(request)
    current = await orders.order_status(pool, order_id)
    if current is None:
        # Placed a moment ago; step 1 has not run. No worker may be running at all, so
        # leave the cancel with the order rather than wait for one.
        if await storefront.placed_input(order_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} not found")
        return await _leave_cancel(request, order_id, OrderStatus.RECEIVED, body, who)
    if current == OrderStatus.CANCELLED:
        # A storefront retrying its cancel gets the same answer, even after the process ended.
        return CancelResult(
            order_id=order_id,
            status=OrderStatus.CANCELLED,
            refunded=await cancellation.refunded_amount(pool, order_id),
            released_lines=await cancellation.released_lines(pool, order_id),
        )
    wait = timedelta(seconds=settings_of(request).api_update_wait_seconds)
    with workflow_errors_as_http(order_id):
        try:
            return await storefront.cancel(order_id, body.reason, requested_by=who.actor, wait=wait)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            pass  # no worker took it in time
    return await _leave_cancel(request, order_id, current, body, who)


async def _leave_cancel(
    request: Request, order_id: str, current: str, body: CancelBody, who: Principal
) -> JSONResponse:
    with workflow_errors_as_http(order_id):
        await order_client_of(request).request_cancel(
            order_id, CancelRequest(reason=body.reason, requested_by=who.actor)
        )
    pending = CancelPending(
        order_id=order_id,
        status=current,
        detail=f"cancellation of order {order_id} is recorded and will be carried out as "
        "soon as the order is processed again; its status will show CANCELLED",
    )
    return JSONResponse(pending.model_dump(), status_code=status.HTTP_202_ACCEPTED)
