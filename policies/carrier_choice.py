"""Carrier choice (step 6): which carrier takes a parcel, and why.

Pure policy over the carriers table. A carrier is acceptable when it is active, delivers to the
destination country (its zones, with "*" as the fallback) and takes the parcel's weight.

- cost = base + per_kg * weight of the destination zone, rounded to cents (half up);
- transit time = the zone's days for the service level, counted in **business days**
  (Monday to Friday; public holidays are not modelled): carriers do not deliver at weekends,
  so a parcel shipped on Friday with 1 day arrives on Monday. The time of day of `shipped_at`
  is kept, and weekdays are read in `shipped_at`'s own time zone;
- express: the fastest acceptable carrier; ties go to the better on-time record, then the
  cheaper, then the carrier code (so the choice never depends on the table's order);
- standard: the cheapest acceptable carrier that meets the promised date (`promised_by`, or
  `shipped_at` plus `default_promise_business_days` when the order has no promise); ties go
  to the better on-time record, then the faster, then the code. When no carrier meets the
  promise, the fastest (ties as for express).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from orderflow.models.carrier import Carrier, CarrierChoice, CarrierQuote, CarrierRate
from orderflow.models.order import ServiceLevel

CENT = Decimal("0.01")
DEFAULT_PROMISE_BUSINESS_DAYS = 5


class NoCarrierAvailable(Exception):
    """No active carrier delivers to this country at this weight."""

    def __init__(self, *, country: str, weight_kg: float, considered: int) -> None:
        self.country = country
        self.weight_kg = weight_kg
        self.considered = considered
        super().__init__(
            f"no active carrier delivers a {weight_kg:g} kg parcel to {country} "
            f"({considered} carriers considered)"
        )


def add_business_days(start: datetime, days: int) -> datetime:
    """`start` plus `days` weekdays, keeping the time of day (0 days: `start` itself)."""
    if days < 0:
        raise ValueError("days must not be negative")
    moment = start
    remaining = days
    while remaining:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            remaining -= 1
    return moment


def shipping_cost(rate: CarrierRate, weight_kg: float) -> Decimal:
    """base + per_kg * weight, in cents, rounded half up."""
    # str() keeps the weight as written (2.3, not 2.29999...) so rounding is what people expect.
    return (rate.base + rate.per_kg * Decimal(str(weight_kg))).quantize(
        CENT, rounding=ROUND_HALF_UP
    )


def quote(
    carrier: Carrier,
    *,
    country: str,
    weight_kg: float,
    service_level: ServiceLevel,
    shipped_at: datetime,
    promised_by: datetime | None = None,
) -> CarrierQuote | None:
    """The carrier's offer for this parcel, or None when it cannot take it."""
    if not carrier.active or weight_kg > carrier.max_weight_kg:
        return None
    zone = carrier.zone_for(country)
    if zone is None:
        return None
    rate = carrier.rates[zone]
    days = rate.days(service_level)
    expected = add_business_days(shipped_at, days)
    return CarrierQuote(
        carrier=carrier.code,
        zone=zone,
        cost=shipping_cost(rate, weight_kg),
        transit_days=days,
        expected_delivery=expected,
        on_time_rate=carrier.on_time_rate,
        meets_promise=None if promised_by is None else expected <= promised_by,
    )


def choose_carrier(
    carriers: Iterable[Carrier],
    *,
    country: str,
    weight_kg: float,
    service_level: ServiceLevel,
    shipped_at: datetime,
    promised_by: datetime | None = None,
    default_promise_business_days: int = DEFAULT_PROMISE_BUSINESS_DAYS,
) -> CarrierChoice:
    """The best carrier for this parcel (rules in the module docstring).

    Raises `NoCarrierAvailable` when no active carrier serves the country and weight, and
    `ValueError` for a weight that is not positive.
    """
    if not weight_kg > 0:
        raise ValueError("weight_kg must be positive")
    country = country.upper()
    table = list(carriers)
    if service_level == "standard" and promised_by is None:
        promised_by = add_business_days(shipped_at, default_promise_business_days)
    candidates = [
        q
        for q in (
            quote(
                c,
                country=country,
                weight_kg=weight_kg,
                service_level=service_level,
                shipped_at=shipped_at,
                promised_by=promised_by,
            )
            for c in table
        )
        if q is not None
    ]
    if not candidates:
        raise NoCarrierAvailable(country=country, weight_kg=weight_kg, considered=len(table))

    serving = f"{_count(len(candidates), 'carrier')} serving {country} at {weight_kg:g} kg"
    if service_level == "express":
        chosen, tie = _pick(candidates, _fastest_keys)
        reason = f"express: fastest ({_days(chosen.transit_days)}) among {serving}"
    else:
        on_time = [q for q in candidates if q.meets_promise]
        promise = f"the promise of {promised_by:%Y-%m-%d}"
        if on_time:
            chosen, tie = _pick(on_time, _cheapest_keys)
            reason = (
                f"standard: cheapest ({chosen.cost}) of {_count(len(on_time), 'carrier')} "
                f"meeting {promise} among {serving}"
            )
        else:
            chosen, tie = _pick(candidates, _fastest_keys)
            reason = (
                f"standard: none meets {promise}; fastest ({_days(chosen.transit_days)}) "
                f"among {serving}"
            )
    if tie:
        reason += f"; tie broken by {tie}"

    return CarrierChoice(
        carrier=chosen.carrier,
        service_level=service_level,
        zone=chosen.zone,
        cost=chosen.cost,
        transit_days=chosen.transit_days,
        expected_delivery=chosen.expected_delivery,
        promised_by=promised_by,
        meets_promise=chosen.meets_promise,
        reason=reason,
        candidates=sorted(candidates, key=lambda q: q.carrier),
    )


# Ranking criteria of a quote, most important first: (name in the reason, sort value, shown).
_Criteria = list[tuple[str, Any, str]]


def _fastest_keys(q: CarrierQuote) -> _Criteria:
    return [
        ("speed", q.expected_delivery, _days(q.transit_days)),
        ("on-time", -q.on_time_rate, f"{q.on_time_rate:.0%}"),
        ("cost", q.cost, str(q.cost)),
        ("carrier code", q.carrier, q.carrier),
    ]


def _cheapest_keys(q: CarrierQuote) -> _Criteria:
    return [
        ("cost", q.cost, str(q.cost)),
        ("on-time", -q.on_time_rate, f"{q.on_time_rate:.0%}"),
        ("speed", q.expected_delivery, _days(q.transit_days)),
        ("carrier code", q.carrier, q.carrier),
    ]


def _pick(
    quotes: list[CarrierQuote], criteria: Callable[[CarrierQuote], _Criteria]
) -> tuple[CarrierQuote, str | None]:
    """The best quote, and which criteria broke a tie on the first one (None if no tie)."""
    ranked = sorted(quotes, key=lambda q: tuple(value for _, value, _ in criteria(q)))
    best = criteria(ranked[0])
    rivals = [criteria(q) for q in ranked[1:]]
    rivals = [r for r in rivals if r[0][1] == best[0][1]]
    breakers: list[str] = []
    for index in range(1, len(best)):
        if not rivals:
            break
        name, value, shown = best[index]
        still_tied = [r for r in rivals if r[index][1] == value]
        if len(still_tied) < len(rivals):
            breakers.append(f"{name} {shown}")
        rivals = still_tied
    return ranked[0], ", then ".join(breakers) or None


def _days(n: int) -> str:
    return _count(n, "business day")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
