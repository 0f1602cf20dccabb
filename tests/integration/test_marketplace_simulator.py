"""The marketplace simulator over real HTTP: the feed and its cursor, what it records of the
shop's acknowledgements and pushes (once per key), its refusals, and its trouble on demand.

The simulator runs under uvicorn on a free local port; everything is asked of it as the
marketplace adapter would, with httpx.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from db.seed import DEMO_PRODUCTS
from orderflow.models.marketplace import MarketplaceOrder, MarketplacePage
from orderflow.settings import Settings
from simulators.marketplaces import DEMO_LINES, MarketplaceSimulator, create_app

API_KEY = "mkt-test-api-key"
SHIPMENT = {"carrier": "dhl", "tracking_number": "TRK-1", "shipped_at": "2025-03-01T10:00:00Z"}


@asynccontextmanager
async def serve_over_http(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "server failed to start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Sim:
    url: str
    sim: MarketplaceSimulator
    http: httpx.AsyncClient

    async def add(self, code: str = "mkt-a", **body: Any) -> dict[str, Any]:
        response = await self.http.post(f"/{code}/orders", json=body)
        assert response.status_code == 201, response.text
        entry: dict[str, Any] = response.json()
        return entry

    async def page(self, code: str = "mkt-a", **params: Any) -> MarketplacePage:
        response = await self.http.get(f"/{code}/orders", params=params)
        assert response.status_code == 200, response.text
        return MarketplacePage.model_validate(response.json())

    async def post(
        self, path: str, key: str | None, json: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.http.post(path, json=json, headers=headers)

    async def control(self, **changes: Any) -> dict[str, Any]:
        response = await self.http.post("/control", json=changes)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def records(self, code: str, what: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/{code}/{what}")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[Sim]:
    settings = Settings(marketplace_simulator_api_key=API_KEY, **overrides)
    app = create_app(settings)
    async with serve_over_http(app) as url:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0) as http:
            yield Sim(url, app.state.simulator, http)


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running() as s:
        yield s


def lines_sum(order: dict[str, Any]) -> Decimal:
    return sum(
        (Decimal(line["unit_price"]) * line["quantity"] for line in order["lines"]), Decimal(0)
    )


CATALOGUE = {sku: Decimal(price) for sku, _, price, *_ in DEMO_PRODUCTS}


# --- the feed ---


async def test_the_feed_pages_oldest_first_and_its_cursor_goes_on_from_there(sim: Sim) -> None:
    empty = await sim.page()
    assert empty.orders == [] and empty.next_cursor == "0"
    added = [await sim.add() for _ in range(5)]
    ids = [entry["id"] for entry in added]
    assert len(set(ids)) == 5

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"after": cursor} if cursor else {})
        page = await sim.page(**params)
        assert page.next_cursor is not None
        if not page.orders:
            assert page.next_cursor == cursor
            break
        pages += 1
        assert len(page.orders) <= 2
        seen += [o["id"] for o in page.orders]
        cursor = page.next_cursor
    assert seen == ids and pages == 3

    # Nothing new: the same cursor again. Something new: only that, from the kept cursor.
    again = await sim.page(after=cursor)
    assert (again.orders, again.next_cursor) == ([], cursor)
    later = await sim.add()
    fresh = await sim.page(after=cursor)
    assert [o["id"] for o in fresh.orders] == [later["id"]]
    assert fresh.next_cursor != cursor

    # The whole feed in one page by default; every entry is an order of the contract.
    whole = await sim.page()
    assert [o["id"] for o in whole.orders] == [*ids, later["id"]]
    for raw in whole.orders:
        MarketplaceOrder.model_validate(raw)


async def test_the_page_size_is_bounded_and_a_foreign_cursor_refused(sim: Sim) -> None:
    for _ in range(55):
        sim.sim.markets["mkt-a"].add(sim.sim.markets["mkt-a"].generated("valid"))
    assert len((await sim.page()).orders) == 50
    assert len((await sim.page(limit=500)).orders) == 55
    for limit in (0, 501):
        response = await sim.http.get("/mkt-a/orders", params={"limit": limit})
        assert response.status_code == 422
    for cursor in ("abc", "-1", "1.5"):
        response = await sim.http.get("/mkt-a/orders", params={"after": cursor})
        assert response.status_code == 400
        assert "detail" in response.json()
    assert (await sim.http.get("/nowhere/orders")).status_code == 404


async def test_each_marketplace_has_a_feed_of_its_own(sim: Sim) -> None:
    a = await sim.add("mkt-a")
    b = await sim.add("mkt-b")
    assert [o["id"] for o in (await sim.page("mkt-a")).orders] == [a["id"]]
    assert [o["id"] for o in (await sim.page("mkt-b")).orders] == [b["id"]]
    assert (await sim.post(f"/mkt-b/orders/{a['id']}/acknowledge", "k")).status_code == 404


async def test_a_cancellation_on_the_marketplace_appends_the_order_again(sim: Sim) -> None:
    first = await sim.add()
    other = await sim.add()
    page = await sim.page()
    response = await sim.http.post(f"/mkt-a/orders/{first['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    later = await sim.page(after=page.next_cursor)
    assert [(o["id"], o["status"]) for o in later.orders] == [(first["id"], "cancelled")]
    assert {k: v for k, v in later.orders[0].items() if k != "status"} == {
        k: v for k, v in first.items() if k != "status"
    }
    # The log keeps what was: the first entry still says new.
    whole = await sim.page()
    assert [(o["id"], o["status"]) for o in whole.orders] == [
        (first["id"], "new"),
        (other["id"], "new"),
        (first["id"], "cancelled"),
    ]
    # Cancelled twice is said once.
    assert (await sim.http.post(f"/mkt-a/orders/{first['id']}/cancel")).status_code == 200
    assert len((await sim.page()).orders) == 3
    assert (await sim.http.post("/mkt-a/orders/nope/cancel")).status_code == 404


# --- what the shop tells the marketplace ---


async def test_an_acknowledgement_is_recorded_once_per_key(sim: Sim) -> None:
    order = await sim.add()
    path = f"/mkt-a/orders/{order['id']}/acknowledge"
    assert (await sim.post(path, None)).status_code == 400
    first = await sim.post(path, "ack-1")
    assert first.status_code == 200, first.text
    assert first.json()["id"] == order["id"] and first.json()["acknowledged_at"]
    repeat = await sim.post(path, "ack-1")
    assert (repeat.status_code, repeat.json()) == (200, first.json())
    assert await sim.records("mkt-a", "acknowledgements") == [first.json()]
    missing = await sim.post("/mkt-a/orders/nope/acknowledge", "ack-2")
    assert missing.status_code == 404 and "detail" in missing.json()


async def test_a_shipment_is_recorded_once_per_key(sim: Sim) -> None:
    order = await sim.add()
    other = await sim.add()
    path = f"/mkt-a/orders/{order['id']}/shipments"
    assert (await sim.post(path, None, SHIPMENT)).status_code == 400
    first = await sim.post(path, "ship-1", SHIPMENT)
    assert first.status_code == 201, first.text
    assert first.json()["tracking_number"] == "TRK-1" and first.json()["id"] == order["id"]
    repeat = await sim.post(path, "ship-1", SHIPMENT)
    assert (repeat.status_code, repeat.json()) == (200, first.json())
    changed = await sim.post(path, "ship-1", SHIPMENT | {"tracking_number": "TRK-2"})
    assert changed.status_code == 422
    # The same key for another order is not answered with the first order's record.
    elsewhere = await sim.post(f"/mkt-a/orders/{other['id']}/shipments", "ship-1", SHIPMENT)
    assert elsewhere.status_code == 422
    # A second parcel under its own key is a second shipment.
    reship = await sim.post(path, "ship-2", SHIPMENT | {"tracking_number": "TRK-3"})
    assert reship.status_code == 201
    recorded = await sim.records("mkt-a", "shipments")
    assert [s["tracking_number"] for s in recorded] == ["TRK-1", "TRK-3"]
    assert (await sim.post("/mkt-a/orders/nope/shipments", "s", SHIPMENT)).status_code == 404
    bad = await sim.post(path, "ship-3", {"carrier": "dhl"})
    assert bad.status_code == 422


async def test_no_shipment_of_an_order_cancelled_on_the_marketplace(sim: Sim) -> None:
    order = await sim.add()
    await sim.http.post(f"/mkt-a/orders/{order['id']}/cancel")
    refused = await sim.post(f"/mkt-a/orders/{order['id']}/shipments", "ship-c", SHIPMENT)
    assert refused.status_code == 409 and "detail" in refused.json()
    assert await sim.records("mkt-a", "shipments") == []


async def test_a_cancellation_is_recorded_once_and_refused_after_a_shipment(sim: Sim) -> None:
    order = await sim.add()
    shipped = await sim.add()
    path = f"/mkt-a/orders/{order['id']}/cancellation"
    reason = {"reason": "out of stock"}
    assert (await sim.post(path, None, reason)).status_code == 400
    first = await sim.post(path, "cancel-1", reason)
    assert first.status_code == 201, first.text
    repeat = await sim.post(path, "cancel-1", reason)
    assert (repeat.status_code, repeat.json()) == (200, first.json())
    assert (await sim.post(path, "cancel-1", {"reason": "other"})).status_code == 422
    assert await sim.records("mkt-a", "cancellations") == [
        {"id": order["id"], "reason": "out of stock"}
    ]

    pushed = await sim.post(f"/mkt-a/orders/{shipped['id']}/shipments", "ship-x", SHIPMENT)
    assert pushed.status_code == 201
    late = await sim.post(f"/mkt-a/orders/{shipped['id']}/cancellation", "cancel-2", reason)
    assert late.status_code == 409 and "detail" in late.json()
    assert len(await sim.records("mkt-a", "cancellations")) == 1
    assert (await sim.post("/mkt-a/orders/nope/cancellation", "c", reason)).status_code == 404


async def test_everything_but_the_health_check_needs_the_api_key(sim: Sim) -> None:
    order = await sim.add()
    oid = order["id"]
    calls = [
        ("GET", "/mkt-a/orders", None),
        ("POST", f"/mkt-a/orders/{oid}/acknowledge", None),
        ("POST", f"/mkt-a/orders/{oid}/shipments", SHIPMENT),
        ("POST", f"/mkt-a/orders/{oid}/cancellation", {"reason": "x"}),
        ("POST", "/mkt-a/orders", {}),
        ("POST", f"/mkt-a/orders/{oid}/cancel", None),
        ("GET", "/mkt-a/acknowledgements", None),
        ("GET", "/control", None),
        ("POST", "/control", {"mode": "normal"}),
    ]
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        async with httpx.AsyncClient(base_url=sim.url, headers=auth) as anonymous:
            for method, path, body in calls:
                response = await anonymous.request(
                    method, path, json=body, headers={"Idempotency-Key": "k"}
                )
                assert response.status_code == 401, (method, path, response.text)
                assert "detail" in response.json()
            health = await anonymous.get("/healthz")
            assert health.status_code == 200
            assert health.json()["marketplaces"] == ["mkt-a", "mkt-b"]
    # Nothing of it was taken.
    assert len((await sim.page()).orders) == 1
    assert await sim.records("mkt-a", "acknowledgements") == []


# --- trouble on demand ---


async def test_fail_mode_fails_each_push_and_feed_read_n_times_then_takes_it(sim: Sim) -> None:
    order = await sim.add()
    await sim.add("mkt-b")
    state = await sim.control(mode="fail", fail_times=2)
    assert (state["mode"], state["fail_times"]) == ("fail", 2)
    assert (await sim.http.get("/control")).json()["mode"] == "fail"

    for code in ("mkt-a", "mkt-b"):
        statuses = [(await sim.http.get(f"/{code}/orders")).status_code for _ in range(3)]
        assert statuses == [503, 503, 200], code

    path = f"/mkt-a/orders/{order['id']}/shipments"
    attempts = [(await sim.post(path, "ship-f", SHIPMENT)).status_code for _ in range(4)]
    assert attempts == [503, 503, 201, 200]
    # Another push is another request that fails on its own first.
    ack = f"/mkt-a/orders/{order['id']}/acknowledge"
    assert [(await sim.post(ack, "ack-f")).status_code for _ in range(3)] == [503, 503, 200]
    failed = await sim.post(ack, "ack-g")
    assert failed.status_code == 503 and "detail" in failed.json()
    # The simulator's own controls never fail.
    assert (await sim.http.post("/mkt-a/orders", json={})).status_code == 201
    assert len(await sim.records("mkt-a", "shipments")) == 1
    assert len(await sim.records("mkt-a", "acknowledgements")) == 1

    await sim.control(reset=True)
    assert (await sim.http.get("/control")).json()["mode"] == "normal"
    assert (await sim.post(ack, "ack-h")).status_code == 200
    assert (await sim.http.get("/mkt-a/orders")).status_code == 200


async def test_slow_mode_answers_the_api_late_but_not_its_controls(sim: Sim) -> None:
    order = await sim.add()
    await sim.control(mode="slow", slow_seconds=0.4)
    started = time.monotonic()
    assert (await sim.http.get("/mkt-a/orders")).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert (await sim.post(f"/mkt-a/orders/{order['id']}/acknowledge", "a")).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert (await sim.http.get("/healthz")).status_code == 200
    assert (await sim.http.get("/mkt-a/acknowledgements")).status_code == 200
    assert time.monotonic() - started < 0.4
    await sim.control(mode="normal")
    started = time.monotonic()
    assert (await sim.http.get("/mkt-a/orders")).status_code == 200
    assert time.monotonic() - started < 0.4


# --- the orders it makes ---


async def test_a_valid_order_adds_up_and_sells_what_the_shop_has(sim: Sim) -> None:
    for _ in range(20):
        order = await sim.add(kind="valid")
        parsed = MarketplaceOrder.model_validate(order)
        assert parsed.status == "new" and parsed.currency == "EUR"
        assert parsed.total == lines_sum(order) > 0
        for line in parsed.lines:
            assert CATALOGUE[line.sku] == line.unit_price and line.quantity >= 1
        address = parsed.shipping_address
        assert address.country == "DE" and address.postal_code and address.line1
        assert "@" in parsed.buyer.email and parsed.payment.reference
    # No body at all is a valid order too.
    response = await sim.http.post("/mkt-a/orders")
    assert response.status_code == 201
    assert Decimal(response.json()["total"]) == lines_sum(response.json())


async def test_invalid_orders_are_invalid_in_the_way_they_say(sim: Sim) -> None:
    unknown = await sim.add(kind="unknown_sku")
    assert any(line["sku"] not in CATALOGUE for line in unknown["lines"])
    assert Decimal(unknown["total"]) == lines_sum(unknown)

    bad = await sim.add(kind="bad_address")
    address = bad["shipping_address"]
    assert address["country"] == "Narnia" and address["postal_code"] == ""
    assert all(line["sku"] in CATALOGUE for line in bad["lines"])

    mismatch = await sim.add(kind="amount_mismatch")
    assert Decimal(mismatch["total"]) != lines_sum(mismatch)
    assert all(line["sku"] in CATALOGUE for line in mismatch["lines"])
    assert mismatch["shipping_address"]["country"] == "DE"

    # Each still has the shape of the contract: the problem is in the values.
    for order in (unknown, bad, mismatch):
        MarketplaceOrder.model_validate(order)
    assert (await sim.http.post("/mkt-a/orders", json={"kind": "nonsense"})).status_code == 422


async def test_an_order_as_given_is_listed_as_given(sim: Sim) -> None:
    given = {
        "id": "GIVEN-1",
        "created_at": "2025-03-01T09:00:00+00:00",
        "status": "new",
        "buyer": {"name": "Eve", "email": "eve@example.com"},
        "lines": [{"sku": "SKU-TEA-TIN", "quantity": 2, "unit_price": "8.90"}],
        "currency": "EUR",
        "shipping_address": {
            "name": "Eve",
            "line1": "1 Test St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "total": "17.80",
        "payment": {"reference": "pay-1", "status": "paid"},
    }
    assert await sim.add(order=given) == given
    assert (await sim.page()).orders == [given]
    assert (await sim.post("/mkt-a/orders/GIVEN-1/acknowledge", "g")).status_code == 200
    nameless = await sim.http.post("/mkt-a/orders", json={"order": {"status": "new"}})
    assert nameless.status_code == 422


async def test_demo_orders_arrive_on_every_marketplace() -> None:
    async with running(marketplace_simulator_demo_seconds=0.05) as s:
        deadline = time.monotonic() + 10
        while True:
            pages = [await s.page(code) for code in ("mkt-a", "mkt-b")]
            if all(len(p.orders) >= 3 for p in pages):
                break
            assert time.monotonic() < deadline, "no demo orders"
            await asyncio.sleep(0.05)
        for page in pages:
            for raw in page.orders:
                order = MarketplaceOrder.model_validate(raw)
                assert order.total == lines_sum(raw)


async def test_every_tenth_demo_round_cancels_an_unshipped_order(sim: Sim) -> None:
    market = sim.sim.markets["mkt-a"]
    for tick in range(1, 10):
        sim.sim.demo_tick(tick)
    assert [o["status"] for o in market.feed] == ["new"] * 9
    # The newest has shipped: the one before it is cancelled.
    newest = market.feed[-1]["id"]
    response = await sim.post(f"/mkt-a/orders/{newest}/shipments", "ship-demo", SHIPMENT)
    assert response.status_code == 201
    sim.sim.demo_tick(10)
    for code in ("mkt-a", "mkt-b"):
        feed = (await sim.page(code)).orders
        assert len(feed) == 11
        cancelled = [o for o in feed if o["status"] == "cancelled"]
        assert len(cancelled) == 1 and feed[-1]["status"] == "new"
    cancelled_a = next(o for o in market.feed if o["status"] == "cancelled")
    assert cancelled_a["id"] == market.feed[7]["id"] != newest


def test_the_demo_catalogue_is_the_seeded_one() -> None:
    for sku, price in DEMO_LINES:
        assert CATALOGUE[sku] == Decimal(price), sku
