"""The carrier simulator in-process: booking, idempotency, behaviours, signed webhook events.

The simulator is driven through its HTTP interface (httpx over ASGI). Its webhook posts go to
a small receiver: over real HTTP (uvicorn on a free local port) where the network matters,
over ASGI elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.datastructures import Headers

from orderflow.models import TrackingUpdate
from orderflow.models.carrier import CarrierBookingResponse
from orderflow.settings import Settings
from orderflow.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, carrier_secret, verify_signature
from simulators.carrier import CarrierSimulator, create_app

WAIT = 15.0


EVENTS = {"carrier_simulator_event_interval_seconds": 0.05}


def fast_settings(**overrides: Any) -> Settings:
    """Short waits; an hour between events unless a test asks for `EVENTS`."""
    values: dict[str, Any] = {
        "carrier_simulator_mode": "normal",
        "carrier_simulator_event_interval_seconds": 3600,
        "carrier_simulator_slow_seconds": 0.3,
        "carrier_simulator_fail_times": 2,
        "carrier_simulator_webhook_attempts": 4,
        "carrier_simulator_webhook_backoff_seconds": 0.02,
        "carrier_simulator_webhook_backoff_max_seconds": 0.1,
        "carrier_webhook_base_url": "http://shop.invalid",
        "carrier_webhook_secrets": {"dhl": "dhl-test-secret"},
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Received:
    carrier: str
    body: bytes
    headers: Headers


@dataclass
class Receiver:
    """The shop's webhook as far as the simulator can tell: records what arrives."""

    fail_first: int = 0
    calls: int = 0
    received: list[Received] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/carriers/{carrier}/events")
        async def events(carrier: str, request: Request) -> Response:
            self.calls += 1
            if self.calls <= self.fail_first:
                return Response(status_code=503)
            self.received.append(Received(carrier, await request.body(), request.headers))
            return Response(status_code=202)

        return app

    def statuses(self) -> list[str]:
        return [json.loads(r.body)["status"] for r in self.received]


@asynccontextmanager
async def simulator_client(
    settings: Settings, receiver: Receiver | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, CarrierSimulator]]:
    transport = httpx.ASGITransport(app=receiver.app()) if receiver else None
    app = create_app(settings, transport=transport)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://carrier"
        ) as client,
    ):
        yield client, app.state.simulator


@asynccontextmanager
async def serve_over_http(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "receiver failed to start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def booking(order_id: str = "A-1001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order_id,
        "service_level": "standard",
        "weight_kg": 2.5,
        "destination": {"country": "DE", "postal_code": "10115"},
    }
    body.update(overrides)
    return body


async def book(
    client: httpx.AsyncClient, carrier: str, key: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/carriers/{carrier}/shipments", json=body, headers={"Idempotency-Key": key}
    )


# --- booking ---


async def test_the_same_idempotency_key_books_once() -> None:
    async with simulator_client(fast_settings(carrier_simulator_mode="lose")) as (client, sim):
        first = await book(client, "dhl", "order-A-1001-ship", booking())
        assert first.status_code == 201, first.text
        confirmation = CarrierBookingResponse.model_validate(first.json())
        assert confirmation.tracking_number.startswith("DHL")
        assert confirmation.delivery_note.startswith("DN-DHL-")
        assert confirmation.expected_delivery > confirmation.booked_at

        again = await book(client, "dhl", "order-A-1001-ship", booking())
        assert again.status_code == 200
        assert CarrierBookingResponse.model_validate(again.json()) == confirmation
        assert len(sim.shipments) == 1

        other = await book(client, "dhl", "order-A-1002-ship", booking("A-1002"))
        assert other.status_code == 201
        assert other.json()["tracking_number"] != confirmation.tracking_number
        assert len(sim.shipments) == 2


async def test_a_retry_overlapping_a_slow_booking_still_books_once() -> None:
    async with simulator_client(fast_settings(carrier_simulator_mode="slow")) as (client, sim):
        first, second = await asyncio.gather(
            book(client, "ups", "k-1", booking()), book(client, "ups", "k-1", booking())
        )
        assert sorted([first.status_code, second.status_code]) == [200, 201]
        assert first.json()["tracking_number"] == second.json()["tracking_number"]
        assert len(sim.shipments) == 1


