"""Orders from marketplaces, end to end on real parts: the marketplace simulator over HTTP,
the pollers and order workflows on the Temporal dev server, the worker, PostgreSQL and the
API. The simulator's own records say what the marketplace was told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from orderflow.models.marketplace import MarketplaceConfig
from orderflow.settings import Settings
from simulators.marketplaces import create_app as create_marketplace
from stack.supervisor import free_port
from starter.marketplace_pollers import start_marketplace_pollers
from tests.helpers import wait_for_status
from tests.integration.inventory_support import new_sku
from tests.servers import Stack, fresh_database, prepare, running_stack, serve
from workflows.marketplace_poller import poller_id

pytestmark = pytest.mark.integration

KEY = "test-marketplace-key"
CODES = ("mkt-a", "mkt-b")


class Marketplaces:
    def __init__(self, url: str) -> None:
        self.url = url

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        )

    async def add(self, code: str, **body: Any) -> dict[str, Any]:
        async with self.http() as http:
            response = await http.post(f"/{code}/orders", json=body)
            assert response.status_code in (200, 201), response.text
            entry: dict[str, Any] = response.json()
            return entry

    async def cancel(self, code: str, external_id: str) -> None:
        async with self.http() as http:
            response = await http.post(f"/{code}/orders/{external_id}/cancel", json={})
            assert response.status_code in (200, 201), response.text

    async def records(self, code: str, what: str) -> list[dict[str, Any]]:
        async with self.http() as http:
            response = await http.get(f"/{code}/{what}")
            assert response.status_code == 200, response.text
            found: list[dict[str, Any]] = response.json()
            return found

    async def control(self, **changes: Any) -> None:
        async with self.http() as http:
            response = await http.post("/control", json=changes)
            assert response.status_code == 200, response.text


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def world(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> AsyncIterator[tuple[Stack, Marketplaces]]:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    port = free_port()
    sim_settings = Settings(
        marketplace_simulator_port=port,
        marketplace_simulator_api_key=KEY,
        marketplace_simulator_codes=list(CODES),
        marketplace_simulator_demo_seconds=0,
    )
    markets = [
        MarketplaceConfig(
            code=code, base_url=f"http://127.0.0.1:{port}/{code}", api_key=KEY, poll_seconds=0.2
        )
        for code in CODES
    ]
    async with (
        serve(create_marketplace(sim_settings), port),
        running_stack(
            temporal_env, url, policy=OrderPolicy.instant(), marketplaces=markets
        ) as stack,
    ):
        await start_marketplace_pollers(stack.client, stack.settings)
        try:
            yield stack, Marketplaces(f"http://127.0.0.1:{port}")
        finally:
            for code in CODES:
                await stack.client.get_workflow_handle(poller_id(code)).terminate("test over")


async def _shipments(markets: Marketplaces, code: str, external_id: str) -> list[dict[str, Any]]:
    return [s for s in await markets.records(code, "shipments") if _names(s, external_id)]


def _names(record: dict[str, Any], external_id: str) -> bool:
    return external_id in (
        record.get("id"),
        record.get("order_id"),
        record.get("external_order_id"),
    )


async def test_feed_orders_are_placed_once_acknowledged_and_told_when_shipped(
    world: tuple[Stack, Marketplaces],
) -> None:
    stack, markets = world
    added = [await markets.add(code) for code in ("mkt-a", "mkt-a", "mkt-b")]
    for entry, code in zip(added, ("mkt-a", "mkt-a", "mkt-b"), strict=True):
        order_id = f"{code}-{entry['id']}"
        assert await wait_for_status(stack.pool, order_id, "COMPLETED") == "COMPLETED"

        async def told(code: str = code, external: str = entry["id"]) -> bool:
            return len(await _shipments(markets, code, external)) == 1

        await eventually(told, f"the shipment of {order_id}")
        acks = [
            a for a in await markets.records(code, "acknowledgements") if _names(a, entry["id"])
        ]
        assert len(acks) == 1
        row = await stack.pool.fetchrow(
            "SELECT channel, payload FROM orders WHERE order_id = $1", order_id
        )
        assert row["channel"] == "marketplace"
        assert row["payload"]["external_order_id"] == entry["id"]
        (shipment,) = await _shipments(markets, code, entry["id"])
        feed = next(
            f
            for f in (await stack.http("GET", "/channels", role="admin")).json()
            if f["marketplace"] == code
        )
        assert feed["last_error"] is None and 0 <= feed["lag_seconds"] < 30
        tracking = await stack.pool.fetchval(
            "SELECT tracking_number FROM shipments WHERE order_id = $1", order_id
        )
        assert tracking in str(shipment)


async def test_an_order_that_cannot_be_mapped_waits_for_customer_service(
    world: tuple[Stack, Marketplaces],
) -> None:
    stack, markets = world
    unknown = await markets.add("mkt-a", kind="unknown_sku")
    mismatch = await markets.add("mkt-a", kind="amount_mismatch")

    async def both_kept() -> bool:
        response = await stack.http("GET", "/channels/exceptions", role="admin")
        ids = {e["external_order_id"] for e in response.json()}
        return {unknown["id"], mismatch["id"]} <= ids

    await eventually(both_kept, "the channel exceptions")
    exceptions = (await stack.http("GET", "/channels/exceptions", role="admin")).json()
    problems = {e["external_order_id"]: e["problem"] for e in exceptions}
    assert problems[unknown["id"]].startswith("unknown SKU")
    assert problems[mismatch["id"]].startswith("amount mismatch")
    queue = (await stack.http("GET", "/departments/customer_service/queue", role="admin")).json()
    kinds = {i["ref"]: i["kind"] for i in queue["items"]}
    assert kinds[f"mkt-a/{unknown['id']}"] == "channel_exception"
    # Not acknowledged while nobody placed them; not an order either.
    acks = await markets.records("mkt-a", "acknowledgements")
    assert not [a for a in acks if _names(a, unknown["id"]) or _names(a, mismatch["id"])]
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM orders WHERE order_id = $1", f"mkt-a-{unknown['id']}"
        )
        == 0
    )

    # Customer service corrects the line and places it; it is acknowledged once.
    raw = next(e["raw"] for e in exceptions if e["external_order_id"] == unknown["id"])
    sku = await new_sku(stack.pool, on_hand=50, prefix="MKT")
    fixed_lines = [{**line, "sku": sku} for line in raw["lines"]][:1]
    fixed = {**raw, "lines": fixed_lines}
    fixed["total"] = str(
        sum(
            (Decimal(line["unit_price"]) * int(line["quantity"]) for line in fixed_lines),
            Decimal(0),
        )
    )
    await stack.pool.execute(
        "UPDATE products SET unit_price = $2 WHERE sku = $1", sku, fixed_lines[0]["unit_price"]
    )
    placed = await stack.http(
        "POST",
        f"/channels/exceptions/mkt-a/{unknown['id']}/place",
        role="admin",
        json={"raw": fixed, "note": "the seller's SKU"},
    )
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["order_id"]
    assert order_id == f"mkt-a-{unknown['id']}"
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    acks = await markets.records("mkt-a", "acknowledgements")
    assert len([a for a in acks if _names(a, unknown["id"])]) == 1
    # Placing it again is refused: it is no exception any more.
    again = await stack.http(
        "POST",
        f"/channels/exceptions/mkt-a/{unknown['id']}/place",
        role="admin",
        json={"raw": fixed},
    )
    assert again.status_code == 409

    rejected = await stack.http(
        "POST",
        f"/channels/exceptions/mkt-a/{mismatch['id']}/reject",
        role="admin",
        json={"note": "the seller will re-list it"},
    )
    assert rejected.status_code == 200, rejected.text
    # The marketplace is told, once, with the reason.
    told = [c for c in await markets.records("mkt-a", "cancellations") if _names(c, mismatch["id"])]
    assert [c["reason"] for c in told] == ["the seller will re-list it"]
    left = (await stack.http("GET", "/channels/exceptions", role="admin")).json()
    assert {e["external_order_id"] for e in left}.isdisjoint({unknown["id"], mismatch["id"]})


async def test_a_marketplace_that_is_down_loses_and_doubles_nothing(
    world: tuple[Stack, Marketplaces],
) -> None:
    stack, markets = world
    await markets.control(mode="fail", fail_times=3)
    try:
        added = [await markets.add("mkt-b") for _ in range(3)]
        for entry in added:
            await wait_for_status(stack.pool, f"mkt-b-{entry['id']}", "COMPLETED")
    finally:
        await markets.control(reset=True)
    for entry in added:
        acks = [
            a for a in await markets.records("mkt-b", "acknowledgements") if _names(a, entry["id"])
        ]
        assert len(acks) == 1
        assert len(await _shipments(markets, "mkt-b", entry["id"])) == 1


async def test_cancellations_both_ways(world: tuple[Stack, Marketplaces]) -> None:
    stack, markets = world
    # Out of stock: the orders wait, backordered, so they can still be cancelled.
    sku = await new_sku(stack.pool, on_hand=0, prefix="MKC")
    line = {"sku": sku, "quantity": 1, "unit_price": "12.50"}
    ours, theirs = [
        await markets.add(
            "mkt-a",
            order={
                "id": f"C{n}{time.monotonic_ns() % 10**8}",
                "created_at": "2026-11-28T10:00:00Z",
                "status": "new",
                "buyer": {"name": "Cy Doe", "email": "cy@example.com"},
                "lines": [line],
                "currency": "EUR",
                "shipping_address": {
                    "name": "Cy Doe",
                    "line1": "2 Elm St",
                    "city": "Berlin",
                    "postal_code": "10115",
                    "country": "DE",
                },
                "total": "12.50",
                "payment": {"reference": f"mp-{n}", "status": "paid"},
            },
        )
        for n in (1, 2)
    ]
    await stack.pool.execute("UPDATE products SET unit_price = 12.50 WHERE sku = $1", sku)
    for entry in (ours, theirs):
        await wait_for_status(stack.pool, f"mkt-a-{entry['id']}", "BACKORDERED")

    # The marketplace cancels one: the order is cancelled, and not told back.
    await markets.cancel("mkt-a", theirs["id"])
    await wait_for_status(stack.pool, f"mkt-a-{theirs['id']}", "CANCELLED")
    # The shop cancels the other: the marketplace is told, once.
    response = await stack.http(
        "POST", f"/orders/mkt-a-{ours['id']}/cancel", role="admin", json={"reason": "no stock"}
    )
    assert response.status_code == 200, response.text

    async def told() -> bool:
        cancellations = await markets.records("mkt-a", "cancellations")
        return any(_names(c, ours["id"]) for c in cancellations)

    await eventually(told, "the cancellation pushed to the marketplace")
    cancellations = await markets.records("mkt-a", "cancellations")
    assert len([c for c in cancellations if _names(c, ours["id"])]) == 1
    assert not [c for c in cancellations if _names(c, theirs["id"])]
    # Neither payment was the PSP's: the marketplace settles its buyers' money.
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM payment_operations WHERE order_id = ANY($1::text[])",
            [f"mkt-a-{ours['id']}", f"mkt-a-{theirs['id']}"],
        )
        == 0
    )


async def test_a_poller_started_over_from_the_beginning_places_nothing_twice(
    world: tuple[Stack, Marketplaces],
) -> None:
    stack, markets = world
    entry = await markets.add("mkt-b")
    order_id = f"mkt-b-{entry['id']}"
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    placed_before = await stack.pool.fetchval("SELECT count(*) FROM orders")
    # The poller loses its cursor: it reads the whole feed again.
    handle = stack.client.get_workflow_handle(poller_id("mkt-b"))
    await handle.terminate("start over")
    seen_before = await stack.pool.fetchval(
        "SELECT orders_seen FROM marketplace_feeds WHERE marketplace = 'mkt-b'"
    )
    await start_marketplace_pollers(stack.client, stack.settings)

    async def read_again() -> bool:
        # Every entry of the feed is seen a second time.
        seen = await stack.pool.fetchval(
            "SELECT orders_seen FROM marketplace_feeds WHERE marketplace = 'mkt-b'"
        )
        return bool(seen >= 2 * seen_before)

    await eventually(read_again, "the feed read again")
    await asyncio.sleep(2)
    assert await stack.pool.fetchval("SELECT count(*) FROM orders") == placed_before
    acks = [a for a in await markets.records("mkt-b", "acknowledgements") if _names(a, entry["id"])]
    assert len(acks) == 1


async def test_a_push_the_marketplace_refuses_goes_to_customer_service_and_the_order_goes_on(
    world: tuple[Stack, Marketplaces],
) -> None:
    stack, markets = world
    sku = await new_sku(stack.pool, on_hand=0, prefix="MKR")
    await stack.pool.execute("UPDATE products SET unit_price = 12.50 WHERE sku = $1", sku)
    entry = await markets.add(
        "mkt-b",
        order={
            "id": f"R{time.monotonic_ns() % 10**8}",
            "created_at": "2026-11-28T10:00:00Z",
            "status": "new",
            "buyer": {"name": "Di Roe", "email": "di@example.com"},
            "lines": [{"sku": sku, "quantity": 1, "unit_price": "12.50"}],
            "currency": "EUR",
            "shipping_address": {
                "name": "Di Roe",
                "line1": "3 Oak St",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
            "total": "12.50",
            "payment": {"reference": "mp-r", "status": "paid"},
        },
    )
    order_id = f"mkt-b-{entry['id']}"
    await wait_for_status(stack.pool, order_id, "BACKORDERED")
    # Another system told the marketplace the order shipped: it now refuses a cancellation.
    async with markets.http() as http:
        shipped = await http.post(
            f"/mkt-b/orders/{entry['id']}/shipments",
            json={
                "carrier": "dhl",
                "tracking_number": "ELSEWHERE-1",
                "shipped_at": "2026-11-28T12:00:00Z",
            },
            headers={"Idempotency-Key": f"elsewhere-{entry['id']}"},
        )
        assert shipped.status_code == 201, shipped.text

    response = await stack.http(
        "POST", f"/orders/{order_id}/cancel", role="admin", json={"reason": "no stock"}
    )
    assert response.status_code == 200, response.text
    assert await wait_for_status(stack.pool, order_id, "CANCELLED") == "CANCELLED"
    result = await stack.client.get_workflow_handle(f"order-{order_id}").result()
    assert result["status"] == "CANCELLED"

    async def noted() -> bool:
        return bool(
            await stack.pool.fetchval(
                """SELECT count(*) FROM order_events
                   WHERE order_id = $1 AND kind = 'marketplace_cancellation_refused'""",
                order_id,
            )
        )

    await eventually(noted, "the refusal on the order's timeline")
    notices = await stack.pool.fetch(
        "SELECT kind, channel FROM notifications WHERE order_id = $1 AND kind = $2",
        order_id,
        "marketplace_push_refused",
    )
    assert len(notices) == 1
    assert not [
        c for c in await markets.records("mkt-b", "cancellations") if _names(c, entry["id"])
    ]
