"""Mapping a marketplace's feed order onto the shop's order, and the problems a person
must solve instead."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from policies.marketplace_mapping import map_feed_order

SOLD = {"SKU-RED-MUG", "SKU-TEA-TIN"}


def feed_order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": "10042",
        "created_at": "2026-11-28T10:00:00Z",
        "status": "new",
        "buyer": {"name": "Bo Chen", "email": "Bo@Example.com"},
        "lines": [
            {"sku": "SKU-RED-MUG", "quantity": 2, "unit_price": "12.50"},
            {"sku": "SKU-TEA-TIN", "quantity": 1, "unit_price": "8.00"},
        ],
        "currency": "EUR",
        "shipping_address": {
            "name": "Bo Chen",
            "line1": "1 Canal St",
            "city": "Hamburg",
            "postal_code": "20095",
            "country": "DE",
        },
        "total": "33.00",
        "payment": {"reference": "mkp-pay-1", "status": "paid"},
    }
    return order | overrides


def test_a_new_order_maps_onto_the_shops_order() -> None:
    mapped = map_feed_order("mkt-a", feed_order(), SOLD)
    assert mapped.problem is None and mapped.status == "new"
    order = mapped.order
    assert order is not None
    assert (order.order_id, order.channel) == ("mkt-a-10042", "marketplace")
    assert (order.marketplace, order.external_order_id) == ("mkt-a", "10042")
    assert order.total == Decimal("33.00") == order.payment.amount
    assert (order.payment.method, order.payment.status) == ("marketplace", "captured")
    assert order.customer.email == "bo@example.com"
    assert order.customer.id.startswith("mkt-a-")
    # The same buyer is the same customer on the next order.
    again = map_feed_order("mkt-a", feed_order(id="10043"), SOLD)
    assert again.order is not None and again.order.customer.id == order.customer.id


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"lines": [{"sku": "SKU-NOPE", "quantity": 1, "unit_price": "33.00"}]},
            "unknown SKU: SKU-NOPE",
        ),
        ({"total": "30.00"}, "amount mismatch"),
        (
            {
                "shipping_address": {
                    "name": "Bo",
                    "line1": "x",
                    "city": "y",
                    "postal_code": "1",
                    "country": "Narnia",
                }
            },
            "invalid: shipping_address",
        ),
        ({"buyer": {"name": "Bo"}}, "unreadable: buyer.email"),
    ],
    ids=["unknown-sku", "amount-mismatch", "bad-address", "no-email"],
)
def test_what_cannot_be_mapped_is_a_problem_in_words(
    overrides: dict[str, Any], problem: str
) -> None:
    mapped = map_feed_order("mkt-a", feed_order(**overrides), SOLD)
    assert mapped.order is None
    assert mapped.problem is not None and mapped.problem.startswith(problem), mapped.problem
    assert mapped.external_order_id == "10042"


def test_a_cancellation_names_the_order_only() -> None:
    mapped = map_feed_order("mkt-b", feed_order(status="cancelled", lines=[]), SOLD)
    assert (mapped.status, mapped.order, mapped.problem) == ("cancelled", None, None)
    assert mapped.external_order_id == "10042"