async def test_bad_bookings_are_refused_with_a_clear_reason() -> None:
    async with simulator_client(fast_settings()) as (client, sim):
        missing_key = await client.post("/carriers/dhl/shipments", json=booking())
        assert missing_key.status_code == 400
        assert "Idempotency-Key" in missing_key.json()["detail"]

        unknown = await book(client, "acme", "k", booking())
        assert unknown.status_code == 404

        # GLS does not deliver outside Europe; UPS takes at most 70 kg.
        abroad = booking(destination={"country": "US", "postal_code": "10001"})
        not_served = await book(client, "gls", "k-us", abroad)
        assert not_served.status_code == 422
        assert "US" in not_served.json()["detail"]
        too_heavy = await book(client, "ups", "k-heavy", booking(weight_kg=90))
        assert too_heavy.status_code == 422

        invalid = await book(client, "dhl", "k-bad", booking(weight_kg=-1))
        assert invalid.status_code == 422

        assert (await book(client, "dhl", "k-1", booking())).status_code == 201
        reused = await book(client, "dhl", "k-1", booking(weight_kg=3.0))
        assert reused.status_code == 422
        assert "different request" in reused.json()["detail"]
        assert len(sim.shipments) == 1


async def test_fail_mode_answers_503_n_times_per_key_then_books() -> None:
    async with simulator_client(fast_settings()) as (client, sim):
        control = await client.post(
            "/control", json={"carrier": "dpd", "mode": "fail", "fail_times": 2}
        )
        assert control.status_code == 200
        assert control.json()["carriers"]["dpd"]["mode"] == "fail"

        codes = [(await book(client, "dpd", "k-1", booking())).status_code for _ in range(3)]
        assert codes == [503, 503, 201]
        failed = await book(client, "dpd", "k-2", booking("A-2"))
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "1"
        # Other carriers are not affected.
        assert (await book(client, "dhl", "k-3", booking("A-3"))).status_code == 201
        # A booking may ask for failures itself.
        per_shipment = booking("A-4", scenario="fail")
        assert (await book(client, "gls", "k-4", per_shipment)).status_code == 503

        await client.post("/control", json={"carrier": "dpd", "reset": True})
        assert (await client.get("/control")).json()["carriers"] == {}
        assert (await book(client, "dpd", "k-5", booking("A-5"))).status_code == 201
        assert len(sim.shipments) == 3


# --- tracking events ---


