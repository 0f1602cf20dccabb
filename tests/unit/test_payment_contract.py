"""The order's payment as a storefront sends it: captured, or authorised with an expiry that
carries a time zone; the amount is the order's total and the method a known one. Whether an
authorisation has lapsed is judged at placement against the clock, not by the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from api.routes.orders import authorization_problem
from orderflow.models import Order
from tests.helpers import order_json

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def with_payment(**changes: Any) -> dict[str, Any]:
    body = order_json()
    body["payment"] = body["payment"] | changes
    return body


def test_the_spec_example_payment_stays_valid_as_it_is() -> None:
    order = Order.model_validate(with_payment(status="captured"))
    assert order.payment.status == "captured"
    assert order.payment.authorization_expires_at is None
    # The JSON a storefront sends keeps its fields; the new one is only added.
    dumped = order.model_dump(mode="json")["payment"]
    assert set(dumped) >= {"method", "transaction_id", "amount", "status"}


def test_an_authorised_payment_carries_its_expiry() -> None:
    order = Order.model_validate(
        with_payment(status="authorized", authorization_expires_at="2026-12-02T10:00:00Z")
    )
    assert order.payment.status == "authorized"
    assert order.payment.authorization_expires_at == datetime(2026, 12, 2, 10, tzinfo=UTC)


def test_an_authorised_payment_without_expiry_is_invalid() -> None:
    with pytest.raises(ValidationError, match="authorization_expires_at"):
        Order.model_validate(with_payment(status="authorized"))


def test_an_expiry_without_time_zone_is_invalid() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Order.model_validate(
            with_payment(status="authorized", authorization_expires_at="2026-12-02T10:00:00")
        )


def test_an_expiry_in_the_past_still_validates_in_the_model() -> None:
    # The workflow validates the order again days later: the model must not read the clock.
    order = Order.model_validate(
        with_payment(status="authorized", authorization_expires_at="2020-01-01T00:00:00Z")
    )
    assert authorization_problem(order.payment, now=NOW) is not None


def test_a_payment_amount_other_than_the_total_is_invalid() -> None:
    with pytest.raises(ValidationError, match="does not match the order total"):
        Order.model_validate(with_payment(amount="999.00"))


def test_an_unknown_payment_method_is_invalid() -> None:
    with pytest.raises(ValidationError, match="method"):
        Order.model_validate(with_payment(method="bitcoin"))


@pytest.mark.parametrize(
    ("status", "expires", "problem"),
    [
        ("authorized", NOW - timedelta(seconds=1), True),
        ("authorized", NOW, True),
        ("authorized", NOW + timedelta(minutes=1), False),
        ("captured", None, False),
        # A captured payment's old expiry means nothing any more.
        ("captured", NOW - timedelta(days=1), False),
    ],
)
def test_a_lapsed_authorisation_is_refused_at_placement(
    status: str, expires: datetime | None, problem: bool
) -> None:
    order = Order.model_validate(
        with_payment(
            status=status,
            authorization_expires_at=expires.isoformat() if expires else None,
        )
    )
    found = authorization_problem(order.payment, now=NOW)
    assert (found is not None) == problem
    if problem:
        assert found is not None and "authorization has expired" in found
