"""The marketplace simulator: one process standing in for several marketplaces, each under
its own path (`http://<host>:<port>/<code>`, codes from `marketplace_simulator_codes`),
speaking the generic marketplace API of orderflow/models/marketplace.py.

Per marketplace (Bearer `marketplace_simulator_api_key`; errors `{"detail": ...}`):
- `GET /{code}/orders?after=<cursor>&limit=<n>` (limit 1..500, default 50): the feed, an
  append-only log, oldest first; a cancellation on the marketplace appends the order again
  with `status: "cancelled"`. `next_cursor` is the position after the last entry returned
  (as a string; `after` itself when nothing is new), to be handed back as `after`;
- `POST /{code}/orders/{id}/acknowledge` (200), `POST /{code}/orders/{id}/shipments`
  (`{"carrier", "tracking_number", "shipped_at"}`, 201), `POST
  /{code}/orders/{id}/cancellation` (`{"reason"}`, 201): each with an `Idempotency-Key` (400
  without), recorded once per key (a repeat answers 200 with what the first made, the same
  key with another body or order 422); 409 for a shipment of an order cancelled on the
  marketplace or a cancellation of a shipped one; 404 for an unknown order or marketplace.

Simulator control: `POST /{code}/orders` adds an order to the feed: `{"kind": "valid"}` (the
default, from the demo catalogue with a correct total), `"unknown_sku"`, `"bad_address"`,
`"amount_mismatch"`, or `{"order": {...}}` as given; `POST /{code}/orders/{id}/cancel`
cancels one on the marketplace; `GET /{code}/acknowledgements|shipments|cancellations` list
what the shop told it; `GET|POST /control` (`{"mode": "normal"|"fail"|"slow",
"fail_times": n, "slow_seconds": s, "reset": true}`, for every marketplace at once):
`fail` answers 503 to the first n attempts of each push (endpoint, order and
`Idempotency-Key`), so every retried push is eventually taken, and to the first n reads of
each feed; `slow` answers the marketplace API after `slow_seconds`. Only the marketplace API
fails or is slow, never the control endpoints. `GET /healthz` needs no key. With
`marketplace_simulator_demo_seconds` > 0, a valid demo order arrives on each marketplace
that often, and every tenth time one of its unshipped orders is cancelled as well. State
lives in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from orderflow.models.marketplace import MarketplaceCancellation, MarketplaceShipment
from orderflow.settings import Settings, get_settings

# What the demo marketplaces sell: SKUs of the embedded stack's demo catalogue, and prices.
# A copy, not an import: simulators sit beside db/ and may not reach into it (a unit test
# keeps the two in step).
DEMO_LINES: tuple[tuple[str, str], ...] = (
    ("SKU-RED-MUG", "12.50"),
    ("SKU-TEA-TIN", "8.90"),
    ("SKU-BLUE-MUG", "12.50"),
    ("SKU-COFFEE-1KG", "24.00"),
    ("SKU-FRENCH-PRESS", "39.00"),
)
UNKNOWN_SKU = "SKU-NOT-SOLD-HERE"
BUYERS = (("Ana Ruiz", "ana"), ("Ben Kohl", "ben"), ("Chen Wei", "chen"), ("Dara Nowak", "dara"))
OrderKind = Literal["valid", "unknown_sku", "bad_address", "amount_mismatch"]
Auth = Annotated[str | None, Header(alias="Authorization")]
Key = Annotated[str | None, Header(alias="Idempotency-Key")]


class Behaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["normal", "fail", "slow"] = "normal"
    fail_times: int = Field(default=2, ge=0)
    slow_seconds: float = Field(default=2.0, ge=0)


class ControlUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["normal", "fail", "slow"] | None = None
    fail_times: int | None = Field(default=None, ge=0)
    slow_seconds: float | None = Field(default=None, ge=0)
    reset: bool = False


class NewOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: OrderKind = "valid"
    order: dict[str, Any] | None = None


@dataclass
class Marketplace:
    code: str
    feed: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Idempotency key -> (body sent, record made): a repeat answers the record.
    taken: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    acknowledgements: list[dict[str, Any]] = field(default_factory=list)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    cancellations: list[dict[str, Any]] = field(default_factory=list)
    made: int = 0

    def add(self, order: dict[str, Any]) -> dict[str, Any]:
        self.orders[order["id"]] = order
        self.feed.append(order)
        return order

    def cancel(self, order_id: str) -> dict[str, Any]:
        order = self.order(order_id)
        if order["status"] == "cancelled":
            # Cancelled once is enough: the feed says it once.
            return order
        cancelled = {**order, "status": "cancelled"}
        self.orders[order_id] = cancelled
        self.feed.append(cancelled)
        return cancelled

    def order(self, order_id: str) -> dict[str, Any]:
        found = self.orders.get(order_id)
        if found is None:
            raise HTTPException(404, f"no order {order_id} on {self.code}")
        return found

    def generated(self, kind: OrderKind) -> dict[str, Any]:
        self.made += 1
        name, handle = random.choice(BUYERS)
        picked = [
            (sku, random.randint(1, 3), price)
            for sku, price in random.sample(DEMO_LINES, k=random.randint(1, 2))
        ]
        total = sum((Decimal(price) * quantity for _, quantity, price in picked), Decimal(0))
        lines: list[dict[str, Any]] = [
            {"sku": sku, "quantity": quantity, "unit_price": price}
            for sku, quantity, price in picked
        ]
        if kind == "unknown_sku":
            lines[0]["sku"] = UNKNOWN_SKU
        if kind == "amount_mismatch":
            total += Decimal("5.00")
        address = {
            "name": name,
            "line1": f"{random.randint(1, 99)} Market St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        }
        if kind == "bad_address":
            address |= {"country": "Narnia", "postal_code": ""}
        return {
            "id": f"{self.made:05d}{secrets.token_hex(2).upper()}",
            "created_at": datetime.now(UTC).isoformat(),
            "status": "new",
            "buyer": {"name": name, "email": f"{handle}.{self.made}@{self.code}.example.com"},
            "lines": lines,
            "currency": "EUR",
            "shipping_address": address,
            "total": str(total),
            "payment": {"reference": f"{self.code}-pay-{secrets.token_hex(4)}", "status": "paid"},
        }


class MarketplaceSimulator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.behaviour = Behaviour()
        # Failures answered so far, per request that a client would retry as it is.
        self._failures: dict[tuple[str, ...], int] = {}
        self.markets = {code: Marketplace(code) for code in settings.marketplace_simulator_codes}

    def market(self, code: str) -> Marketplace:
        found = self.markets.get(code)
        if found is None:
            raise HTTPException(404, f"no marketplace {code}")
        return found

    def check(self, authorization: str | None) -> None:
        if authorization != f"Bearer {self.settings.marketplace_simulator_api_key}":
            raise HTTPException(401, "missing or wrong API key")

    async def behave(self, *request: str) -> None:
        """The simulated trouble, before any answer of the marketplace API. `request` names
        what a client retries (a feed, or a push with its key): each fails `fail_times`."""
        b = self.behaviour
        failed = self._failures.get(request, 0)
        if b.mode == "fail" and failed < b.fail_times:
            self._failures[request] = failed + 1
            raise HTTPException(503, f"simulated outage ({failed + 1} of {b.fail_times})")
        if b.mode == "slow":
            await asyncio.sleep(b.slow_seconds)

    def control(self, update: ControlUpdate) -> Behaviour:
        if update.reset:
            self.behaviour = Behaviour()
        changes = update.model_dump(exclude_none=True, exclude={"reset"})
        if changes:
            self.behaviour = self.behaviour.model_copy(update=changes)
        self._failures.clear()
        return self.behaviour

    def once(
        self,
        market: Marketplace,
        key: str | None,
        body: dict[str, Any],
        make: Callable[[], dict[str, Any]],
        response: Response | None = None,
    ) -> dict[str, Any]:
        """The record a keyed request made, made once per key. `body` names the endpoint and
        the order too, so a key reused for another order is refused, not answered with the
        first order's record."""
        if not key:
            raise HTTPException(400, "an Idempotency-Key header is required")
        if key in market.taken:
            sent, first = market.taken[key]
            if sent != body:
                raise HTTPException(422, f"Idempotency-Key {key} was used with another body")
            if response is not None:
                # Taken before: nothing is created now.
                response.status_code = 200
            return first
        record: dict[str, Any] = make()
        market.taken[key] = (body, record)
        return record

    def demo_tick(self, tick: int) -> None:
        """One round of demo traffic: a new order on each marketplace and, every tenth
        round, the cancellation of its newest order that has not shipped (the newest: the
        shop most likely has not shipped it either, so the cancellation takes)."""
        for market in self.markets.values():
            if tick % 10 == 0:
                shipped = {s["id"] for s in market.shipments}
                open_ = [
                    o
                    for o in market.orders.values()
                    if o["status"] == "new" and o["id"] not in shipped
                ]
                if open_:
                    market.cancel(open_[-1]["id"])
            market.add(market.generated("valid"))

    async def demo(self, every: float) -> None:
        tick = 0
        while True:
            await asyncio.sleep(every)
            tick += 1
            self.demo_tick(tick)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    sim = MarketplaceSimulator(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        every = settings.marketplace_simulator_demo_seconds
        task = asyncio.create_task(sim.demo(every)) if every > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="orderflow marketplace simulator", lifespan=lifespan)
    app.state.simulator = sim

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "marketplaces": sorted(sim.markets)}

    @app.get("/control")
    async def get_control(authorization: Auth = None) -> Behaviour:
        sim.check(authorization)
        return sim.behaviour

    @app.post("/control")
    async def post_control(update: ControlUpdate, authorization: Auth = None) -> Behaviour:
        sim.check(authorization)
        return sim.control(update)

    @app.get("/{code}/orders")
    async def feed(
        code: str,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        authorization: Auth = None,
    ) -> dict[str, Any]:
        sim.check(authorization)
        market = sim.market(code)
        await sim.behave(code, "feed")
        if after and not (after.isascii() and after.isdigit()):
            raise HTTPException(400, f"unknown cursor {after!r}")
        start = int(after) if after else 0
        entries = market.feed[start : start + limit]
        return {"orders": entries, "next_cursor": str(start + len(entries))}

    @app.post("/{code}/orders/{order_id}/acknowledge")
    async def acknowledge(
        code: str, order_id: str, authorization: Auth = None, key: Key = None
    ) -> dict[str, Any]:
        sim.check(authorization)
        market = sim.market(code)
        await sim.behave(code, "acknowledge", order_id, key or "")
        market.order(order_id)

        def make() -> dict[str, Any]:
            record = {"id": order_id, "acknowledged_at": datetime.now(UTC).isoformat()}
            market.acknowledgements.append(record)
            return record

        return sim.once(market, key, {"acknowledge": order_id}, make)

    @app.post("/{code}/orders/{order_id}/shipments", status_code=201)
    async def shipment(
        code: str,
        order_id: str,
        body: MarketplaceShipment,
        response: Response,
        authorization: Auth = None,
        key: Key = None,
    ) -> dict[str, Any]:
        sim.check(authorization)
        market = sim.market(code)
        await sim.behave(code, "shipments", order_id, key or "")
        order = market.order(order_id)
        sent = body.model_dump(mode="json")

        def make() -> dict[str, Any]:
            if order["status"] == "cancelled":
                raise HTTPException(409, f"order {order_id} was cancelled on {code}")
            record = {"id": order_id, **sent}
            market.shipments.append(record)
            return record

        return sim.once(market, key, {"shipment": order_id, **sent}, make, response)

    @app.post("/{code}/orders/{order_id}/cancellation", status_code=201)
    async def cancellation(
        code: str,
        order_id: str,
        body: MarketplaceCancellation,
        response: Response,
        authorization: Auth = None,
        key: Key = None,
    ) -> dict[str, Any]:
        sim.check(authorization)
        market = sim.market(code)
        await sim.behave(code, "cancellation", order_id, key or "")
        market.order(order_id)
        sent = body.model_dump(mode="json")

        def make() -> dict[str, Any]:
            if any(s["id"] == order_id for s in market.shipments):
                raise HTTPException(409, f"order {order_id} has shipped")
            record = {"id": order_id, **sent}
            market.cancellations.append(record)
            return record

        return sim.once(market, key, {"cancellation": order_id, **sent}, make, response)

    @app.post("/{code}/orders", status_code=201)
    async def add_order(
        code: str, new: NewOrder | None = None, authorization: Auth = None
    ) -> dict[str, Any]:
        sim.check(authorization)
        market = sim.market(code)
        new = new or NewOrder()
        if new.order is None:
            return market.add(market.generated(new.kind))
        order_id = new.order.get("id")
        if not isinstance(order_id, str) or not order_id:
            raise HTTPException(422, "an order as given needs a string id")
        return market.add(new.order)

    @app.post("/{code}/orders/{order_id}/cancel")
    async def cancel_on_marketplace(
        code: str, order_id: str, authorization: Auth = None
    ) -> dict[str, Any]:
        sim.check(authorization)
        return sim.market(code).cancel(order_id)

    @app.get("/{code}/{records}")
    async def recorded(code: str, records: str, authorization: Auth = None) -> list[Any]:
        sim.check(authorization)
        market = sim.market(code)
        if records not in ("acknowledgements", "shipments", "cancellations"):
            raise HTTPException(404, f"no {records} here")
        found: list[Any] = getattr(market, records)
        return found

    return app


def run(settings: Settings | None = None) -> None:
    """Serve the simulator (the `orderflow marketplace-simulator` command)."""
    settings = settings or get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.marketplace_simulator_host,
        port=settings.marketplace_simulator_port,
        log_level="warning",
    )