async def test_signed_events_arrive_in_order_over_http() -> None:
    receiver = Receiver()
    settings = fast_settings(**EVENTS)
    async with serve_over_http(receiver.app()) as shop, simulator_client(settings) as (client, sim):
        response = await book(
            client,
            "dhl",
            "k-1",
            booking(webhook_url=f"{shop}/carriers/dhl/events"),
        )
        assert response.status_code == 201
        tracking_number = response.json()["tracking_number"]
        await asyncio.wait_for(sim.idle(), WAIT)

    assert receiver.statuses() == ["IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]
    events = [TrackingUpdate.model_validate_json(r.body) for r in receiver.received]
    assert {e.tracking_number for e in events} == {tracking_number}
    assert len({e.event_id for e in events}) == 3
    assert events[0].at < events[1].at < events[2].at

    secret = carrier_secret(settings, "dhl")
    assert secret == "dhl-test-secret"
    for r in receiver.received:
        stamp = int(r.headers[TIMESTAMP_HEADER])
        signature = r.headers[SIGNATURE_HEADER]
        assert r.headers["content-type"] == "application/json"
        assert verify_signature(secret, r.body, stamp, signature, now=stamp)
        tampered = r.body.replace(b"DELIVERED", b"LOST").replace(b"IN_TRANSIT", b"LOST")
        tampered = tampered.replace(b"OUT_FOR_DELIVERY", b"LOST")
        assert not verify_signature(secret, tampered, stamp, signature, now=stamp)
        assert not verify_signature(
            carrier_secret(settings, "dpd"), r.body, stamp, signature, now=stamp
        )


async def test_status_follows_the_events() -> None:
    receiver = Receiver()
    async with simulator_client(fast_settings(**EVENTS), receiver) as (client, sim):
        tracking_number = (await book(client, "gls", "k-1", booking())).json()["tracking_number"]
        await asyncio.wait_for(sim.idle(), WAIT)
        status = await client.get(f"/carriers/gls/shipments/{tracking_number}")
        assert status.status_code == 200
        view = status.json()
        assert view["status"] == "DELIVERED"
        assert view["order_id"] == "A-1001"
        assert [e["status"] for e in view["events"]] == [
            "IN_TRANSIT",
            "OUT_FOR_DELIVERY",
            "DELIVERED",
        ]
        # Wrong carrier or unknown number: 404.
        assert (await client.get(f"/carriers/dhl/shipments/{tracking_number}")).status_code == 404
        assert (await client.get("/carriers/gls/shipments/GLS000")).status_code == 404
    # The default webhook is the shop's, under the configured base URL.
    assert receiver.received[0].carrier == "gls"
    assert sim.shipments[tracking_number].webhook_url == "http://shop.invalid/carriers/gls/events"


async def test_instant_mode_posts_everything_right_after_booking() -> None:
    receiver = Receiver()
    # An hour between events: only `instant` can finish within the wait.
    settings = fast_settings()
    async with simulator_client(settings, receiver) as (client, sim):
        response = await book(client, "dpd", "k-1", booking(scenario="instant"))
        assert response.status_code == 201
        await asyncio.wait_for(sim.idle(), WAIT)
        assert receiver.statuses() == ["IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]


async def test_a_webhook_that_is_down_gets_the_events_when_it_is_back() -> None:
    receiver = Receiver(fail_first=2)
    async with simulator_client(fast_settings(**EVENTS), receiver) as (client, sim):
        tracking_number = (await book(client, "dhl", "k-1", booking())).json()["tracking_number"]
        await asyncio.wait_for(sim.idle(), WAIT)
        deliveries = (
            await client.get(f"/carriers/dhl/shipments/{tracking_number}/webhook-deliveries")
        ).json()
    assert receiver.statuses() == ["IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]
    assert [d["attempts"] for d in deliveries] == [3, 1, 1]
    assert all(d["delivered"] for d in deliveries)


async def test_retries_to_an_unreachable_webhook_are_bounded() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = fast_settings(carrier_simulator_mode="instant")
    async with simulator_client(settings) as (client, sim):
        body = booking(webhook_url=f"http://127.0.0.1:{closed_port}/carriers/ups/events")
        tracking_number = (await book(client, "ups", "k-1", body)).json()["tracking_number"]
        await asyncio.wait_for(sim.idle(), WAIT)
        deliveries = sim.shipments[tracking_number].deliveries
    assert [d.attempts for d in deliveries] == [4, 4, 4]
    assert not any(d.delivered for d in deliveries)
    assert all(d.last_error for d in deliveries)


async def test_a_lost_parcel_goes_quiet_after_in_transit_and_is_lost_when_asked() -> None:
    receiver = Receiver()
    async with simulator_client(fast_settings(**EVENTS), receiver) as (client, sim):
        tracking_number = (await book(client, "dhl", "k-1", booking(scenario="lose"))).json()[
            "tracking_number"
        ]
        await asyncio.wait_for(sim.idle(), WAIT)
        assert receiver.statuses() == ["IN_TRANSIT"]

        asked = (await client.get(f"/carriers/dhl/shipments/{tracking_number}")).json()
        assert asked["status"] == "LOST"
        assert [e["status"] for e in asked["events"]] == ["IN_TRANSIT", "LOST"]
        again = (await client.get(f"/carriers/dhl/shipments/{tracking_number}")).json()
        assert again == asked
    # The carrier admits the loss when asked; it posts nothing more.
    assert receiver.statuses() == ["IN_TRANSIT"]


async def test_shutdown_stops_posting_cleanly() -> None:
    receiver = Receiver()
    settings = fast_settings()
    app = create_app(settings, transport=httpx.ASGITransport(app=receiver.app()))
    sim: CarrierSimulator = app.state.simulator
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://carrier"
        ) as client:
            assert (await book(client, "dhl", "k-1", booking())).status_code == 201
            assert (await book(client, "dpd", "k-2", booking("A-2"))).status_code == 201
        assert sim.posting == 2
    assert sim.posting == 0
    assert receiver.received == []
    assert sim._client is None


async def test_control_changes_the_default_and_reset_restores_the_settings() -> None:
    async with simulator_client(fast_settings()) as (client, _):
        initial = (await client.get("/control")).json()
        assert initial["default"]["mode"] == "normal"
        changed = await client.post(
            "/control", json={"mode": "instant", "event_interval_seconds": 1.5}
        )
        assert changed.json()["default"]["mode"] == "instant"
        assert changed.json()["default"]["event_interval_seconds"] == 1.5
        per_carrier = await client.post("/control", json={"carrier": "ups", "mode": "lose"})
        # A carrier's own behaviour starts from the current default.
        assert per_carrier.json()["carriers"]["ups"]["event_interval_seconds"] == 1.5
        assert (await client.post("/control", json={"carrier": "acme"})).status_code == 404
        assert (await client.post("/control", json={"mode": "teleport"})).status_code == 422
        reset = (await client.post("/control", json={"reset": True})).json()
        assert reset == initial


@pytest.mark.parametrize("carrier", ["dhl", "dpd", "ups", "gls"])
async def test_every_demo_carrier_books_a_domestic_parcel(carrier: str) -> None:
    async with simulator_client(fast_settings(carrier_simulator_mode="lose")) as (client, _):
        response = await book(client, carrier, f"k-{carrier}", booking(service_level="express"))
        assert response.status_code == 201
        assert response.json()["tracking_number"].startswith(carrier.upper())
