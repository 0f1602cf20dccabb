"""The order as a storefront sends it, validated at every edge."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from temporalio import activity, workflow

Money = Annotated[
    Decimal,
    Field(ge=Decimal("0"), le=Decimal("10000000"), max_digits=12, decimal_places=2),
]
PositiveMoney = Annotated[
    Decimal,
    Field(gt=Decimal("0"), le=Decimal("10000000"), max_digits=12, decimal_places=2),
]
Identifier = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"
    ),
]
Sku = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9_-]*$")
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# A language tag such as `en`, `de` or `zh-CN`; one without templates falls back to English.
Locale = Annotated[
    str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

Channel = Literal["web", "mobile", "marketplace"]
ServiceLevel = Literal["standard", "express"]
PaymentStatus = Literal["captured", "authorized", "pending", "failed"]
# `marketplace`: the marketplace took the buyer's money and settles with the shop itself.
PaymentMethod = Literal["card", "paypal", "bank_transfer", "invoice", "wallet", "marketplace"]


# Joins an order id to what follows it in composite keys (notification keys such as
# `<order_id>:confirmation`, feedback request keys `<order_id>:<key>`): an order id holding it
# could collide with another order's keys.
KEY_SEPARATOR = ":"


def _reading_back() -> bool:
    """True while a workflow or an activity decodes an order: one placed already, perhaps
    before order ids lost the separator, which must still run to its end."""
    return workflow.in_workflow() or activity.in_activity()


class Strict(BaseModel):
    """Base of every boundary type: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(Strict):
    id: Identifier
    email: EmailStr
    name: Text
    # The language of the customer's e-mails and order page; None: the shop's default.
    locale: Locale | None = None


class OrderItem(Strict):
    sku: Sku
    quantity: int = Field(ge=1, le=100_000)
    unit_price: PositiveMoney

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class Address(Strict):
    name: Text
    line1: Text
    line2: Annotated[str, StringConstraints(max_length=200)] | None = None
    city: Text
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=12)
    ]
    country: CountryCode


class Payment(Strict):
    method: PaymentMethod
    transaction_id: Identifier
    amount: Money
    status: PaymentStatus
    # Optional: a payment provider that states its currency must agree with the order's.
    currency: CurrencyCode | None = None
    # When an authorised (not yet captured) payment lapses at the PSP. Whether it has lapsed
    # already is checked at placement, not here: the workflow validates the order again later.
    authorization_expires_at: datetime | None = None

    @model_validator(mode="after")
    def _expiry(self) -> Payment:
        expires = self.authorization_expires_at
        if expires is not None and expires.tzinfo is None:
            raise ValueError(
                "authorization_expires_at must carry a time zone, e.g. 2026-12-02T10:00:00Z"
            )
        # Orders placed before the field existed are read back as they were accepted.
        if self.status == "authorized" and expires is None and not _reading_back():
            raise ValueError("an authorized payment needs authorization_expires_at")
        return self


class ExchangeOf(Strict):
    """The return a replacement order was placed for: its goods were paid for with the
    original order, so it is not charged again."""

    order_id: Identifier
    return_id: Annotated[str, StringConstraints(min_length=3, max_length=80)]


class Order(Strict):
    order_id: Identifier
    channel: Channel
    customer: Customer
    items: list[OrderItem] = Field(min_length=1, max_length=500)
    currency: CurrencyCode
    shipping_address: Address
    billing_address: Address | None = None
    payment: Payment
    promo_code: Annotated[str, StringConstraints(max_length=40)] | None = None
    service_level: ServiceLevel = "standard"
    placed_at: datetime | None = None
    # An order from a marketplace: which one, and its id there.
    marketplace: Annotated[str, StringConstraints(max_length=20)] | None = None
    external_order_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    # Set only by the shop for an exchange's replacement; a storefront may not send it.
    exchange_of: ExchangeOf | None = None

    @field_validator("order_id")
    @classmethod
    def _no_key_separator(cls, value: str) -> str:
        if KEY_SEPARATOR in value and not _reading_back():
            raise ValueError(f"order_id may not contain {KEY_SEPARATOR!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Order:
        skus = [item.sku for item in self.items]
        if len(set(skus)) != len(skus):
            raise ValueError("each SKU may appear on only one line; combine the quantities")
        if self.payment.currency is not None and self.payment.currency != self.currency:
            raise ValueError(
                f"payment currency {self.payment.currency} does not match order currency {self.currency}"
            )
        if self.payment.amount != self.total:
            raise ValueError(
                f"payment amount {self.payment.amount} does not match the order total {self.total}"
            )
        if (self.marketplace is None) != (self.external_order_id is None):
            raise ValueError("a marketplace order names both marketplace and external_order_id")
        if self.marketplace is not None and self.channel != "marketplace":
            raise ValueError("an order from a marketplace has channel 'marketplace'")
        if self.placed_at is not None and self.placed_at.tzinfo is None:
            raise ValueError("placed_at must carry a time zone, e.g. 2026-11-25T10:00:00Z")
        return self

    @property
    def total(self) -> Decimal:
        return sum((item.line_total for item in self.items), Decimal("0.00"))

    @property
    def effective_billing_address(self) -> Address:
        return self.billing_address or self.shipping_address

    @property
    def total_quantity(self) -> int:
        return sum(item.quantity for item in self.items)
