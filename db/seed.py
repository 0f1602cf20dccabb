"""The demo catalogue: products with stock, departments with their leads, and carriers.

Seeding is idempotent and never overwrites stock that exists, so a second `orderflow up`
keeps what the first one sold.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from db.repositories import catalogue
from orderflow.demo_carriers import DEMO_CARRIERS

# sku, name, price, weight kg, bin, pre-sale, on hand, reorder point, order-up-to
DEMO_PRODUCTS: tuple[tuple[str, str, str, str, str, bool, int, int, int], ...] = (
    ("SKU-RED-MUG", "Red ceramic mug", "12.50", "0.350", "A-01-1", False, 500, 50, 400),
    ("SKU-BLUE-MUG", "Blue ceramic mug", "12.50", "0.350", "A-01-2", False, 500, 50, 400),
    ("SKU-TEA-TIN", "Loose-leaf tea tin", "8.90", "0.150", "A-02-1", False, 800, 80, 600),
    ("SKU-COFFEE-1KG", "Coffee beans 1 kg", "24.00", "1.050", "B-01-1", False, 400, 40, 300),
    ("SKU-FRENCH-PRESS", "French press 1 l", "39.00", "0.900", "B-02-3", False, 150, 20, 120),
    ("SKU-KETTLE", "Electric kettle", "59.00", "1.300", "C-01-1", False, 120, 15, 100),
    ("SKU-GRINDER", "Burr coffee grinder", "129.00", "2.200", "C-02-2", False, 60, 8, 50),
    ("SKU-TEAPOT", "Cast-iron teapot", "45.00", "1.600", "C-03-1", False, 80, 10, 60),
    ("SKU-ESPRESSO-PRO", "Espresso machine Pro", "899.00", "11.500", "D-01-1", False, 20, 3, 15),
    (
        "SKU-LIMITED-KETTLE",
        "Limited edition kettle (pre-order)",
        "149.00",
        "1.400",
        "D-02-1",
        True,
        0,
        0,
        0,
    ),
)

# code, name, lead e-mail
DEPARTMENTS: tuple[tuple[str, str, str], ...] = (
    ("risk", "Risk team", "risk-lead@shop.example"),
    ("risk_supervisor", "Risk supervisor", "risk-supervisor@shop.example"),
    ("warehouse", "Warehouse", "warehouse-lead@shop.example"),
    ("purchasing", "Purchasing", "purchasing-lead@shop.example"),
    ("logistics", "Logistics", "logistics-lead@shop.example"),
    ("logistics_supervisor", "Logistics supervisor", "logistics-supervisor@shop.example"),
    ("quality", "Quality", "quality-lead@shop.example"),
    ("finance", "Finance", "finance-lead@shop.example"),
    ("customer_service", "Customer service", "service-lead@shop.example"),
    ("sales", "Sales (wholesale)", "sales-lead@shop.example"),
)


async def seed_demo_catalogue(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        for sku, name, price, weight, bin_, pre_sale, on_hand, rop, out in DEMO_PRODUCTS:
            await catalogue.upsert_product(
                conn,
                sku=sku,
                name=name,
                unit_price=Decimal(price),
                weight_kg=Decimal(weight),
                bin_location=bin_,
                pre_sale=pre_sale,
            )
            await catalogue.ensure_stock(
                conn, sku=sku, on_hand=on_hand, reorder_point=rop, order_up_to=out
            )
        for code, name, email in DEPARTMENTS:
            await catalogue.upsert_department(conn, code, name, email)
        for carrier in DEMO_CARRIERS:
            await catalogue.upsert_carrier(
                conn,
                code=carrier.code,
                name=carrier.name,
                max_weight_kg=carrier.max_weight_kg,
                on_time_rate=carrier.on_time_rate,
                zones=dict(carrier.zones),
                rates={zone: rate.model_dump(mode="json") for zone, rate in carrier.rates.items()},
                active=carrier.active,
            )
