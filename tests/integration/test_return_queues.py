"""The department queues of returns and pre-orders on real PostgreSQL: customer service
decides returns outside the rules, the warehouse inspects parcels back, purchasing watches
orders waiting for a release; each oldest first against its SLA. Then one return through
the real stack, from customer service's queue to the warehouse's and out of both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from db.pool import create_pool
from db.repositories import queues
from orderflow.models import OrderPolicy
from orderflow.process import department
from orderflow.settings import Settings
from tests.helpers import order_json, wait_for_status
from tests.integration.fulfilment_support import wait_until
from tests.integration.inventory_support import new_sku, record_orders
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

COLUMNS = ["ref", "order_id", "status", "waiting_since", "due_at", "now", "details"]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def _return(
    pool: asyncpg.Pool,
    order_id: str,
    n: int,
    status: str,
    lines: list[tuple[str, int]],
    *,
    requested_ago: timedelta,
    arrived_ago: timedelta | None = None,
) -> str:
    return_id = f"{order_id}-{n}"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO returns (return_id, order_id, n, status, reason, requested_by,
                                   requested_at, arrived_at)
               VALUES ($1, $2, $3, $4, 'does not fit', 'customer',
                       now() - $5::interval, now() - $6::interval)""",
            return_id,
            order_id,
            n,
            status,
            requested_ago,
            arrived_ago,
        )
        for sku, quantity in lines:
            await conn.execute(
                """INSERT INTO return_lines (return_id, order_id, sku, quantity, unit_price)
                   VALUES ($1, $2, $3, $4, 10.00)""",
                return_id,
                order_id,
                sku,
                quantity,
            )
    return return_id


def _mine(rows: list[asyncpg.Record], order_ids: set[str]) -> list[asyncpg.Record]:
    return [r for r in rows if r["order_id"] in order_ids]


async def test_returns_wait_on_customer_service_and_the_warehouse(pool: asyncpg.Pool) -> None:
    sku, other = await new_sku(pool, 10, prefix="RQA"), await new_sku(pool, 10, prefix="RQB")
    await pool.execute("UPDATE products SET returnable = false WHERE sku = $1", other)
    first, second = await record_orders(
        pool, [[(sku, 2), (other, 1)], [(sku, 1)]], status="COMPLETED"
    )
    ids = {first.order_id, second.order_id}
    late = await _return(
        pool,
        first.order_id,
        1,
        "REQUESTED",
        [(sku, 1), (other, 1)],
        requested_ago=timedelta(hours=30),
    )
    fresh = await _return(
        pool, second.order_id, 1, "REQUESTED", [(sku, 1)], requested_ago=timedelta(hours=3)
    )
    await _return(
        pool, second.order_id, 2, "APPROVED", [(sku, 1)], requested_ago=timedelta(hours=40)
    )
    back_long = await _return(
        pool,
        first.order_id,
        2,
        "ARRIVED",
        [(sku, 1)],
        requested_ago=timedelta(days=9),
        arrived_ago=timedelta(days=3),
    )
    back_now = await _return(
        pool,
        second.order_id,
        3,
        "ARRIVED",
        [(sku, 1)],
        requested_ago=timedelta(days=8),
        arrived_ago=timedelta(hours=1),
    )
    await _return(
        pool,
        second.order_id,
        4,
        "INSPECTED",
        [(sku, 1)],
        requested_ago=timedelta(days=10),
        arrived_ago=timedelta(days=4),
    )

    decisions = _mine(await queues.return_decisions(pool, timedelta(days=1)), ids)
    assert [r["ref"] for r in decisions] == [late, fresh], "REQUESTED only, oldest first"
    row = decisions[0]
    assert list(row.keys()) == COLUMNS
    assert row["order_id"] == first.order_id and row["status"] == "REQUESTED"
    assert row["due_at"] - row["waiting_since"] == timedelta(days=1)
    assert row["now"] > row["due_at"], "requested 30 h ago against a day"
    assert decisions[1]["now"] < decisions[1]["due_at"]
    assert row["details"]["reason"] == "does not fit"
    assert row["details"]["lines"] == [
        {"sku": s, "quantity": 1, "returnable": s != other} for s in sorted([sku, other])
    ]

    inspections = _mine(await queues.return_inspections(pool, timedelta(days=2)), ids)
    assert [r["ref"] for r in inspections] == [back_long, back_now], "ARRIVED only, oldest first"
    row = inspections[0]
    assert list(row.keys()) == COLUMNS and row["status"] == "ARRIVED"
    assert row["due_at"] - row["waiting_since"] == timedelta(days=2)
    assert row["now"] - row["waiting_since"] > timedelta(days=2, hours=23)
    assert row["now"] > row["due_at"] and inspections[1]["now"] < inspections[1]["due_at"]
    assert row["details"]["lines"] == [{"sku": sku, "quantity": 1, "inspected": False}]

    # The readers the API and the metrics use: each kind in its department, with its SLA.
    settings = Settings(return_decision_sla=timedelta(hours=2))
    service = queues.readers(settings, "customer_service")
    by_service = _mine(await service["return_decision"](pool), ids)
    assert [r["due_at"] - r["waiting_since"] for r in by_service] == [timedelta(hours=2)] * 2
    warehouse = queues.readers(settings, "warehouse")
    by_warehouse = _mine(await warehouse["return_inspection"](pool), ids)
    sla = settings.return_policy.inspection_sla
    assert [r["due_at"] - r["waiting_since"] for r in by_warehouse] == [sla] * 2
    service_dep, warehouse_dep = department("customer_service"), department("warehouse")
    assert service_dep is not None and "return_decision" in service_dep.queues
    assert warehouse_dep is not None and "return_inspection" in warehouse_dep.queues


