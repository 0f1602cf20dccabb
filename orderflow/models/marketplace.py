"""Marketplaces as order channels: what the shop is configured with for each
(`ORDERFLOW_MARKETPLACES`), the generic marketplace API it speaks (a real marketplace is
mapped onto it), and what the marketplace poller carries and gives back.

The API: Bearer `api_key`. `GET {base_url}/orders?after=<cursor>&limit=<n>` answers a
`MarketplacePage`; `POST {base_url}/orders/{id}/acknowledge`;
`POST {base_url}/orders/{id}/shipments` (`MarketplaceShipment`);
`POST {base_url}/orders/{id}/cancellation` (`MarketplaceCancellation`). Each POST carries an
`Idempotency-Key`, so a retried push is taken once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderflow.models.order import Order, Strict
from orderflow.models.policy import OrderPolicy

# A marketplace's code prefixes its orders' ids (`<code>-<marketplace order id>`).
MarketplaceCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,19}$")]


class MarketplaceConfig(BaseModel):
    """One marketplace the shop sells on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: MarketplaceCode
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    api_key: Annotated[str, StringConstraints(min_length=1)]
    poll_seconds: float = Field(default=5.0, gt=0, le=3600)


# ------------------------------------------------------------------ the marketplace's API
class MarketplaceBuyer(BaseModel):
    name: str
    email: str


class MarketplaceLine(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal


class MarketplaceAddress(BaseModel):
    name: str
    line1: str
    city: str
    postal_code: str
    country: str


class MarketplacePayment(BaseModel):
    reference: str
    status: str


class MarketplaceOrder(BaseModel):
    """An order as the marketplace lists it. Lenient on purpose: what does not map onto the
    shop's order is kept as a channel exception for a person, not refused at the door."""

    id: str
    created_at: datetime
    status: Literal["new", "cancelled"]
    buyer: MarketplaceBuyer
    lines: list[MarketplaceLine]
    currency: str
    shipping_address: MarketplaceAddress
    total: Decimal
    payment: MarketplacePayment


class MarketplacePage(BaseModel):
    """`GET /orders?after=<cursor>&limit=<n>`: oldest first; the raw orders (each checked
    on its own when mapped) and the cursor after the last of them."""

    orders: list[dict[str, Any]]
    next_cursor: str | None = None


class MarketplaceShipment(BaseModel):
    carrier: str
    tracking_number: str
    shipped_at: datetime


class MarketplaceCancellation(BaseModel):
    reason: str


# ------------------------------------------------------------------ the poller
class MarketplacePollerInput(Strict):
    """What the poller of one marketplace carries from run to run: where it is in the feed.
    The marketplace's address and key stay in the settings (never in a history)."""

    code: MarketplaceCode
    # The feed's cursor after the last order handled; None: from the beginning.
    cursor: str | None = None
    poll_interval: timedelta = timedelta(seconds=5)
    page_size: int = Field(default=50, ge=1, le=500)
    # Orders placed from the feed start with this policy, as the storefront's do.
    policy: OrderPolicy = OrderPolicy()
    # Pages handled by this run; a run hands over to the next (continue-as-new) after a
    # number of them, so its history stays short.
    pages: int = 0


class FeedPage(Strict):
    """One page of the feed as the poller sees it."""

    orders: list[dict[str, Any]] = Field(default_factory=list)
    next_cursor: str | None = None


class FeedRequest(Strict):
    code: MarketplaceCode
    cursor: str | None = None
    limit: int = Field(default=50, ge=1, le=500)


class MarketplaceShipmentPush(Strict):
    """The parcel (the n-th, when reshipped) of a marketplace order, for the marketplace."""

    code: MarketplaceCode
    external_order_id: str
    order_id: str
    carrier: str
    tracking_number: str
    shipped_at: datetime
    reship_no: int = 0


class MarketplaceCancellationPush(Strict):
    code: MarketplaceCode
    external_order_id: str
    order_id: str
    reason: str


class FeedOrderRef(Strict):
    code: MarketplaceCode
    raw: dict[str, Any]


class MappedOrder(Strict):
    """A feed order mapped onto the shop's order, or why it cannot be."""

    external_order_id: str
    status: Literal["new", "cancelled"] | None = None
    order: Order | None = None
    problem: str | None = None
    # The shop's order placed from it before (a cancellation names it), if any.
    placed_order_id: str | None = None
    # A person rejected it: nothing more is done with it.
    rejected: bool = False


class MarketplaceAck(Strict):
    code: MarketplaceCode
    external_order_id: str


__all__ = [
    "FeedOrderRef",
    "FeedPage",
    "FeedRequest",
    "MappedOrder",
    "MarketplaceAck",
    "MarketplaceCancellation",
    "MarketplaceCancellationPush",
    "MarketplaceCode",
    "MarketplaceConfig",
    "MarketplaceOrder",
    "MarketplacePage",
    "MarketplacePollerInput",
    "MarketplaceShipment",
    "MarketplaceShipmentPush",
]
