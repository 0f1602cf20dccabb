"""Carrier choice policy: worked examples and properties over random carrier tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orderflow.demo_carriers import DEMO_CARRIERS
from orderflow.models.carrier import Carrier, CarrierChoice, CarrierQuote, CarrierRate
from orderflow.models.order import ServiceLevel
from policies.carrier_choice import (
    NoCarrierAvailable,
    add_business_days,
    choose_carrier,
    quote,
    shipping_cost,
)

# Wednesday 25 November 2026, 10:00 UTC.
WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
FRIDAY = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)


def rate(base: str, per_kg: str, standard: int, express: int) -> CarrierRate:
    return CarrierRate(
        base=Decimal(base), per_kg=Decimal(per_kg), standard_days=standard, express_days=express
    )


def carrier(
    code: str,
    *,
    on_time: float = 0.9,
    max_kg: float = 30.0,
    zones: dict[str, str] | None = None,
    rates: dict[str, CarrierRate] | None = None,
    active: bool = True,
) -> Carrier:
    return Carrier(
        code=code,
        name=code.upper(),
        max_weight_kg=max_kg,
        on_time_rate=on_time,
        zones=zones if zones is not None else {"DE": "home"},
        rates=rates if rates is not None else {"home": rate("5.00", "0.10", 2, 1)},
        active=active,
    )


# --- business days and cost ---


def test_business_days_skip_the_weekend_and_keep_the_time_of_day() -> None:
    assert add_business_days(FRIDAY, 1) == datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
    assert add_business_days(WEDNESDAY, 5) == WEDNESDAY + timedelta(days=7)
    assert add_business_days(WEDNESDAY, 2) == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    saturday = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert add_business_days(saturday, 1) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert add_business_days(saturday, 0) == saturday
    with pytest.raises(ValueError):
        add_business_days(WEDNESDAY, -1)


def test_cost_is_base_plus_per_kg_rounded_half_up_to_cents() -> None:
    # 4.50 + 0.125 * 1 = 4.625: half up gives 4.63 (banker's rounding would give 4.62).
    assert shipping_cost(rate("4.50", "0.125", 2, 1), 1.0) == Decimal("4.63")
    # The weight as written: 2.3 kg is 2.3, not 2.2999999999999998.
    assert shipping_cost(rate("0.00", "0.05", 2, 1), 2.3) == Decimal("0.12")
    assert shipping_cost(rate("0.00", "0.005", 2, 1), 1.0) == Decimal("0.01")
    assert shipping_cost(rate("3.99", "0.10", 2, 1), 31.5) == Decimal("7.14")


# --- the carriers table ---


def test_zone_lookup_uses_the_fallback_only_for_unlisted_countries() -> None:
    c = carrier(
        "x",
        zones={"DE": "home", "*": "world"},
        rates={"home": rate("5", "0", 2, 1), "world": rate("30", "1", 8, 4)},
    )
    assert c.zone_for("DE") == "home"
    assert c.zone_for("de") == "home"
    assert c.zone_for("JP") == "world"
    assert carrier("y").zone_for("JP") is None


def test_a_zone_without_a_rate_or_express_slower_than_standard_is_refused() -> None:
    with pytest.raises(ValidationError, match="zones without a rate"):
        carrier("x", zones={"DE": "home", "FR": "eu"}, rates={"home": rate("5", "0", 2, 1)})
    with pytest.raises(ValidationError, match="express_days"):
        rate("5", "0", 2, 3)
    with pytest.raises(ValidationError):
        carrier("x", on_time=1.2)


def test_a_row_of_the_carriers_table_validates_with_json_numbers_as_strings() -> None:
    row = {
        "code": "dhl",
        "name": "DHL",
        "max_weight_kg": Decimal("31.500"),
        "on_time_rate": Decimal("0.9400"),
        "zones": {"DE": "domestic", "*": "world"},
        "rates": {
            "domestic": {"base": "4.49", "per_kg": "0.10", "standard_days": 2, "express_days": 1},
            "world": {"base": "34.99", "per_kg": "2.40", "standard_days": 8, "express_days": 4},
        },
        "active": True,
    }
    parsed = Carrier.model_validate(row)
    assert parsed.rates["world"].base == Decimal("34.99")
    assert parsed.max_weight_kg == pytest.approx(31.5)


# --- choice ---


def test_express_takes_the_fastest_and_records_the_tie_break() -> None:
    carriers = [
        carrier("slow", rates={"home": rate("3.00", "0", 3, 2)}, on_time=0.99),
        carrier("fast_cheap", rates={"home": rate("6.00", "0", 3, 1)}, on_time=0.90),
        carrier("fast_punctual", rates={"home": rate("9.00", "0", 3, 1)}, on_time=0.97),
    ]
    choice = choose_carrier(
        carriers,
        country="DE",
        weight_kg=1,
        service_level="express",
        shipped_at=WEDNESDAY,
        promised_by=None,
    )
    assert choice.carrier == "fast_punctual"
    assert choice.transit_days == 1
    assert choice.expected_delivery == WEDNESDAY + timedelta(days=1)
    assert choice.cost == Decimal("9.00")
    assert choice.reason == (
        "express: fastest (1 business day) among 3 carriers serving DE at 1 kg; "
        "tie broken by on-time 97%"
    )
    assert [q.carrier for q in choice.candidates] == ["fast_cheap", "fast_punctual", "slow"]


def test_express_tie_on_speed_and_on_time_goes_to_the_cheaper() -> None:
    carriers = [
        carrier("a", rates={"home": rate("9.00", "0", 3, 1)}, on_time=0.95),
        carrier("b", rates={"home": rate("7.00", "0", 3, 1)}, on_time=0.95),
    ]
    choice = choose_carrier(
        carriers,
        country="DE",
        weight_kg=1,
        service_level="express",
        shipped_at=WEDNESDAY,
        promised_by=None,
    )
    assert choice.carrier == "b"
    assert choice.reason.endswith("tie broken by cost 7.00")


def test_standard_takes_the_cheapest_that_meets_the_promise() -> None:
    carriers = [
        # Cheapest of all, but 5 business days: Wednesday + 5 = next Wednesday, too late.
        carrier("cheap_late", rates={"home": rate("2.00", "0.10", 5, 2)}),
        carrier("mid", rates={"home": rate("4.00", "0.10", 3, 1)}),
        carrier("dear_fast", rates={"home": rate("8.00", "0.10", 1, 1)}),
    ]
    promise = WEDNESDAY + timedelta(days=6)  # Tuesday
    choice = choose_carrier(
        carriers,
        country="DE",
        weight_kg=2,
        service_level="standard",
        shipped_at=WEDNESDAY,
        promised_by=promise,
    )
    assert choice.carrier == "mid"
    assert choice.cost == Decimal("4.20")
    assert choice.meets_promise is True
    assert choice.promised_by == promise
    assert choice.reason == (
        "standard: cheapest (4.20) of 2 carriers meeting the promise of 2026-12-01 "
        "among 3 carriers serving DE at 2 kg"
    )
    late = next(q for q in choice.candidates if q.carrier == "cheap_late")
    assert late.meets_promise is False


def test_standard_without_a_promise_uses_the_default_promise() -> None:
    carriers = [
        carrier("cheap_late", rates={"home": rate("2.00", "0", 5, 2)}),
        carrier("mid", rates={"home": rate("4.00", "0", 3, 1)}),
    ]

    def standard(**extra: int) -> CarrierChoice:
        return choose_carrier(
            carriers,
            country="DE",
            weight_kg=1.0,
            service_level="standard",
            shipped_at=WEDNESDAY,
            promised_by=None,
            **extra,
        )

    default = standard()
    assert default.carrier == "cheap_late"
    assert default.promised_by == add_business_days(WEDNESDAY, 5)
    tight = standard(default_promise_business_days=3)
    assert tight.carrier == "mid"


def test_standard_when_nobody_meets_the_promise_takes_the_fastest() -> None:
    carriers = [
        carrier("cheap", rates={"home": rate("2.00", "0", 6, 3)}, on_time=0.99),
        carrier("quicker", rates={"home": rate("5.00", "0", 4, 2)}, on_time=0.80),
    ]
    choice = choose_carrier(
        carriers,
        country="DE",
        weight_kg=1,
        service_level="standard",
        shipped_at=WEDNESDAY,
        promised_by=WEDNESDAY + timedelta(days=1),
    )
    assert choice.carrier == "quicker"
    assert choice.meets_promise is False
    assert choice.reason.startswith("standard: none meets the promise of 2026-11-26; fastest (4 ")


def test_standard_tie_on_cost_goes_to_the_better_on_time_record() -> None:
    carriers = [
        carrier("punctual", rates={"home": rate("4.00", "0", 3, 1)}, on_time=0.98),
        carrier("sloppy", rates={"home": rate("4.00", "0", 2, 1)}, on_time=0.85),
    ]
    choice = choose_carrier(
        carriers,
        country="DE",
        weight_kg=1,
        service_level="standard",
        shipped_at=WEDNESDAY,
        promised_by=None,
    )
    assert choice.carrier == "punctual"
    assert choice.reason.endswith("tie broken by on-time 98%")


def test_inactive_too_small_and_non_serving_carriers_are_never_chosen() -> None:
    carriers = [
        carrier("off", rates={"home": rate("0.50", "0", 1, 1)}, active=False),
        carrier("small", rates={"home": rate("1.00", "0", 1, 1)}, max_kg=5),
        carrier("elsewhere", zones={"FR": "home"}, rates={"home": rate("1.50", "0", 1, 1)}),
        carrier("ok", rates={"home": rate("9.00", "0", 3, 1)}),
    ]
    choice = choose_carrier(
        carriers,
        country="DE",
        weight_kg=6,
        service_level="express",
        shipped_at=WEDNESDAY,
        promised_by=None,
    )
    assert choice.carrier == "ok"
    assert [q.carrier for q in choice.candidates] == ["ok"]
    # Exactly at the limit is still accepted.
    assert quote(
        carriers[1], country="DE", weight_kg=5, service_level="express", shipped_at=WEDNESDAY
    )


def test_no_carrier_for_the_country_or_the_weight_is_a_clear_error() -> None:
    with pytest.raises(NoCarrierAvailable, match=r"to JP \(4 carriers considered\)") as err:
        choose_carrier(
            [c for c in DEMO_CARRIERS if c.code != "dhl" and c.code != "ups"]
            + [carrier("a"), carrier("b")],
            country="JP",
            weight_kg=1,
            service_level="standard",
            shipped_at=WEDNESDAY,
            promised_by=None,
        )
    assert err.value.country == "JP"
    with pytest.raises(NoCarrierAvailable, match="80 kg"):
        choose_carrier(
            DEMO_CARRIERS,
            country="DE",
            weight_kg=80,
            service_level="express",
            shipped_at=WEDNESDAY,
            promised_by=None,
        )
    with pytest.raises(ValueError, match="positive"):
        choose_carrier(
            DEMO_CARRIERS,
            country="DE",
            weight_kg=0,
            service_level="express",
            shipped_at=WEDNESDAY,
            promised_by=None,
        )


def test_demo_carriers_serve_germany_the_eu_and_the_world() -> None:
    assert {c.code for c in DEMO_CARRIERS} == {"dhl", "dpd", "ups", "gls"}
    for country, served_by in [
        ("DE", {"dhl", "dpd", "ups", "gls"}),
        ("IT", {"dhl", "dpd", "ups", "gls"}),
        ("US", {"dhl", "ups"}),
    ]:
        choice = choose_carrier(
            DEMO_CARRIERS,
            country=country,
            weight_kg=2,
            service_level="standard",
            shipped_at=WEDNESDAY,
            promised_by=None,
        )
        assert {q.carrier for q in choice.candidates} == served_by
    # 50 kg: only UPS takes it.
    heavy = choose_carrier(
        DEMO_CARRIERS,
        country="FR",
        weight_kg=50,
        service_level="standard",
        shipped_at=WEDNESDAY,
        promised_by=None,
    )
    assert heavy.carrier == "ups"


# --- properties over random carrier tables ---

COUNTRIES = ["DE", "FR", "IT", "US", "JP"]


@st.composite
def rates_(draw: st.DrawFn) -> CarrierRate:
    express = draw(st.integers(0, 6))
    return CarrierRate(
        base=Decimal(draw(st.integers(0, 5000))) / 100,
        per_kg=Decimal(draw(st.integers(0, 500))) / 100,
        standard_days=express + draw(st.integers(0, 6)),
        express_days=express,
    )


@st.composite
def carriers_(draw: st.DrawFn) -> list[Carrier]:
    count = draw(st.integers(1, 6))
    table = []
    for i in range(count):
        zone_names = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, unique=True))
        keys = draw(st.lists(st.sampled_from([*COUNTRIES[:4], "*"]), min_size=1, unique=True))
        table.append(
            Carrier(
                code=f"c{i}",
                name=f"Carrier {i}",
                max_weight_kg=draw(st.sampled_from([5.0, 10.0, 31.5, 70.0])),
                on_time_rate=draw(st.sampled_from([0.8, 0.9, 0.95, 1.0])),
                zones={key: draw(st.sampled_from(zone_names)) for key in keys},
                rates={name: draw(rates_()) for name in zone_names},
                active=draw(st.booleans()),
            )
        )
    return table


parcels = st.fixed_dictionaries(
    {
        "country": st.sampled_from(COUNTRIES),
        "weight_kg": st.floats(min_value=0.01, max_value=80, allow_nan=False),
        "shipped_at": st.datetimes(
            min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
        ),
        "promise_days": st.one_of(st.none(), st.integers(0, 10)),
    }
)


def acceptable(
    table: list[Carrier], parcel: dict, service_level: ServiceLevel
) -> list[CarrierQuote]:
    quotes = [
        quote(
            c,
            country=parcel["country"],
            weight_kg=parcel["weight_kg"],
            service_level=service_level,
            shipped_at=parcel["shipped_at"],
        )
        for c in table
    ]
    return [q for q in quotes if q is not None]


def promise_of(parcel: dict) -> datetime | None:
    if parcel["promise_days"] is None:
        return None
    return parcel["shipped_at"] + timedelta(days=parcel["promise_days"])


def choose(table: list[Carrier], parcel: dict, service_level: ServiceLevel) -> CarrierChoice:
    return choose_carrier(
        table,
        country=parcel["country"],
        weight_kg=parcel["weight_kg"],
        service_level=service_level,
        shipped_at=parcel["shipped_at"],
        promised_by=promise_of(parcel),
    )


@settings(max_examples=300, deadline=None)
@given(table=carriers_(), parcel=parcels, service_level=st.sampled_from(["standard", "express"]))
def test_property_the_chosen_carrier_can_take_the_parcel(
    table: list[Carrier], parcel: dict, service_level: ServiceLevel
) -> None:
    options = acceptable(table, parcel, service_level)
    if not options:
        with pytest.raises(NoCarrierAvailable):
            choose(table, parcel, service_level)
        return
    choice = choose(table, parcel, service_level)
    chosen = next(c for c in table if c.code == choice.carrier)
    assert chosen.active
    assert chosen.zone_for(parcel["country"]) == choice.zone
    assert parcel["weight_kg"] <= chosen.max_weight_kg
    assert {q.carrier for q in choice.candidates} == {q.carrier for q in options}
    # The table's order never changes the choice.
    assert choose(list(reversed(table)), parcel, service_level) == choice


@settings(max_examples=300, deadline=None)
@given(table=carriers_(), parcel=parcels)
def test_property_standard_is_never_dearer_than_another_carrier_meeting_the_promise(
    table: list[Carrier], parcel: dict
) -> None:
    options = acceptable(table, parcel, "standard")
    if not options:
        return
    choice = choose(table, parcel, "standard")
    assert choice.promised_by is not None
    meeting = [q for q in options if q.expected_delivery <= choice.promised_by]
    if meeting:
        assert choice.expected_delivery <= choice.promised_by
        assert all(choice.cost <= q.cost for q in meeting)
    else:
        assert all(choice.expected_delivery <= q.expected_delivery for q in options)


@settings(max_examples=300, deadline=None)
@given(table=carriers_(), parcel=parcels)
def test_property_express_is_never_slower_than_any_acceptable_carrier(
    table: list[Carrier], parcel: dict
) -> None:
    options = acceptable(table, parcel, "express")
    if not options:
        return
    choice = choose(table, parcel, "express")
    assert all(choice.transit_days <= q.transit_days for q in options)
    fastest = [q for q in options if q.transit_days == choice.transit_days]
    best_on_time = max(q.on_time_rate for q in fastest)
    assert next(q for q in options if q.carrier == choice.carrier).on_time_rate == best_on_time


@settings(max_examples=200, deadline=None)
@given(table=carriers_(), parcel=parcels, service_level=st.sampled_from(["standard", "express"]))
def test_property_a_parcel_heavier_than_every_carrier_takes_has_no_carrier(
    table: list[Carrier], parcel: dict, service_level: ServiceLevel
) -> None:
    too_heavy = {**parcel, "weight_kg": max(c.max_weight_kg for c in table) + 0.001}
    with pytest.raises(NoCarrierAvailable):
        choose(table, too_heavy, service_level)
