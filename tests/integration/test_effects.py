"""The one way an activity writes its effect: the event key is claimed once, and the effect,
the event, the order's status and its notices commit or roll back together."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from activities.effects import Effects, OrderEvent
from db.pool import create_pool
from orderflow.models import Step
from orderflow.settings import Settings
from tests.integration.inventory_support import new_sku, record_orders

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(database_url, min_size=2, max_size=10)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
def effects(pool: asyncpg.Pool, database_url: str) -> Effects:
    return Effects(pool, Settings(database_url=database_url))


async def _trace(pool: asyncpg.Pool, order_id: str) -> tuple[str, int, int]:
    status = await pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
    n_events = await pool.fetchval(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND event_key = 'test.held'",
        order_id,
    )
    n_notices = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE order_id = $1 AND notification_key = $2",
        order_id,
        f"{order_id}:held",
    )
    return status, n_events, n_notices


def _event(order_id: str) -> OrderEvent:
    return OrderEvent(order_id, "test.held", Step.INVENTORY, "held", status="BACKORDERED")


async def test_a_second_claim_of_the_same_event_gets_nothing(
    pool: asyncpg.Pool, effects: Effects
) -> None:
    (order,) = await record_orders(pool, [[(await new_sku(pool, 1), 1)]])
    applied = 0
    for _ in range(3):
        async with effects.claim(_event(order.order_id)) as claimed:
            if claimed is None:
                continue
            applied += 1
            assert claimed.order_id == order.order_id
            await claimed.notify_department(
                department="logistics", key=f"{order.order_id}:held", kind="review_escalated"
            )
    assert applied == 1
    assert await _trace(pool, order.order_id) == ("BACKORDERED", 1, 1)


async def test_an_effect_that_fails_leaves_no_event_status_or_notice(
    pool: asyncpg.Pool, effects: Effects
) -> None:
    (order,) = await record_orders(pool, [[(await new_sku(pool, 1), 1)]])
    with pytest.raises(RuntimeError, match="effect failed"):
        async with effects.claim(_event(order.order_id)) as claimed:
            assert claimed is not None
            await claimed.notify_department(
                department="logistics", key=f"{order.order_id}:held", kind="review_escalated"
            )
            raise RuntimeError("effect failed")
    assert await _trace(pool, order.order_id) == ("APPROVED", 0, 0)
    # The retry claims it afresh, as a retried activity would.
    async with effects.claim(_event(order.order_id)) as claimed:
        assert claimed is not None
    assert await _trace(pool, order.order_id) == ("BACKORDERED", 1, 0)
