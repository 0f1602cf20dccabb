"""Carriers, their zone rates, the choice among them, and the carrier API's wire types.

`Carrier` mirrors a row of the `carriers` table (zones and rates are its JSON columns).
The booking request/response and shipment status types are what `activities/` send to and
read from a carrier's HTTP API (the project's simulator speaks exactly these); the tracking
events a carrier posts back are `orderflow.models.TrackingUpdate`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from orderflow.models.messages import TrackingStatus
from orderflow.models.order import CountryCode, Identifier, ServiceLevel, Strict

CarrierCode = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
]
# An ISO 3166-1 alpha-2 country code, or "*" for every country not listed.
ZoneKey = Annotated[str, StringConstraints(pattern=r"^([A-Z]{2}|\*)$")]
FALLBACK_ZONE_KEY = "*"
PostalCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=12)]


class CarrierRate(Strict):
    """What one zone costs and how long it takes, per service level."""

    base: Decimal = Field(ge=Decimal("0"), max_digits=10, decimal_places=2)
    per_kg: Decimal = Field(ge=Decimal("0"), max_digits=10, decimal_places=4)
    standard_days: int = Field(ge=0, le=60)
    express_days: int = Field(ge=0, le=60)

    @model_validator(mode="after")
    def _express_not_slower(self) -> CarrierRate:
        if self.express_days > self.standard_days:
            raise ValueError("express_days must not exceed standard_days")
        return self

    def days(self, service_level: ServiceLevel) -> int:
        return self.express_days if service_level == "express" else self.standard_days


class Carrier(Strict):
    """A carrier as the shop knows it: where it delivers, up to what weight, at what price."""

    code: CarrierCode
    name: str = Field(min_length=1, max_length=100)
    max_weight_kg: float = Field(gt=0)
    on_time_rate: float = Field(ge=0, le=1)
    # country -> zone name; "*" is the fallback zone. A country absent with no "*" is not served.
    zones: dict[ZoneKey, str]
    # zone name -> rate
    rates: dict[str, CarrierRate]
    active: bool = True

    @model_validator(mode="after")
    def _every_zone_priced(self) -> Carrier:
        missing = sorted(set(self.zones.values()) - set(self.rates))
        if missing:
            raise ValueError(f"zones without a rate: {', '.join(missing)}")
        return self

    def zone_for(self, country: str) -> str | None:
        """The zone the carrier puts `country` in, or None when it does not deliver there."""
        return self.zones.get(country.upper(), self.zones.get(FALLBACK_ZONE_KEY))


class CarrierQuote(Strict):
    """One carrier's offer for one parcel: a candidate of the choice."""

    carrier: str
    zone: str
    cost: Decimal
    transit_days: int
    expected_delivery: datetime
    on_time_rate: float
    meets_promise: bool | None = None


class CarrierChoice(Strict):
    """The chosen carrier for one parcel, with the reason and every candidate weighed."""

    carrier: str
    service_level: ServiceLevel
    zone: str
    cost: Decimal
    transit_days: int
    expected_delivery: datetime
    # The date the choice aimed at (standard); None for express without a promise.
    promised_by: datetime | None
    meets_promise: bool | None
    reason: str
    candidates: list[CarrierQuote]


# --- The carrier API (what activities send and read; the simulator implements it) ---

SimulatorScenario = Literal["instant", "normal", "slow", "fail", "lose"]
ShipmentStatus = Literal[
    "BOOKED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "EXCEPTION", "LOST"
]


class Destination(Strict):
    country: CountryCode
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=12)
    ]


class CarrierBookingRequest(Strict):
    """`POST /carriers/{carrier}/shipments`, sent with an `Idempotency-Key` header."""

    order_id: Identifier
    service_level: ServiceLevel
    weight_kg: float = Field(gt=0, le=1000)
    destination: Destination
    # Where tracking events go; the carrier's default webhook when omitted.
    webhook_url: str | None = Field(default=None, max_length=2000)
    # Simulator only: how this one parcel behaves (a real carrier ignores it).
    scenario: SimulatorScenario | None = None


class CarrierBookingResponse(Strict):
    """The carrier's confirmation: 201 when booked, 200 when the key was seen before."""

    carrier: str
    order_id: str
    tracking_number: str
    delivery_note: str
    service_level: ServiceLevel
    cost: Decimal
    booked_at: datetime
    expected_delivery: datetime


class CarrierTrackingEventView(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    status: TrackingStatus
    at: datetime


class CarrierShipmentStatus(BaseModel):
    """`GET /carriers/{carrier}/shipments/{tracking_number}`: where the parcel is now."""

    model_config = ConfigDict(frozen=True)

    carrier: str
    tracking_number: str
    order_id: str
    status: ShipmentStatus
    expected_delivery: datetime
    events: list[CarrierTrackingEventView]
