"""Rules on what a client sends, checked without servers: order ids keep the separator of
composite keys out, and the storefront's placed_at is bounded at placement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from api.routes.orders import placed_at_problem
from orderflow.models import Order
from tests.helpers import order_json

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WINDOW = {"max_age": timedelta(days=30), "max_ahead": timedelta(minutes=5)}


@pytest.mark.parametrize("order_id", ["A-1001", "mkt-a-123", "ord_7.2", "T-abc"])
def test_order_ids_valid_before_stay_valid(order_id: str) -> None:
    assert Order.model_validate(order_json(order_id=order_id)).order_id == order_id


@pytest.mark.parametrize("order_id", ["A:1", "A-1:confirmation", ":"])
def test_an_order_id_with_the_key_separator_is_invalid(order_id: str) -> None:
    with pytest.raises(ValidationError, match="order_id may not contain"):
        Order.model_validate(order_json(order_id=order_id))


@pytest.mark.parametrize(
    "placed_at",
    [
        NOW - timedelta(days=30, seconds=1),
        NOW + timedelta(minutes=5, seconds=1),
        datetime.fromisoformat("0001-01-01T00:00:00+01:00"),
        datetime.fromisoformat("9999-12-31T23:59:59-01:00"),
    ],
)
def test_a_placed_at_outside_the_window_is_a_problem(placed_at: datetime) -> None:
    problem = placed_at_problem(placed_at, now=NOW, **WINDOW)
    assert problem is not None and "placed_at" in problem


@pytest.mark.parametrize(
    "placed_at", [None, NOW, NOW - timedelta(days=29), NOW + timedelta(minutes=4)]
)
def test_a_placed_at_inside_the_window_is_fine(placed_at: datetime | None) -> None:
    assert placed_at_problem(placed_at, now=NOW, **WINDOW) is None
