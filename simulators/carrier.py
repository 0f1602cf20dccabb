"""The carrier simulator: a stand-in for carriers' HTTP APIs, for development, tests and load.

It behaves like a real parcel carrier: it books shipments (once per `Idempotency-Key`),
answers with a tracking number, delivery note and expected delivery, reports where a parcel
is, and posts signed tracking events (`IN_TRANSIT`, `OUT_FOR_DELIVERY`, `DELIVERED`) to the
shop's webhook, retrying with backoff while the webhook is down.

Endpoints:
- `POST /carriers/{carrier}/shipments` (header `Idempotency-Key`): book; 201, or 200 with the
  same booking when the key was seen before (422 if the key comes with a different request);
- `GET /carriers/{carrier}/shipments/{tracking_number}`: status and events;
- `GET /carriers/{carrier}/shipments/{tracking_number}/webhook-deliveries`: what the webhook
  answered (debugging aid);
- `POST /carriers/{carrier}/returns` (header `Idempotency-Key`): a return label for a parcel
  coming back from the customer; it stays `BOOKED` until
  `POST /carriers/{carrier}/returns/{tracking_number}/hand-in` (the customer drops it off),
  then its events follow as a shipment's do (`DELIVERED`: back at the shop);
- `GET /control`, `POST /control`: the behaviour, for all carriers or one;
- `GET /healthz`.

Behaviours (simulator-wide, per carrier via `POST /control`, or per shipment via the booking's
`scenario`): `instant` posts all three events right after booking; `normal` spaces them by the
event interval; `slow` answers the booking only after a delay, then behaves as `normal`;
`fail` answers 503 to the first N attempts of each idempotency key, then books; `lose` posts
`IN_TRANSIT` and then nothing, and reports `LOST` once asked for the parcel's status.

State lives in memory: this is a simulator, and a restart forgets every parcel.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import BackgroundTasks, FastAPI, Header, HTTPException, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from orderflow.demo_carriers import DEMO_CARRIERS
from orderflow.models.carrier import (
    Carrier,
    CarrierBookingRequest,
    CarrierBookingResponse,
    CarrierShipmentStatus,
    CarrierTrackingEventView,
    Destination,
    ShipmentStatus,
    SimulatorScenario,
)
from orderflow.models.messages import TrackingStatus
from orderflow.models.returns import ReturnLabelRequest, ReturnLabelResponse
from orderflow.settings import Settings, get_settings
from orderflow.signing import carrier_secret
from policies.carrier_choice import quote
from simulators.signed_post import Retries, post_signed

IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_PLAN: tuple[TrackingStatus, ...] = ("IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED")


class Behaviour(BaseModel):
    """How a carrier (or the whole simulator) behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: SimulatorScenario
    event_interval_seconds: float = Field(ge=0)
    slow_seconds: float = Field(ge=0)
    fail_times: int = Field(ge=0)


class ControlUpdate(BaseModel):
    """`POST /control`: change the behaviour of every carrier, or of one (`carrier`)."""

    model_config = ConfigDict(extra="forbid")

    carrier: str | None = None
    mode: SimulatorScenario | None = None
    event_interval_seconds: float | None = Field(default=None, ge=0)
    slow_seconds: float | None = Field(default=None, ge=0)
    fail_times: int | None = Field(default=None, ge=0)
    # Drop the carrier's own behaviour (with `carrier`), or every override and go back to
    # the settings (without).
    reset: bool = False


class ControlView(BaseModel):
    default: Behaviour
    carriers: dict[str, Behaviour]


class WebhookDelivery(BaseModel):
    """The outcome of posting one tracking event to the webhook."""

    event_id: str
    status: TrackingStatus
    attempts: int = 0
    delivered: bool = False
    last_status_code: int | None = None
    last_error: str | None = None


