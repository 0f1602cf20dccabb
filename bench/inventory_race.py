"""A stampede on one SKU: N concurrent orders (default 1,000) for S units (default 100)
through the real order workflow, then the goods that were missing arrive.

    python -m bench.inventory_race -n 1000 --stock 100

One process, its own dev server and PostgreSQL (unless `TEMPORAL_ADDRESS` / `DATABASE_URL`
are set), the real worker, API and carrier simulator (`instant`), automatic warehouse. Every
order wants one unit. Prints how many orders got stock and how many were backordered, the
purchase request raised, the invariant check, and the times; then receives the shortfall
through `POST /purchasing/receipts` and reports whether the waiting orders were served in
the order they were placed and how long until all had completed. Last, one JSON line.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from activities.inventory import InventoryActivities
from bench.servers import Servers, embedded_servers, order_side, prepare
from db.pool import create_pool
from db.repositories import catalogue, inventory
from db.repositories import orders as order_rows
from orderflow.models import Address, Customer, Order, OrderItem, OrderPolicy, Payment
from orderflow.settings import Settings
from orderflow.temporal_client import connect_temporal
from stack.supervisor import free_port

UNIT_PRICE = Decimal("10.00")
# Start calls in flight at once: every order is running long before the first finishes.
PLACING_LANES = 100
# Connections racing in the direct (no workflow) phase.
DIRECT_CONNECTIONS = 40


class RaceReport(BaseModel):
    orders: int
    stock: int
    orders_with_stock: int
    units_reserved: int
    backordered: int
    other_statuses: dict[str, int]
    oversold: bool
    purchase_request_quantity: int | None
    invariant_violations: int
    leaks: int
    placing_seconds: float
    decided_seconds: float
    # First to last reservation decision (stock_reserved or backordered event): how long the
    # SKU's row was contended.
    decisions_seconds: float
    decisions_per_second: float
    load_average_at_start: float
    receipt_served: int
    served_in_placement_order: bool
    receipt_seconds: float
    all_completed_seconds: float
    completed: int
    final_on_hand: int
    final_invariant_violations: int
    final_leaks: int
    # The same race without Temporal: the reserve_stock activity called directly, all at once.
    direct_reserved: int
    direct_backordered: int
    direct_seconds: float
    direct_per_second: float


def race_order(run_id: str, index: int, sku: str) -> Order:
    key = f"{run_id}-{index}"
    customer_id = f"RC-{key}"
    address = Address(
        name=f"Race Customer {key}",
        line1=f"{index + 1} Stampede Road {run_id}",
        city="Berlin",
        postal_code="10115",
        country="DE",
    )
    return Order(
        order_id=f"RACE-{key}",
        channel="web",
        customer=Customer(
            id=customer_id, email=f"{customer_id.lower()}@bench.example", name=address.name
        ),
        items=[OrderItem(sku=sku, quantity=1, unit_price=UNIT_PRICE)],
        currency="EUR",
        shipping_address=address,
        payment=Payment(
            method="card", transaction_id=f"pay-{key}", amount=UNIT_PRICE, status="captured"
        ),
        placed_at=datetime.now(UTC),
    )


async def _statuses(pool: asyncpg.Pool, order_ids: list[str]) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM orders WHERE order_id = ANY($1::text[]) GROUP BY status",
        order_ids,
    )
    return {r["status"]: r["n"] for r in rows}


async def _wait_until(
    pool: asyncpg.Pool, order_ids: list[str], settled: set[str], timeout: float, console: Console
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        counts = await _statuses(pool, order_ids)
        done = sum(n for status, n in counts.items() if status in settled)
        if done != last:
            console.print(f"  {done}/{len(order_ids)} {'/'.join(sorted(settled))}")
            last = done
        if done == len(order_ids):
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"orders did not settle in {timeout:.0f} s: {counts}")
        await asyncio.sleep(0.5)


async def direct_race(
    settings: Settings, database_url: str, run_id: str, n: int, stock: int
) -> tuple[int, int, float]:
    """N reservations of one unit raced straight into PostgreSQL through the step-4 activity
    (many connections, no workflow): (reserved, backordered, seconds)."""
    sku = f"RACE-{run_id}-DIRECT".upper()
    pool = await create_pool(database_url, min_size=10, max_size=DIRECT_CONNECTIONS)
    try:
        orders = [race_order(f"{run_id}-d", i, sku) for i in range(n)]
        async with pool.acquire() as conn, conn.transaction():
            await catalogue.upsert_product(
                conn,
                sku=sku,
                name="Limited run (benchmark, direct)",
                unit_price=UNIT_PRICE,
                weight_kg=Decimal("0.500"),
                bin_location="Z-98-2",
            )
            await catalogue.ensure_stock(
                conn, sku=sku, on_hand=stock, reorder_point=0, order_up_to=0
            )
            for order in orders:
                assert order.placed_at is not None
                await order_rows.insert_order(
                    conn,
                    order,
                    workflow_id=f"order-{order.order_id}",
                    placed_at=order.placed_at,
                    status="APPROVED",
                )
        activities = InventoryActivities(pool, settings)
        # Open every connection first, so the race measures reservations, not connects.
        held = [await pool.acquire() for _ in range(DIRECT_CONNECTIONS)]
        for conn in held:
            await pool.release(conn)
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(activities.reserve_stock(o) for o in orders))
        seconds = time.perf_counter() - started
        reserved = sum(1 for o in outcomes if o.reserved)
        return reserved, n - reserved, seconds
    finally:
        await pool.close()


async def run_race(
    settings: Settings, database_url: str, address: str, n: int, stock: int, console: Console
) -> RaceReport:
    run_id = uuid.uuid4().hex[:8]
    sku = f"RACE-{run_id}".upper()
    load_at_start = round(os.getloadavg()[0], 2)
    console.print(f"direct race: {n} reservations for {stock} units …")
    direct = await direct_race(settings, database_url, run_id, n, stock)
    api_port, sim_port = free_port(), free_port()
    settings = settings.model_copy(
        update={
            "database_url": database_url,
            "temporal_address": address,
            "task_queue": f"bench-race-{run_id}",
            "api_port": api_port,
            "carrier_api_url": f"http://127.0.0.1:{sim_port}",
            "carrier_simulator_port": sim_port,
            "carrier_webhook_base_url": f"http://127.0.0.1:{api_port}",
            "carrier_simulator_mode": "instant",
            "order_policy": OrderPolicy.instant(),
        }
    )
    client = await connect_temporal(settings, address)
    load_client = await connect_temporal(settings, address)
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await catalogue.upsert_product(
                conn,
                sku=sku,
                name="Limited run (benchmark)",
                unit_price=UNIT_PRICE,
                weight_kg=Decimal("0.500"),
                bin_location="Z-98-1",
            )
            await catalogue.ensure_stock(
                conn, sku=sku, on_hand=stock, reorder_point=0, order_up_to=0
            )
        orders = [race_order(run_id, i, sku) for i in range(n)]
        order_ids = [o.order_id for o in orders]

        async with order_side(settings, client, load_client) as side:
            console.print(f"placing {n} orders for {stock} units of {sku} …")
            started = time.perf_counter()
            queue = iter(orders)

            async def lane() -> None:
                for order in queue:
                    await side.storefront.place_order(order)

            async with asyncio.TaskGroup() as group:
                for _ in range(PLACING_LANES):
                    group.create_task(lane())
            placing = time.perf_counter() - started
            counts = await _wait_until(pool, order_ids, {"COMPLETED", "BACKORDERED"}, 600, console)
            decided = time.perf_counter() - started

            held = await pool.fetchrow(
                """SELECT count(DISTINCT order_id) AS orders, coalesce(sum(quantity), 0) AS units
                   FROM reservations WHERE sku = $1 AND status IN ('held', 'consumed')""",
                sku,
            )
            (level,) = await inventory.stock_levels(pool, sku)
            violations = await inventory.invariant_violations(pool)
            leaked = await inventory.leaks(pool)
            backordered = counts.get("BACKORDERED", 0)
            window = await pool.fetchrow(
                """SELECT count(*) AS n, extract(epoch FROM max(occurred_at) - min(occurred_at))
                          AS seconds
                   FROM order_events WHERE order_id = ANY($1::text[])
                     AND kind IN ('stock_reserved', 'backordered')""",
                order_ids,
            )
            decisions_seconds = float(window["seconds"] or 0.0)
            request_quantity = level["open_request_quantity"]

            # The missing goods arrive: the waiting orders, served oldest first.
            waiting = await pool.fetch(
                """SELECT order_id FROM backorders WHERE sku = $1 AND status = 'waiting'
                   ORDER BY received_at, order_id""",
                sku,
            )
            receipt_started = time.perf_counter()
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}", timeout=900
            ) as api:
                response = await api.post(
                    "/purchasing/receipts",
                    json={"sku": sku, "quantity": max(backordered, 1)},
                    headers={
                        "Authorization": f"Bearer {settings.token_for('purchasing')}",
                        "Idempotency-Key": f"race-{sku}",
                    },
                )
                response.raise_for_status()
            served = response.json()["served_orders"]
            receipt_seconds = time.perf_counter() - receipt_started
            final = await _wait_until(pool, order_ids, {"COMPLETED"}, 900, console)
            all_completed = time.perf_counter() - receipt_started
            (after,) = await inventory.stock_levels(pool, sku)
            return RaceReport(
                orders=n,
                stock=stock,
                orders_with_stock=held["orders"],
                units_reserved=held["units"],
                backordered=backordered,
                other_statuses={
                    s: c for s, c in counts.items() if s not in ("COMPLETED", "BACKORDERED")
                },
                oversold=held["units"] > stock,
                purchase_request_quantity=request_quantity,
                invariant_violations=len(violations),
                leaks=len(leaked),
                placing_seconds=round(placing, 2),
                decided_seconds=round(decided, 2),
                decisions_seconds=round(decisions_seconds, 2),
                decisions_per_second=round(window["n"] / decisions_seconds, 1)
                if decisions_seconds
                else 0.0,
                load_average_at_start=load_at_start,
                receipt_served=len(served),
                served_in_placement_order=served == [r["order_id"] for r in waiting],
                receipt_seconds=round(receipt_seconds, 2),
                all_completed_seconds=round(all_completed, 2),
                completed=final.get("COMPLETED", 0),
                final_on_hand=after["on_hand"],
                final_invariant_violations=len(await inventory.invariant_violations(pool)),
                final_leaks=len(await inventory.leaks(pool)),
                direct_reserved=direct[0],
                direct_backordered=direct[1],
                direct_seconds=round(direct[2], 2),
                direct_per_second=round(n / direct[2], 1),
            )
    finally:
        await pool.close()


def render(r: RaceReport) -> Table:
    table = Table(title=f"inventory race: {r.orders} concurrent orders, {r.stock} units")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("orders that got stock", f"{r.orders_with_stock} ({r.units_reserved} units)"),
        ("orders backordered", str(r.backordered)),
        ("oversold", "yes" if r.oversold else "no"),
        ("open purchase request", str(r.purchase_request_quantity)),
        (
            "invariant check",
            "holds"
            if r.invariant_violations == 0 and r.leaks == 0
            else f"{r.invariant_violations} violations, {r.leaks} leaks",
        ),
        ("placing all orders", f"{r.placing_seconds:.1f} s"),
        ("until every order was COMPLETED or BACKORDERED", f"{r.decided_seconds:.1f} s"),
        (
            "first to last reservation decision",
            f"{r.decisions_seconds:.1f} s ({r.decisions_per_second:.1f}/s)",
        ),
        ("load average at start (1 min)", f"{r.load_average_at_start:.2f}"),
        ("receipt served", f"{r.receipt_served} orders"),
        ("served in placement order", "yes" if r.served_in_placement_order else "NO"),
        ("receipt request (serve + signal)", f"{r.receipt_seconds:.1f} s"),
        ("receipt until all COMPLETED", f"{r.all_completed_seconds:.1f} s"),
        ("completed in the end", str(r.completed)),
        ("final on hand", str(r.final_on_hand)),
        (
            "final invariant check",
            "holds"
            if r.final_invariant_violations == 0 and r.final_leaks == 0
            else f"{r.final_invariant_violations} violations, {r.final_leaks} leaks",
        ),
    ]
    rows.append(
        (
            "direct (no workflow): reserved / backordered",
            f"{r.direct_reserved} / {r.direct_backordered}",
        )
    )
    rows.append(
        (
            "direct (no workflow): time",
            f"{r.direct_seconds:.2f} s ({r.direct_per_second:.0f} reservations/s)",
        )
    )
    for name, value in rows:
        table.add_row(name, value)
    return table


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    orders: int = typer.Option(1000, "-n", "--orders", min=1, help="Concurrent orders."),
    stock: int = typer.Option(100, "--stock", min=0, help="Units on hand at the start."),
) -> None:
    """Run the race, print a table, then one JSON line with every figure."""
    settings = Settings()
    progress = Console(stderr=True)

    async def go(servers: Servers) -> RaceReport:
        await prepare(settings, servers)  # migrations, catalogue, search attributes
        return await run_race(
            settings, servers.database_url, servers.temporal_address, orders, stock, progress
        )

    with embedded_servers(settings) as servers:
        progress.print(
            f"servers: Temporal {servers.temporal_address}, PostgreSQL {servers.database_url}"
        )
        result = asyncio.run(go(servers))
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)
    out.print(render(result))
    print(result.model_dump_json(), flush=True)


if __name__ == "__main__":
    app()
