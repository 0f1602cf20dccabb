"""Whether a return may be asked for: the rules a request is checked against when it comes
in (window, what was delivered, what is returned already), and the replacement order an
exchange places. Pure: the caller reads the facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from orderflow.models.order import Order
from orderflow.models.returns import ReturnLine


@dataclass(frozen=True)
class Refusal:
    """Why a return is refused; `status` is the HTTP answer (409 wrong state, 422 bad lines)."""

    status: int
    detail: str


def refusal(
    *,
    delivered_at: datetime | None,
    now: datetime,
    window: timedelta,
    delivered: Mapping[str, int],
    returned: Mapping[str, int],
    requested: Sequence[tuple[str, int]],
) -> Refusal | None:
    """None when the request is within the rules, else the first rule it breaks."""
    if delivered_at is None:
        return Refusal(409, "the order has not been delivered: nothing can be returned yet")
    if now > delivered_at + window:
        days = window.days if window.days else window.total_seconds() / 86400
        return Refusal(409, f"the return window ({days:g} days after delivery) has closed")
    skus = [sku for sku, _ in requested]
    if len(set(skus)) != len(skus):
        return Refusal(422, "each SKU may appear once in a return")
    for sku, quantity in requested:
        if sku not in delivered:
            return Refusal(422, f"{sku} is not a line of this order")
        if quantity > delivered[sku]:
            return Refusal(422, f"{quantity} × {sku} is more than the {delivered[sku]} delivered")
        left = delivered[sku] - returned.get(sku, 0)
        if quantity > left:
            return Refusal(
                409,
                f"{sku} is returned already ({returned.get(sku, 0)} of {delivered[sku]}); "
                f"{left} may still be returned",
            )
    return None


def returns_everything(
    delivered: Mapping[str, int], returned: Mapping[str, int], requested: Sequence[tuple[str, int]]
) -> bool:
    """Whether this request brings back the last unit of the order."""
    asked = dict(requested)
    return all(returned.get(sku, 0) + asked.get(sku, 0) >= qty for sku, qty in delivered.items())


def replacement_order_id(return_id: str) -> str:
    return f"{return_id}-EX"


# The longest order id a storefront may send (`Identifier`).
_MAX_ORDER_ID = 64


def exchange_refusal(return_id: str) -> Refusal | None:
    """An exchange needs an order id for its replacement; a very long order id leaves none."""
    if len(replacement_order_id(return_id)) > _MAX_ORDER_ID:
        return Refusal(422, "this order's id is too long to name a replacement: ask for a refund")
    return None


def replacement_order(
    original: Mapping[str, Any], return_id: str, lines: Sequence[ReturnLine]
) -> Order:
    """The order that sends the exchanged lines again: the same customer, address, service
    level and prices as `original` (the order as it was placed), its payment the return
    itself (captured, never sent to the PSP)."""
    order_id = replacement_order_id(return_id)
    items = [
        {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
        for line in lines
    ]
    total = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
    payment = original["payment"]
    # A marketplace's order is answered by the shop itself: the marketplace sold one order.
    channel = "web" if original["channel"] == "marketplace" else original["channel"]
    return Order.model_validate(
        {
            "order_id": order_id,
            "channel": channel,
            "customer": original["customer"],
            "items": items,
            "currency": original["currency"],
            "shipping_address": original["shipping_address"],
            "billing_address": original.get("billing_address"),
            "payment": {
                "method": payment["method"],
                "transaction_id": order_id,
                "amount": total,
                "status": "captured",
                "currency": original["currency"],
            },
            "service_level": original.get("service_level", "standard"),
            "exchange_of": {"order_id": original["order_id"], "return_id": return_id},
        }
    )
