"""How an order from a marketplace's feed becomes the shop's order, or why it cannot.

Pure: the caller says which SKUs the catalogue sells. The shop's order id is
`<code>-<marketplace order id>`; the customer is the marketplace's buyer, known by e-mail
(`<code>-<hash of the e-mail>`, so the same buyer's orders meet in the risk history);
the money was taken by the marketplace (`payment.method = "marketplace"`, captured).
Whatever the feed says that the shop cannot take (a line the catalogue does not sell, an
address it cannot ship to, a total that is not the sum of the lines) is a problem in words
for the person who fixes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from orderflow.models import Order
from orderflow.models.marketplace import MappedOrder, MarketplaceOrder


def shop_order_id(code: str, external_order_id: str) -> str:
    return f"{code}-{external_order_id}"


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'order'}: {e['msg']}" for e in exc.errors()
    )


def map_feed_order(code: str, raw: dict[str, Any], sold_skus: Collection[str]) -> MappedOrder:
    """The shop's order for a feed entry of marketplace `code`, or the problem with it."""
    external = str(raw.get("id") or "")[:100]
    try:
        feed = MarketplaceOrder.model_validate(raw)
    except ValidationError as exc:
        return MappedOrder(external_order_id=external, problem=f"unreadable: {_problems(exc)}")
    if feed.status == "cancelled":
        return MappedOrder(external_order_id=feed.id, status="cancelled")
    unknown = sorted({line.sku for line in feed.lines} - set(sold_skus))
    if unknown:
        return MappedOrder(
            external_order_id=feed.id,
            status="new",
            problem=f"unknown SKU: {', '.join(unknown)}",
        )
    lines_total = sum((line.unit_price * line.quantity for line in feed.lines), start=0)
    if lines_total != feed.total:
        return MappedOrder(
            external_order_id=feed.id,
            status="new",
            problem=f"amount mismatch: the lines come to {lines_total}, the total says {feed.total}",
        )
    buyer = feed.buyer.email.strip().lower()
    customer_id = f"{code}-{hashlib.sha256(buyer.encode()).hexdigest()[:12]}"
    try:
        order = Order.model_validate(
            {
                "order_id": shop_order_id(code, feed.id),
                "channel": "marketplace",
                "marketplace": code,
                "external_order_id": feed.id,
                "customer": {"id": customer_id, "email": buyer, "name": feed.buyer.name},
                "items": [
                    {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
                    for line in feed.lines
                ],
                "currency": feed.currency,
                "shipping_address": feed.shipping_address.model_dump(),
                "payment": {
                    "method": "marketplace",
                    "transaction_id": feed.payment.reference,
                    "amount": feed.total,
                    "status": "captured",
                },
                "placed_at": feed.created_at,
            }
        )
    except ValidationError as exc:
        return MappedOrder(
            external_order_id=feed.id, status="new", problem=f"invalid: {_problems(exc)}"
        )
    return MappedOrder(external_order_id=feed.id, status="new", order=order)
