"""The demo carriers table: four parcel carriers a German web shop typically works with.

Prices (EUR, before VAT) and transit times are of the order a small shop gets in 2026;
they seed the `carriers` table of the embedded stack and the carrier simulator.
"""

from __future__ import annotations

from decimal import Decimal

from orderflow.models.carrier import Carrier, CarrierRate

# The shop ships from Germany: neighbours are one zone, the rest of the EU another.
EU_NEAR = ("AT", "BE", "CH", "CZ", "DK", "FR", "LU", "NL", "PL")
EU_FAR = (
    "BG", "CY", "EE", "ES", "FI", "GR", "HR", "HU", "IE", "IT", "LT", "LV", "MT", "PT", "RO",
    "SE", "SI", "SK",
)  # fmt: skip


def _zones(*, world: bool, near_zone: str = "eu_near", far_zone: str = "eu_far") -> dict[str, str]:
    zones = {"DE": "domestic"}
    zones.update({country: near_zone for country in EU_NEAR})
    zones.update({country: far_zone for country in EU_FAR})
    if world:
        zones["*"] = "world"
    return zones


def _rate(base: str, per_kg: str, standard_days: int, express_days: int) -> CarrierRate:
    return CarrierRate(
        base=Decimal(base),
        per_kg=Decimal(per_kg),
        standard_days=standard_days,
        express_days=express_days,
    )


DEMO_CARRIERS: list[Carrier] = [
    Carrier(
        code="dhl",
        name="DHL Paket",
        max_weight_kg=31.5,
        on_time_rate=0.94,
        zones=_zones(world=True),
        rates={
            "domestic": _rate("4.49", "0.10", 2, 1),
            "eu_near": _rate("13.99", "0.45", 4, 2),
            "eu_far": _rate("15.99", "0.55", 5, 3),
            "world": _rate("34.99", "2.40", 8, 4),
        },
    ),
    Carrier(
        code="dpd",
        name="DPD Classic",
        max_weight_kg=31.5,
        on_time_rate=0.96,
        # No deliveries outside the EU and its neighbours.
        zones=_zones(world=False),
        rates={
            "domestic": _rate("4.95", "0.12", 1, 1),
            "eu_near": _rate("9.90", "0.40", 3, 2),
            "eu_far": _rate("12.50", "0.50", 4, 3),
        },
    ),
    Carrier(
        code="ups",
        name="UPS Standard / Express Saver",
        max_weight_kg=70.0,
        on_time_rate=0.97,
        # UPS prices the whole EU alike.
        zones=_zones(world=True, near_zone="eu", far_zone="eu"),
        rates={
            "domestic": _rate("7.50", "0.30", 2, 1),
            "eu": _rate("16.00", "0.90", 3, 1),
            "world": _rate("39.00", "3.00", 6, 2),
        },
    ),
    Carrier(
        code="gls",
        name="GLS BusinessParcel",
        max_weight_kg=40.0,
        on_time_rate=0.92,
        zones=_zones(world=False),
        rates={
            "domestic": _rate("3.99", "0.10", 2, 1),
            "eu_near": _rate("8.50", "0.35", 3, 2),
            "eu_far": _rate("11.00", "0.45", 5, 3),
        },
    ),
]