@dataclass
class Shipment:
    carrier: str
    request: CarrierBookingRequest
    booking: CarrierBookingResponse
    webhook_url: str
    behaviour: Behaviour
    status: ShipmentStatus = "BOOKED"
    events: list[CarrierTrackingEventView] = field(default_factory=list)
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    # Set once the parcel has gone missing: the next status query admits it.
    vanished: bool = False
    # A return label's parcel: its return, and whether the customer has handed it in.
    return_id: str | None = None
    handed_in: bool = False


class CarrierSimulator:
    """The simulator's state and behaviour, independent of HTTP (the app is a thin shell)."""

    def __init__(
        self,
        settings: Settings,
        carriers: Sequence[Carrier],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.carriers = {c.code: c for c in carriers}
        self.default = self._behaviour_from_settings()
        self.overrides: dict[str, Behaviour] = {}
        self.shipments: dict[str, Shipment] = {}
        # (carrier, idempotency key) -> tracking number
        self._bookings: dict[tuple[str, str], str] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._key_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    def _behaviour_from_settings(self) -> Behaviour:
        s = self.settings
        return Behaviour(
            mode=s.carrier_simulator_mode,
            event_interval_seconds=s.carrier_simulator_event_interval_seconds,
            slow_seconds=s.carrier_simulator_slow_seconds,
            fail_times=s.carrier_simulator_fail_times,
        )

    # --- control ---

    def behaviour_of(self, carrier: str, scenario: SimulatorScenario | None = None) -> Behaviour:
        base = self.overrides.get(carrier, self.default)
        return base if scenario is None else base.model_copy(update={"mode": scenario})

    def control(self, update: ControlUpdate) -> ControlView:
        if update.carrier is not None and update.carrier not in self.carriers:
            raise HTTPException(404, f"unknown carrier {update.carrier!r}")
        if update.reset:
            if update.carrier is None:
                self.overrides.clear()
                self.default = self._behaviour_from_settings()
            else:
                self.overrides.pop(update.carrier, None)
        changes = update.model_dump(
            exclude_none=True,
            include={"mode", "event_interval_seconds", "slow_seconds", "fail_times"},
        )
        if changes:
            if update.carrier is None:
                self.default = self.default.model_copy(update=changes)
            else:
                current = self.behaviour_of(update.carrier)
                self.overrides[update.carrier] = current.model_copy(update=changes)
        return self.view_control()

    def view_control(self) -> ControlView:
        return ControlView(default=self.default, carriers=dict(self.overrides))

    # --- booking ---

    async def book(
        self, carrier_code: str, key: str, request: CarrierBookingRequest
    ) -> tuple[Shipment, bool]:
        """The shipment for this key, and whether it was booked just now.

        Raises HTTPException for an unknown carrier (404), a key reused with another request
        or a parcel the carrier cannot take (422), and a simulated outage (503).
        """
        carrier = self._carrier(carrier_code)
        slot = (carrier_code, key)
        lock = self._key_locks.setdefault(slot, asyncio.Lock())
        # One booking per key even when a client's retry overlaps its first, slow, attempt.
        async with lock:
            existing = self._bookings.get(slot)
            if existing is not None:
                shipment = self.shipments[existing]
                if shipment.request != request:
                    raise HTTPException(
                        422, f"{IDEMPOTENCY_HEADER} {key!r} was used for a different request"
                    )
                return shipment, False

            behaviour = self.behaviour_of(carrier_code, request.scenario)
            if behaviour.mode == "fail":
                failed = self._failures.get(slot, 0)
                if failed < behaviour.fail_times:
                    self._failures[slot] = failed + 1
                    raise HTTPException(
                        503,
                        f"carrier {carrier_code} temporarily unavailable "
                        f"(simulated, {failed + 1} of {behaviour.fail_times})",
                        headers={"Retry-After": "1"},
                    )
            if behaviour.mode == "slow":
                await asyncio.sleep(behaviour.slow_seconds)

            shipment = self._new_shipment(carrier, request, behaviour)
            self.shipments[shipment.booking.tracking_number] = shipment
            self._bookings[slot] = shipment.booking.tracking_number
            self._failures.pop(slot, None)
            return shipment, True

    async def book_return(
        self, carrier_code: str, key: str, request: ReturnLabelRequest
    ) -> tuple[Shipment, bool]:
        """A return label: a parcel from the customer's address back to the shop, booked
        like a shipment (once per key) but silent until it is handed in."""
        parcel = CarrierBookingRequest(
            order_id=request.order_id,
            service_level="standard",
            weight_kg=request.weight_kg,
            destination=Destination(
                country=request.origin.country, postal_code=request.origin.postal_code
            ),
            webhook_url=request.webhook_url,
        )
        shipment, created = await self.book(carrier_code, key, parcel)
        if created:
            shipment.return_id = request.return_id
        elif shipment.return_id != request.return_id:
            raise HTTPException(
                422, f"{IDEMPOTENCY_HEADER} {key!r} was used for a different request"
            )
        return shipment, created

    def hand_in(self, carrier_code: str, tracking_number: str) -> Shipment:
        shipment = self.shipment(carrier_code, tracking_number)
        if shipment.return_id is None:
            raise HTTPException(404, f"{tracking_number!r} is no return label")
        if shipment.handed_in:
            raise HTTPException(409, f"return parcel {tracking_number} was handed in already")
        shipment.handed_in = True
        self.start_tracking(shipment)
        return shipment

    def label_response(self, shipment: Shipment) -> ReturnLabelResponse:
        number = shipment.booking.tracking_number
        base = self.settings.carrier_api_url.rstrip("/")
        return ReturnLabelResponse(
            carrier=shipment.carrier,
            order_id=shipment.request.order_id,
            return_id=shipment.return_id or "",
            tracking_number=number,
            label_url=f"{base}/carriers/{shipment.carrier}/returns/{number}/label",
            booked_at=shipment.booking.booked_at,
        )

    def _carrier(self, code: str) -> Carrier:
        carrier = self.carriers.get(code)
        if carrier is None or not carrier.active:
            raise HTTPException(404, f"unknown carrier {code!r}")
        return carrier

    def _new_shipment(
        self, carrier: Carrier, request: CarrierBookingRequest, behaviour: Behaviour
    ) -> Shipment:
        booked_at = datetime.now(UTC)
        offer = quote(
            carrier,
            country=request.destination.country,
            weight_kg=request.weight_kg,
            service_level=request.service_level,
            shipped_at=booked_at,
        )
        if offer is None:
            raise HTTPException(
                422,
                f"{carrier.name} does not deliver a {request.weight_kg:g} kg parcel "
                f"to {request.destination.country}",
            )
        tracking_number = self._tracking_number(carrier.code)
        booking = CarrierBookingResponse(
            carrier=carrier.code,
            order_id=request.order_id,
            tracking_number=tracking_number,
            delivery_note=f"DN-{carrier.code.upper()}-{booked_at:%Y%m%d}-{tracking_number[-6:]}",
            service_level=request.service_level,
            cost=offer.cost,
            booked_at=booked_at,
            expected_delivery=offer.expected_delivery,
        )
        base = self.settings.carrier_webhook_base_url.rstrip("/")
        return Shipment(
            carrier=carrier.code,
            request=request,
            booking=booking,
            webhook_url=request.webhook_url or f"{base}/carriers/{carrier.code}/events",
            behaviour=behaviour,
        )

    def _tracking_number(self, code: str) -> str:
        # Random, not counted: a restarted simulator must not hand out numbers already stored.
        while True:
            number = f"{code.upper()}{secrets.randbelow(10**12):012d}"
            if number not in self.shipments:
                return number

    # --- status ---

    def status(self, carrier_code: str, tracking_number: str) -> CarrierShipmentStatus:
        shipment = self.shipment(carrier_code, tracking_number)
        if shipment.vanished and shipment.status != "LOST":
            self._record(shipment, "LOST")
        return CarrierShipmentStatus(
            carrier=shipment.carrier,
            tracking_number=tracking_number,
            order_id=shipment.request.order_id,
            status=shipment.status,
            expected_delivery=shipment.booking.expected_delivery,
            events=list(shipment.events),
        )

    def shipment(self, carrier_code: str, tracking_number: str) -> Shipment:
        shipment = self.shipments.get(tracking_number)
        if shipment is None or shipment.carrier != carrier_code:
            raise HTTPException(404, f"unknown tracking number {tracking_number!r}")
        return shipment

    # --- tracking events ---

    def start_tracking(self, shipment: Shipment) -> None:
        """Post the shipment's events in the background (tasks end on `aclose`)."""
        if self._closed:
            return
        task = asyncio.create_task(
            self._track(shipment), name=f"track-{shipment.booking.tracking_number}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _track(self, shipment: Shipment) -> None:
        behaviour = shipment.behaviour
        plan = DELIVERY_PLAN[:1] if behaviour.mode == "lose" else DELIVERY_PLAN
        delay = 0.0 if behaviour.mode == "instant" else behaviour.event_interval_seconds
        for status in plan:
            if delay:
                await asyncio.sleep(delay)
            event = self._record(shipment, status)
            await self._post(shipment, event)
        if behaviour.mode == "lose":
            shipment.vanished = True

    def _record(self, shipment: Shipment, status: TrackingStatus) -> CarrierTrackingEventView:
        at = datetime.now(UTC)
        if shipment.events and at <= shipment.events[-1].at:
            # Strictly increasing times, so receivers can order events by them.
            at = shipment.events[-1].at + timedelta(microseconds=1)
        event = CarrierTrackingEventView(
            event_id=f"{shipment.booking.tracking_number}-{len(shipment.events) + 1}",
            status=status,
            at=at,
        )
        shipment.events.append(event)
        shipment.status = status
        return event

    async def _post(self, shipment: Shipment, event: CarrierTrackingEventView) -> None:
        """Post one event, signed, retrying with backoff until a 2xx or the attempts run out."""
        body = json.dumps(
            {
                "event_id": event.event_id,
                "tracking_number": shipment.booking.tracking_number,
                "status": event.status,
                "at": event.at.isoformat(),
            },
            separators=(",", ":"),
        ).encode()
        delivery = WebhookDelivery(event_id=event.event_id, status=event.status)
        shipment.deliveries.append(delivery)
        s = self.settings
        await post_signed(
            self.client,
            shipment.webhook_url,
            body,
            secret=carrier_secret(s, shipment.carrier),
            retries=Retries(
                s.carrier_simulator_webhook_attempts,
                s.carrier_simulator_webhook_backoff_seconds,
                s.carrier_simulator_webhook_backoff_max_seconds,
            ),
            delivery=delivery,
            what=f"{event.event_id} {event.status}",
        )

    @property
    def posting(self) -> int:
        """Shipments whose events are still being posted."""
        return len(self._tasks)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=self.settings.carrier_http_timeout_seconds
            )
        return self._client

    async def idle(self) -> None:
        """Wait until every background posting has finished (for tests and orderly stops)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop posting: cancel what is under way, wait for it, close the HTTP client."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def create_app(
    settings: Settings | None = None,
    *,
    carriers: Sequence[Carrier] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The simulator as an ASGI app; `app.state.simulator` is its `CarrierSimulator`.

    `transport` replaces the network for webhook posts (e.g. `httpx.ASGITransport` of the API).
    """
    simulator = CarrierSimulator(
        settings or get_settings(),
        DEMO_CARRIERS if carriers is None else carriers,
        transport=transport,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await simulator.aclose()

    app = FastAPI(
        title="orderflow carrier simulator",
        description="Books parcels and posts signed tracking events, like a real carrier.",
        lifespan=lifespan,
    )
    app.state.simulator = simulator

    @app.post(
        "/carriers/{carrier}/shipments",
        status_code=201,
        response_model=CarrierBookingResponse,
        responses={200: {"description": "Seen this Idempotency-Key before: the same booking"}},
    )
    async def book_shipment(
        carrier: str,
        request: CarrierBookingRequest,
        response: Response,
        background: BackgroundTasks,
        idempotency_key: Annotated[
            str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=200)
        ] = None,
    ) -> CarrierBookingResponse:
        if not idempotency_key or not idempotency_key.strip():
            raise HTTPException(400, f"the {IDEMPOTENCY_HEADER} header is required")
        shipment, created = await simulator.book(carrier, idempotency_key.strip(), request)
        if created:
            # After the response is sent, like a carrier whose scans follow the label.
            background.add_task(_start_tracking, simulator, shipment)
        else:
            response.status_code = 200
        return shipment.booking

    @app.get(
        "/carriers/{carrier}/shipments/{tracking_number}", response_model=CarrierShipmentStatus
    )
    async def shipment_status(carrier: str, tracking_number: str) -> CarrierShipmentStatus:
        return simulator.status(carrier, tracking_number)

    @app.get("/carriers/{carrier}/shipments/{tracking_number}/webhook-deliveries")
    async def webhook_deliveries(carrier: str, tracking_number: str) -> list[WebhookDelivery]:
        return list(simulator.shipment(carrier, tracking_number).deliveries)

    @app.post(
        "/carriers/{carrier}/returns",
        status_code=201,
        response_model=ReturnLabelResponse,
        responses={200: {"description": "Seen this Idempotency-Key before: the same label"}},
    )
    async def book_return_label(
        carrier: str,
        request: ReturnLabelRequest,
        response: Response,
        idempotency_key: Annotated[
            str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=200)
        ] = None,
    ) -> ReturnLabelResponse:
        if not idempotency_key or not idempotency_key.strip():
            raise HTTPException(400, f"the {IDEMPOTENCY_HEADER} header is required")
        shipment, created = await simulator.book_return(carrier, idempotency_key.strip(), request)
        if not created:
            response.status_code = 200
        return simulator.label_response(shipment)

    @app.post(
        "/carriers/{carrier}/returns/{tracking_number}/hand-in",
        status_code=202,
        response_model=CarrierShipmentStatus,
    )
    async def hand_in_return(carrier: str, tracking_number: str) -> CarrierShipmentStatus:
        simulator.hand_in(carrier, tracking_number)
        return simulator.status(carrier, tracking_number)

    @app.get(
        "/carriers/{carrier}/returns/{tracking_number}/label", response_class=PlainTextResponse
    )
    async def return_label(carrier: str, tracking_number: str) -> str:
        shipment = simulator.shipment(carrier, tracking_number)
        if shipment.return_id is None:
            raise HTTPException(404, f"{tracking_number!r} is no return label")
        return (
            f"RETURN {shipment.carrier.upper()} {tracking_number}\n"
            f"order {shipment.request.order_id}, return {shipment.return_id}\n"
        )

    @app.get("/control", response_model=ControlView)
    async def get_control() -> ControlView:
        return simulator.view_control()

    @app.post("/control", response_model=ControlView)
    async def post_control(update: ControlUpdate) -> ControlView:
        return simulator.control(update)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "carriers": sorted(simulator.carriers),
            "shipments": len(simulator.shipments),
            "posting": simulator.posting,
        }

    return app


async def _start_tracking(simulator: CarrierSimulator, shipment: Shipment) -> None:
    simulator.start_tracking(shipment)


def run(host: str | None = None, port: int | None = None, settings: Settings | None = None) -> None:
    """Serve the simulator with uvicorn (blocking), on the configured host and port by default."""
    settings = settings or get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.carrier_simulator_host,
        port=port or settings.carrier_simulator_port,
        log_level="info",
    )


if __name__ == "__main__":
    run()


__all__ = [
    "IDEMPOTENCY_HEADER",
    "Behaviour",
    "CarrierSimulator",
    "ControlUpdate",
    "ControlView",
    "WebhookDelivery",
    "create_app",
    "run",
]
