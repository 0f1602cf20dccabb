"""Inventory exactness on real PostgreSQL, at the repository and activity level: concurrent
reservations never oversell or deadlock, shortages queue first come first served behind one
purchase request per SKU, cancels release once, low stock reorders once, and
`orderflow inventory check` says so with its exit code."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from typer.testing import CliRunner

from activities.cancellation import CancellationActivities
from activities.inventory import InventoryActivities
from app.cli import app
from db.pool import create_pool
from db.repositories import inventory
from orderflow.models import CancelRequest, Order
from orderflow.models.steps import CancelInput
from orderflow.settings import Settings, get_settings
from tests.integration.inventory_support import (
    assert_consistent,
    new_sku,
    open_requests,
    record_orders,
    stock,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # Many connections, so that concurrent calls really race inside PostgreSQL.
    created = await create_pool(database_url, min_size=10, max_size=60)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture(scope="module")
def stock_activities(pool: asyncpg.Pool, settings: Settings) -> InventoryActivities:
    return InventoryActivities(pool, settings)


@pytest.fixture(scope="module")
def cancellation(pool: asyncpg.Pool, settings: Settings) -> CancellationActivities:
    return CancellationActivities(pool, settings)


async def _statuses(pool: asyncpg.Pool, orders: list[Order]) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM orders WHERE order_id = ANY($1::text[]) GROUP BY status",
        [o.order_id for o in orders],
    )
    return {r["status"]: r["n"] for r in rows}


async def test_200_concurrent_reservations_for_the_last_20_units_reserve_exactly_20(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    sku = await new_sku(pool, on_hand=20)
    orders = await record_orders(pool, [[(sku, 1)] for _ in range(200)])

    outcomes = await asyncio.gather(*(stock_activities.reserve_stock(o) for o in orders))

    assert sum(o.reserved for o in outcomes) == 20
    assert all(o.shortages == {sku: 1} for o in outcomes if not o.reserved)
    level = await stock(pool, sku)
    assert (level["on_hand"], level["reserved"], level["available"]) == (20, 20, 0)
    held = await pool.fetchval(
        "SELECT count(*) FROM reservations WHERE sku = $1 AND status = 'held'", sku
    )
    assert held == 20
    assert await _statuses(pool, orders) == {"RESERVED": 20, "BACKORDERED": 180}
    # One purchase request for the SKU, for the summed shortfall of everybody waiting.
    requests = await open_requests(pool, sku)
    assert [(r["quantity"], r["reason"]) for r in requests] == [(180, "shortage")]
    assert level["backordered"] == 180
    await assert_consistent(pool)


async def test_orders_of_two_skus_in_any_line_order_never_deadlock_and_are_all_or_nothing(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    a = await new_sku(pool, on_hand=20)
    b = await new_sku(pool, on_hand=15)
    rng = random.Random(4)
    baskets: list[list[tuple[str, int]]] = []
    for _ in range(120):
        lines = [(a, rng.randint(1, 2)), (b, rng.randint(1, 2))]
        rng.shuffle(lines)
        baskets.append(lines if rng.random() < 0.8 else [lines[0]])
    orders = await record_orders(pool, baskets)

    outcomes = await asyncio.gather(*(stock_activities.reserve_stock(o) for o in orders))

    for order, outcome in zip(orders, outcomes, strict=True):
        held = await pool.fetchval(
            "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'held'",
            order.order_id,
        )
        assert held == (len(order.items) if outcome.reserved else 0), "all lines or none"
    for sku, on_hand in ((a, 20), (b, 15)):
        level = await stock(pool, sku)
        assert level["on_hand"] == on_hand and 0 <= level["available"]
        demand = sum(q for lines in baskets for s, q in lines if s == sku)
        assert level["reserved"] + level["backordered"] == demand, "every unit held or queued"
        assert len(await open_requests(pool, sku)) <= 1
    await assert_consistent(pool)


async def test_reservation_is_idempotent_per_order_and_line(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    sku = await new_sku(pool, on_hand=10)
    other = await new_sku(pool, on_hand=10)
    (order,) = await record_orders(pool, [[(sku, 3), (other, 2)]])

    results = await asyncio.gather(*(stock_activities.reserve_stock(order) for _ in range(5)))
    again = await stock_activities.reserve_stock(order)

    assert all(r.reserved for r in [*results, again])
    assert (await stock(pool, sku))["reserved"] == 3
    assert (await stock(pool, other))["reserved"] == 2
    events = await pool.fetchval(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND kind = 'stock_reserved'",
        order.order_id,
    )
    assert events == 1
    await assert_consistent(pool)


async def test_shortfalls_of_all_waiting_orders_add_up_in_one_request(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    sku = await new_sku(pool, on_hand=5)
    orders = await record_orders(pool, [[(sku, 3)] for _ in range(4)])
    outcomes = [await stock_activities.reserve_stock(o) for o in orders]

    assert [o.reserved for o in outcomes] == [True, False, False, False]
    # 2 left: the second order is 1 short; later ones queue behind it and are wholly short.
    assert [o.shortages for o in outcomes[1:]] == [{sku: 1}, {sku: 3}, {sku: 3}]
    requests = await open_requests(pool, sku)
    assert [(r["quantity"], r["reason"]) for r in requests] == [(7, "shortage")]
    notices = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE order_id = ANY($1::text[]) AND kind = 'backorder_notice'",
        [o.order_id for o in orders],
    )
    assert notices == 3
    # A retried reservation of a waiting order adds nothing to the request.
    await stock_activities.reserve_stock(orders[2])
    assert [r["quantity"] for r in await open_requests(pool, sku)] == [7]
    await assert_consistent(pool)


async def test_a_receipt_serves_the_queue_oldest_first_and_a_partial_one_as_far_as_it_goes(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    sku = await new_sku(pool, on_hand=0)
    orders = await record_orders(pool, [[(sku, q)] for q in (2, 1, 2, 1)])
    for order in orders:
        assert not (await stock_activities.reserve_stock(order)).reserved
    assert [r["quantity"] for r in await open_requests(pool, sku)] == [6]

    async with pool.acquire() as conn:
        first = await inventory.receive_stock(
            conn, sku=sku, quantity=2, receipt_key=f"{sku}-1", received_by="test"
        )
        # 3 units: the second order takes 1, the third the other 2, the fourth finds none.
        second = await inventory.receive_stock(
            conn, sku=sku, quantity=3, receipt_key=f"{sku}-2", received_by="test"
        )
        repeated = await inventory.receive_stock(
            conn, sku=sku, quantity=3, receipt_key=f"{sku}-2", received_by="test"
        )
    ids = [o.order_id for o in orders]
    assert first.served_orders == ids[:1]
    assert second.served_orders == ids[1:3]
    assert repeated.already and repeated.served_orders == [] and repeated.on_hand == 5
    assert [r["quantity"] for r in await open_requests(pool, sku)] == [1]
    async with pool.acquire() as conn:
        last = await inventory.receive_stock(
            conn, sku=sku, quantity=1, receipt_key=f"{sku}-3", received_by="test"
        )
    assert last.served_orders == ids[3:]
    assert await open_requests(pool, sku) == []
    fulfilled = await pool.fetchval(
        "SELECT count(*) FROM purchase_requests WHERE sku = $1 AND status = 'fulfilled'", sku
    )
    assert fulfilled == 1
    await assert_consistent(pool)


async def test_nobody_overtakes_the_queue_and_a_big_order_at_its_head_holds_it(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    sku = await new_sku(pool, on_hand=0)
    big, small = await record_orders(pool, [[(sku, 5)], [(sku, 1)]])
    for order in (big, small):
        assert not (await stock_activities.reserve_stock(order)).reserved
    async with pool.acquire() as conn:
        receipt = await inventory.receive_stock(
            conn, sku=sku, quantity=3, receipt_key=f"{sku}-1", received_by="test"
        )
    # 3 units are not enough for the head of the queue, and the small order behind it
    # may not take them either: they wait for the head.
    assert receipt.served_orders == []
    (late,) = await record_orders(pool, [[(sku, 1)]])
    assert not (await stock_activities.reserve_stock(late)).reserved, "a newcomer queues too"
    assert not (await stock_activities.reserve_stock(small)).reserved, "a retry keeps its place"
    async with pool.acquire() as conn:
        receipt = await inventory.receive_stock(
            conn, sku=sku, quantity=3, receipt_key=f"{sku}-2", received_by="test"
        )
    assert receipt.served_orders == [big.order_id, small.order_id]
    assert (await stock(pool, sku))["available"] == 0
    await assert_consistent(pool)


async def test_an_order_short_of_another_sku_keeps_its_place_without_blocking_others(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    scarce = await new_sku(pool, on_hand=0)
    rare = await new_sku(pool, on_hand=0)
    both, single = await record_orders(pool, [[(scarce, 2), (rare, 1)], [(scarce, 2)]])
    for order in (both, single):
        assert not (await stock_activities.reserve_stock(order)).reserved
    assert [r["quantity"] for r in await open_requests(pool, scarce)] == [4]
    assert [r["quantity"] for r in await open_requests(pool, rare)] == [1]

    async with pool.acquire() as conn:
        receipt = await inventory.receive_stock(
            conn, sku=scarce, quantity=4, receipt_key=f"{scarce}-1", received_by="test"
        )
    # The first order still lacks the rare SKU: its two units stay set aside for it, and
    # the order behind it is served from the other two.
    assert receipt.served_orders == [single.order_id]
    assert (await stock(pool, scarce))["available"] == 2
    async with pool.acquire() as conn:
        receipt = await inventory.receive_stock(
            conn, sku=rare, quantity=1, receipt_key=f"{rare}-1", received_by="test"
        )
    assert receipt.served_orders == [both.order_id]
    await assert_consistent(pool)


async def test_cancel_releases_exactly_once_also_when_retried_or_raced(
    pool: asyncpg.Pool,
    stock_activities: InventoryActivities,
    cancellation: CancellationActivities,
) -> None:
    sku = await new_sku(pool, on_hand=4)
    holder, waiter, other_waiter = await record_orders(pool, [[(sku, 3)], [(sku, 2)], [(sku, 4)]])
    for order in (holder, waiter, other_waiter):
        await stock_activities.reserve_stock(order)
    assert (await stock(pool, sku))["reserved"] == 3
    assert [r["quantity"] for r in await open_requests(pool, sku)] == [5]

    def cancel(order: Order) -> CancelInput:
        return CancelInput(order_id=order.order_id, request=CancelRequest(reason="changed my mind"))

    raced = await asyncio.gather(*(cancellation.cancel_order(cancel(holder)) for _ in range(4)))
    retried = await cancellation.cancel_order(cancel(holder))
    assert {r.released_lines for r in [*raced, retried]} == {1}
    level = await stock(pool, sku)
    assert (level["on_hand"], level["reserved"]) == (4, 0)
    statuses = await pool.fetch(
        "SELECT status FROM reservations WHERE order_id = $1", holder.order_id
    )
    assert [r["status"] for r in statuses] == ["released"]

    # A waiting order's cancel withdraws its place and its share of the request, once.
    for _ in range(2):
        await cancellation.cancel_order(cancel(other_waiter))
    assert [r["quantity"] for r in await open_requests(pool, sku)] == [1]
    refunds = await pool.fetchval(
        "SELECT count(*) FROM refunds WHERE order_id = ANY($1::text[])",
        [holder.order_id, other_waiter.order_id],
    )
    assert refunds == 2
    # The stock freed by the cancel is the waiting order's at its next try.
    assert (await stock_activities.reserve_stock(waiter)).reserved
    await assert_consistent(pool)


async def test_a_cancelled_order_is_never_served_from_the_queue(
    pool: asyncpg.Pool,
    stock_activities: InventoryActivities,
    cancellation: CancellationActivities,
) -> None:
    sku = await new_sku(pool, on_hand=0)
    orders = await record_orders(pool, [[(sku, 1)] for _ in range(30)])
    for order in orders:
        await stock_activities.reserve_stock(order)
    cancelled = orders[::2]

    async def receive() -> list[str]:
        async with pool.acquire() as conn:
            receipt = await inventory.receive_stock(
                conn, sku=sku, quantity=30, receipt_key=f"{sku}-r", received_by="test"
            )
        return receipt.served_orders

    results = await asyncio.gather(
        receive(),
        *(
            cancellation.cancel_order(
                CancelInput(order_id=o.order_id, request=CancelRequest(reason="race"))
            )
            for o in cancelled
        ),
    )
    served = results[0]
    assert isinstance(served, list)
    held = await pool.fetchval(
        "SELECT coalesce(sum(quantity), 0) FROM reservations WHERE sku = $1 AND status = 'held'",
        sku,
    )
    assert held == 15, "exactly the orders not cancelled hold stock"
    await assert_consistent(pool)


async def test_low_stock_raises_one_reorder_point_request_deduplicated_with_shortages(
    pool: asyncpg.Pool, stock_activities: InventoryActivities
) -> None:
    sku = await new_sku(pool, on_hand=30, reorder_point=10, order_up_to=50)
    first, crossing, more, short = await record_orders(
        pool, [[(sku, 15)], [(sku, 6)], [(sku, 2)], [(sku, 20)]]
    )
    assert (await stock_activities.reserve_stock(first)).reserved
    assert await open_requests(pool, sku) == [], "15 available is above the reorder point"

    assert (await stock_activities.reserve_stock(crossing)).reserved
    requests = await open_requests(pool, sku)
    assert [(r["quantity"], r["reason"]) for r in requests] == [(41, "reorder_point")]

    assert (await stock_activities.reserve_stock(more)).reserved
    assert not (await stock_activities.reserve_stock(short)).reserved
    # 7 available, 20 waiting, 41 on order: the open request covers the shortage as well,
    # and the position (28) is above the reorder point: still that one request.
    requests = await open_requests(pool, sku)
    assert [(r["quantity"], r["reason"]) for r in requests] == [(41, "reorder_point")]
    alerts = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE kind = 'low_stock_alert' AND body LIKE $1",
        f"%Purchase request {requests[0]['id']} raised %",
    )
    assert alerts == 1
    await assert_consistent(pool)


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_inventory_check_exits_0_when_consistent_and_1_when_not(
    pool: asyncpg.Pool, stock_activities: InventoryActivities, cli: CliRunner
) -> None:
    sku = await new_sku(pool, on_hand=5)
    (order,) = await record_orders(pool, [[(sku, 2)]])
    await stock_activities.reserve_stock(order)

    good = await asyncio.to_thread(cli.invoke, app, ["inventory", "check"])
    assert good.exit_code == 0, good.output
    assert "consistent" in good.output

    # A counter drifting from its reservation rows is caught ...
    await pool.execute("UPDATE inventory SET reserved = reserved + 1 WHERE sku = $1", sku)
    try:
        drifted = await asyncio.to_thread(cli.invoke, app, ["inventory", "check"])
    finally:
        await pool.execute("UPDATE inventory SET reserved = reserved - 1 WHERE sku = $1", sku)
    assert drifted.exit_code == 1
    assert f"{sku}: on hand 5, reserved 3, held rows 2" in " ".join(drifted.output.split())

    # ... and so is stock still held by an order that was cancelled behind its back.
    await pool.execute("UPDATE orders SET status = 'CANCELLED' WHERE order_id = $1", order.order_id)
    try:
        leaked = await asyncio.to_thread(cli.invoke, app, ["inventory", "check"])
    finally:
        await pool.execute(
            "UPDATE orders SET status = 'RESERVED' WHERE order_id = $1", order.order_id
        )
    assert leaked.exit_code == 1
    assert f"{order.order_id} (CANCELLED) still has a held reservation of {sku}" in " ".join(
        leaked.output.split()
    )

    assert (await asyncio.to_thread(cli.invoke, app, ["inventory", "check"])).exit_code == 0
