"""The risk history query against a real PostgreSQL agrees with the in-memory summary.

Both read the same orders: generated shop data plus hand-made edge cases (orders placed in
the same second, the scored order already stored, orders at and after `as_of`, windows
smaller than the history, an address written in another case, a reused payment).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.datagen.risk_orders import CATALOGUE, generate_risk_orders
from db.migrate import apply_migrations, migration_files
from db.repositories.risk_history import load_risk_history
from orderflow.models import Address, Customer, Order, OrderItem, Payment
from orderflow.models.risk import HistoryWindow, RiskHistory
from policies.risk_history import summarize_history
from tests.servers import fresh_database

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
HOME = Address(name="Ann Lee", line1="1 Main St", city="Berlin", postal_code="10115", country="DE")


@pytest.fixture(scope="module")
async def postgres_url(postgres_server_url: str) -> str:
    """An empty database of this module's own on the session's PostgreSQL."""
    return await fresh_database(postgres_server_url)


def edge_case_orders() -> list[Order]:
    """One customer's orders crafted to hit every boundary of the summary."""

    def order(
        number: int,
        at: datetime,
        total_units: int,
        *,
        line1: str = "1 Main St",
        txn: str | None = None,
        email: str = "ann@example.com",
        customer: str = "C-EDGE",
    ) -> Order:
        item = OrderItem(sku="SKU-RED-MUG", quantity=total_units, unit_price=Decimal("12.50"))
        return Order(
            order_id=f"E-{number:03d}",
            channel="web",
            customer=Customer(id=customer, email=email, name="Ann Lee"),
            items=[item],
            currency="EUR",
            shipping_address=HOME.model_copy(update={"line1": line1}),
            payment=Payment(
                method="card",
                transaction_id=txn or f"pay_e{number}",
                amount=item.line_total,
                status="captured",
            ),
            placed_at=at,
        )

    return [
        order(1, T0 - timedelta(days=40), 2),
        order(2, T0 - timedelta(days=3), 4),
        # Three orders in the same second: ties broken by order id.
        order(3, T0 - timedelta(minutes=30), 1, line1="1 MAIN ST", txn="pay_shared"),
        order(4, T0 - timedelta(minutes=30), 7, txn="pay_shared"),
        order(10, T0 - timedelta(minutes=30), 3),
        order(5, T0 - timedelta(hours=2), 5, email="other@example.com"),
        order(6, T0 - timedelta(hours=23, minutes=59), 6, customer="C-OTHER"),
        order(7, T0 - timedelta(hours=24, seconds=1), 1),
        # Placed exactly at the moment of scoring, and after it: never history.
        order(8, T0, 9),
        order(9, T0 + timedelta(minutes=5), 11, txn="pay_shared"),
        # The order being scored, already stored (as in production).
        order(11, T0, 2, txn="pay_shared"),
    ]


async def insert_orders(conn: asyncpg.Connection, orders: list[Order]) -> None:
    skus = {p.sku: p.price for p in CATALOGUE}
    await conn.executemany(
        "INSERT INTO products (sku, name, unit_price, weight_kg) VALUES ($1, $1, $2, 1)"
        " ON CONFLICT DO NOTHING",
        list(skus.items()),
    )
    await conn.executemany(
        """INSERT INTO orders (order_id, workflow_id, channel, customer_id, customer_email,
               customer_name, currency, total, total_quantity, shipping_country,
               billing_country, shipping_postal, service_level, payment_txn, placed_at,
               status, status_changed_at, payload)
           VALUES ($1, 'order-' || $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                   $14, 'APPROVED', $14, $15::jsonb)""",
        [
            (
                o.order_id,
                o.channel,
                o.customer.id,
                o.customer.email,
                o.customer.name,
                o.currency,
                o.total,
                o.total_quantity,
                o.shipping_address.country,
                o.effective_billing_address.country,
                o.shipping_address.postal_code,
                o.service_level,
                o.payment.transaction_id,
                o.placed_at,
                json.dumps(o.model_dump(mode="json")),
            )
            for o in orders
        ],
    )
    await conn.executemany(
        "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (o.order_id, n, item.sku, item.quantity, item.unit_price)
            for o in orders
            for n, item in enumerate(o.items, start=1)
        ],
    )