async def test_pre_orders_wait_on_purchasing_until_their_release(pool: asyncpg.Pool) -> None:
    sku = await new_sku(pool, 10, prefix="RQP")
    early, late, cancelled, released = await record_orders(pool, [[(sku, 1)]] * 4)
    await pool.execute(
        "UPDATE orders SET status = 'CANCELLED' WHERE order_id = $1", cancelled.order_id
    )
    release = datetime.now(UTC) + timedelta(days=5)
    for order, created_ago, release_at, status in (
        (early, timedelta(days=2), datetime.now(UTC) - timedelta(hours=1), "waiting"),
        (late, timedelta(hours=1), release, "waiting"),
        (cancelled, timedelta(days=3), release, "waiting"),
        (released, timedelta(days=4), release, "released"),
    ):
        await pool.execute(
            """INSERT INTO pre_orders (order_id, skus, release_at, status, created_at)
               VALUES ($1, $2, $3, $4, now() - $5::interval)""",
            order.order_id,
            [sku],
            release_at,
            status,
            created_ago,
        )
    ids = {o.order_id for o in (early, late, cancelled, released)}

    read = queues.readers(Settings(), "purchasing")["pre_order"]
    rows = _mine(await read(pool), ids)
    assert [r["ref"] for r in rows] == [early.order_id, late.order_id], (
        "waiting, not cancelled, oldest first"
    )
    assert list(rows[0].keys()) == COLUMNS and rows[0]["status"] == "waiting"
    assert rows[0]["now"] > rows[0]["due_at"], "still waiting after its release date"
    row = rows[1]
    assert row["order_id"] == late.order_id and row["due_at"] == release
    assert row["now"] < row["due_at"]
    assert row["details"]["skus"] == [sku] and row["details"]["sku"] == sku
    assert row["details"]["moves"] == 0
    assert datetime.fromisoformat(row["details"]["release_at"]) == release
    purchasing = department("purchasing")
    assert purchasing is not None and "pre_order" in purchasing.queues


# ---------------------------------------------------------------- through the real stack
@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


async def _queue(stack: Stack, dep: str, role: str = "admin") -> list[dict[str, Any]]:
    response = await stack.http("GET", f"/departments/{dep}/queue", role=role)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _status(stack: Stack, return_id: str, status: str) -> asyncpg.Record:
    async def check() -> asyncpg.Record | None:
        row = await stack.pool.fetchrow("SELECT * FROM returns WHERE return_id = $1", return_id)
        return row if row is not None and row["status"] == status else None

    found: asyncpg.Record = await wait_until(check, what=f"return {return_id} {status}")
    return found


async def test_a_return_passes_through_customer_service_then_the_warehouse(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RQS")
    await stack.pool.execute("UPDATE products SET returnable = false WHERE sku = $1", sku)
    body = order_json(items=[(sku, 2)])
    body["items"][0]["unit_price"] = "10.00"
    body["payment"]["amount"] = "20.00"
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    order_id = body["order_id"]
    assert await wait_for_status(stack.pool, order_id, "COMPLETED") == "COMPLETED"

    asked = await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        json={"lines": [{"sku": sku, "quantity": 2}], "reason": "sealed, unopened"},
    )
    assert asked.status_code == 202 and asked.json()["status"] == "REQUESTED", asked.text
    return_id = asked.json()["return_id"]
    item = next(i for i in await _queue(stack, "customer_service") if i["ref"] == return_id)
    assert item["kind"] == "return_decision" and item["order_id"] == order_id
    assert item["sla_seconds"] == stack.settings.return_decision_sla.total_seconds()
    assert not item["overdue"]
    assert item["details"]["lines"] == [{"sku": sku, "quantity": 2, "returnable": False}]

    decided = await stack.http(
        "POST",
        f"/returns/{return_id}/decision",
        role="admin",
        json={"decision": "approve", "note": "unopened"},
    )
    assert decided.status_code == 200, decided.text
    row = await _status(stack, return_id, "LABEL_SENT")
    assert return_id not in {i["ref"] for i in await _queue(stack, "customer_service")}

    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as carrier:
        handed = await carrier.post(
            f"/carriers/{row['carrier']}/returns/{row['tracking_number']}/hand-in"
        )
        assert handed.status_code == 202, handed.text
    row = await _status(stack, return_id, "ARRIVED")
    item = next(i for i in await _queue(stack, "warehouse", "warehouse") if i["ref"] == return_id)
    assert item["kind"] == "return_inspection" and item["status"] == "ARRIVED"
    assert item["sla_seconds"] == stack.settings.return_policy.inspection_sla.total_seconds()
    assert item["details"]["lines"] == [{"sku": sku, "quantity": 2, "inspected": False}]
    assert item["details"]["tracking_number"] == row["tracking_number"]

    inspected = await stack.http(
        "POST",
        f"/warehouse/returns/{return_id}/inspection",
        role="warehouse",
        json={"lines": [{"sku": sku, "outcome": "restock", "note": "sealed"}]},
    )
    assert inspected.status_code == 200, inspected.text
    await _status(stack, return_id, "REFUNDED")
    assert return_id not in {i["ref"] for i in await _queue(stack, "warehouse")}
