"""Orders for the benchmark: every one takes the fully automatic path.

Captured payments, one customer, e-mail, address and payment per order, and the same
basket value everywhere, so no risk signal fires and nothing waits for a reviewer. The
benchmark's own SKUs all cost the same and are spread over several inventory rows, and
their stock is topped up through goods-in before a run, so no order is backordered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from db.repositories import catalogue, inventory
from orderflow.models import Address, Customer, Order, OrderItem, Payment

BENCH_SKUS = tuple(f"BENCH-ITEM-{n}" for n in range(1, 9))
UNIT_PRICE = Decimal("10.00")
# Left over on every SKU after a run, so a slow or repeated run never runs short.
STOCK_MARGIN = 100


def sku_for(index: int) -> str:
    return BENCH_SKUS[index % len(BENCH_SKUS)]


def bench_order(run_id: str, index: int, *, placed_at: datetime | None = None) -> Order:
    """Order number `index` of run `run_id`: one unit of one benchmark SKU."""
    key = f"{run_id}-{index}"
    customer_id = f"BC-{key}"
    address = Address(
        name=f"Bench Customer {key}",
        line1=f"{index + 1} Benchmark Street {run_id}",
        city="Berlin",
        postal_code="10115",
        country="DE",
    )
    return Order(
        order_id=f"BENCH-{key}",
        channel="web",
        customer=Customer(
            id=customer_id, email=f"{customer_id.lower()}@bench.example", name=address.name
        ),
        items=[OrderItem(sku=sku_for(index), quantity=1, unit_price=UNIT_PRICE)],
        currency="EUR",
        shipping_address=address,
        payment=Payment(
            method="card", transaction_id=f"pay-{key}", amount=UNIT_PRICE, status="captured"
        ),
        placed_at=placed_at or datetime.now(UTC),
    )


async def provision_stock(pool: asyncpg.Pool, orders: int, run_id: str) -> None:
    """Create the benchmark SKUs and receive enough stock for `orders` more orders."""
    per_sku = -(-orders // len(BENCH_SKUS)) + STOCK_MARGIN
    async with pool.acquire() as conn, conn.transaction():
        for n, sku in enumerate(BENCH_SKUS):
            await catalogue.upsert_product(
                conn,
                sku=sku,
                name=f"Benchmark item {n + 1}",
                unit_price=UNIT_PRICE,
                weight_kg=Decimal("0.500"),
                bin_location=f"Z-99-{n + 1}",
            )
            await catalogue.ensure_stock(conn, sku=sku, on_hand=0, reorder_point=0, order_up_to=0)
            (level,) = await inventory.stock_levels(conn, sku)
            missing = per_sku - int(level["available"])
            if missing > 0:
                await inventory.receive_stock(
                    conn,
                    sku=sku,
                    quantity=missing,
                    receipt_key=f"bench-{run_id}-{sku}",
                    received_by="bench",
                )