def assert_same(sql: Any, python: Any, path: str = "history") -> None:
    """Equal, floats to within rounding (PostgreSQL and Python both interpolate in doubles)."""
    if isinstance(sql, dict):
        assert isinstance(python, dict) and sql.keys() == python.keys(), path
        for key in sql:
            assert_same(sql[key], python[key], f"{path}.{key}")
    elif isinstance(sql, float) or isinstance(python, float):
        assert sql is not None and python is not None, path
        assert math.isclose(sql, python, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {sql} != {python}"
    else:
        assert sql == python, f"{path}: {sql!r} != {python!r}"


def compare(sql: RiskHistory, python: RiskHistory) -> None:
    assert_same(sql.model_dump(), python.model_dump())


@pytest.fixture(scope="module")
async def shop(postgres_url: str) -> AsyncIterator[tuple[asyncpg.Connection, list[Order]]]:
    data = generate_risk_orders(seed=11, history_days=20, order_days=4, scale=0.4)
    orders = [g.order for g in data.history + data.orders] + edge_case_orders()
    conn = await asyncpg.connect(postgres_url)
    try:
        applied = await apply_migrations(conn)
        assert "002_risk_history" in applied
        await insert_orders(conn, orders)
        yield conn, orders
    finally:
        await conn.close()


async def test_summaries_agree_on_generated_shop_data(
    shop: tuple[asyncpg.Connection, list[Order]],
) -> None:
    conn, orders = shop
    generated = [o for o in orders if o.order_id.startswith("R-")]
    # Every 5th order, scored as of its own placement, as the review step does.
    sample = generated[::5]
    assert len(sample) > 100
    interesting = 0
    for order in sample:
        assert order.placed_at is not None
        sql = await load_risk_history(conn, order, order.placed_at)
        python = summarize_history(orders, order, order.placed_at)
        compare(sql, python)
        interesting += sql.customer_order_count > 0 and sql.shop_amounts.count > 0
    assert interesting > 10


async def test_summaries_agree_on_boundaries_with_small_windows(
    shop: tuple[asyncpg.Connection, list[Order]],
) -> None:
    conn, orders = shop
    scored = next(o for o in orders if o.order_id == "E-011")
    for window in (HistoryWindow(), HistoryWindow(customer_orders=2, shop_orders=3, sku_lines=2)):
        sql = await load_risk_history(conn, scored, T0, window)
        python = summarize_history(orders, scored, T0, window)
        compare(sql, python)

    sql = await load_risk_history(conn, scored, T0)
    # E-1..E-5 and E-7 and E-10 of this customer; E-8 (at as_of), E-9 (after), E-11 (itself) not.
    assert sql.customer_order_count == 7
    assert sql.customer_first_order_at == T0 - timedelta(days=40)
    # "1 MAIN ST" is the same address; all seven went there.
    assert sql.customer_orders_to_address == 7
    assert sql.customer_max_quantity == 7
    # Last hour: E-3, E-4, E-10. Last day: also E-5 (2 h ago, another e-mail) and E-6 (another
    # customer with the same e-mail and address); E-7 is a second too old.
    assert (sql.customer_velocity.last_hour, sql.customer_velocity.last_day) == (3, 4)
    assert (sql.address_velocity.last_hour, sql.address_velocity.last_day) == (3, 5)
    assert (sql.email_velocity.last_hour, sql.email_velocity.last_day) == (3, 4)
    assert (sql.payment_velocity.last_hour, sql.payment_velocity.last_day) == (2, 2)

    small = await load_risk_history(
        conn, scored, T0, HistoryWindow(customer_orders=2, shop_orders=3, sku_lines=2)
    )
    # E-3, E-4 and E-10 share a second; the latest two are the larger order ids in byte
    # order, E-010 (3 mugs, 37.50) and E-004 (7 mugs, 87.50), not E-003 (1 mug).
    assert small.customer_amounts.count == 2
    assert small.customer_amounts.median == pytest.approx((87.5 + 37.5) / 2)


async def test_an_order_with_no_history_at_all(
    shop: tuple[asyncpg.Connection, list[Order]],
) -> None:
    conn, orders = shop
    earliest = min(o.placed_at for o in orders if o.placed_at is not None)
    newcomer = next(o for o in orders if o.order_id == "E-001")
    before_everything = earliest - timedelta(days=1)
    sql = await load_risk_history(conn, newcomer, before_everything)
    assert sql == summarize_history(orders, newcomer, before_everything)
    assert sql.customer_order_count == 0
    assert sql.shop_amounts.count == 0
    assert sql.customer_amounts.median is None
    assert sql.sku_usage["SKU-RED-MUG"].lines == 0


async def test_as_of_needs_a_time_zone(shop: tuple[asyncpg.Connection, list[Order]]) -> None:
    conn, orders = shop
    with pytest.raises(ValueError, match="time zone"):
        await load_risk_history(conn, orders[0], datetime(2026, 10, 1))


async def test_the_migration_backfills_the_time_of_existing_lines(postgres_url: str) -> None:
    conn = await asyncpg.connect(await fresh_database(postgres_url))
    try:
        files = dict(migration_files())
        await conn.execute(files["001_core"])
        orders = edge_case_orders()[:3]
        await insert_orders(conn, orders)
        await conn.execute(files["002_risk_history"])
        rows = await conn.fetch("SELECT order_id, placed_at FROM order_lines ORDER BY order_id")
        assert {(r["order_id"], r["placed_at"]) for r in rows} == {
            (o.order_id, o.placed_at) for o in orders
        }
        # Lines written after the migration get their order's time from the trigger.
        later = edge_case_orders()[3:5]
        await insert_orders(conn, later)
        rows = await conn.fetch(
            "SELECT order_id, placed_at FROM order_lines WHERE order_id = ANY($1::text[])",
            [o.order_id for o in later],
        )
        times = {r["order_id"]: r["placed_at"] for r in rows}
        assert times == {o.order_id: o.placed_at for o in later}
    finally:
        await conn.close()
