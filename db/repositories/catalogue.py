"""Products, departments and carriers: the shop's reference data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg


async def products_by_sku(
    conn: asyncpg.Connection | asyncpg.Pool, skus: Sequence[str]
) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        """SELECT sku, name, unit_price, currency, weight_kg, bin_location, pre_sale, active
           FROM products WHERE sku = ANY($1::text[])""",
        list(skus),
    )
    return {r["sku"]: r for r in rows}


async def upsert_product(
    conn: asyncpg.Connection,
    *,
    sku: str,
    name: str,
    unit_price: Decimal,
    weight_kg: Decimal,
    bin_location: str,
    pre_sale: bool = False,
    currency: str = "EUR",
) -> None:
    await conn.execute(
        """INSERT INTO products (sku, name, unit_price, currency, weight_kg, bin_location, pre_sale)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, unit_price = EXCLUDED.unit_price,
               currency = EXCLUDED.currency, weight_kg = EXCLUDED.weight_kg,
               bin_location = EXCLUDED.bin_location, pre_sale = EXCLUDED.pre_sale""",
        sku,
        name,
        unit_price,
        currency,
        weight_kg,
        bin_location,
        pre_sale,
    )


async def ensure_stock(
    conn: asyncpg.Connection, *, sku: str, on_hand: int, reorder_point: int, order_up_to: int
) -> None:
    """Create a SKU's stock row if it has none; existing stock is never overwritten."""
    await conn.execute(
        """INSERT INTO inventory (sku, on_hand, reorder_point, order_up_to)
           VALUES ($1, $2, $3, $4) ON CONFLICT (sku) DO NOTHING""",
        sku,
        on_hand,
        reorder_point,
        order_up_to,
    )


async def upsert_department(
    conn: asyncpg.Connection, code: str, name: str, lead_email: str
) -> None:
    await conn.execute(
        """INSERT INTO departments (code, name, lead_email) VALUES ($1, $2, $3)
           ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, lead_email = EXCLUDED.lead_email""",
        code,
        name,
        lead_email,
    )


async def upsert_carrier(
    conn: asyncpg.Connection,
    *,
    code: str,
    name: str,
    max_weight_kg: float,
    on_time_rate: float,
    zones: dict[str, str],
    rates: dict[str, Any],
    active: bool,
) -> None:
    await conn.execute(
        """INSERT INTO carriers (code, name, max_weight_kg, on_time_rate, zones, rates, active)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name,
               max_weight_kg = EXCLUDED.max_weight_kg, on_time_rate = EXCLUDED.on_time_rate,
               zones = EXCLUDED.zones, rates = EXCLUDED.rates, active = EXCLUDED.active""",
        code,
        name,
        max_weight_kg,
        on_time_rate,
        zones,
        rates,
        active,
    )


async def carriers(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT code, name, max_weight_kg, on_time_rate, zones, rates, active FROM carriers"
    )


async def parcel_weight(conn: asyncpg.Connection, lines: Iterable[tuple[str, int]]) -> Decimal:
    """Weight of the goods of an order, from the catalogue (packaging is added by the caller)."""
    pairs = list(lines)
    weight: Decimal | None = await conn.fetchval(
        """SELECT sum(p.weight_kg * l.qty)
           FROM unnest($1::text[], $2::int[]) AS l(sku, qty) JOIN products p ON p.sku = l.sku""",
        [s for s, _ in pairs],
        [q for _, q in pairs],
    )
    return weight or Decimal("0")
