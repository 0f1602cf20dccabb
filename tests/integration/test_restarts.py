"""PostgreSQL and the Temporal server restarted while orders are in flight: every order
still completes, with exactly one reservation, one confirmation e-mail and one shipment."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from orderflow.models import Order, OrderPolicy
from stack.postgres import EmbeddedPostgres
from stack.supervisor import free_port, free_ports
from stack.temporal import TemporalDevServer
from tests.helpers import CONVERTER, order_json, wait_for_status
from tests.servers import prepare, running_stack

pytestmark = pytest.mark.integration

ORDERS = 8
POLICY = OrderPolicy.instant().model_copy(
    update={"auto_pick_delay": timedelta(seconds=3), "auto_pack_delay": timedelta(seconds=1)}
)


async def test_orders_survive_database_and_temporal_restarts(tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path / "pgdata", free_port())
    grpc, ui = free_ports(2)
    temporal = TemporalDevServer(tmp_path / "temporal.db", grpc_port=grpc, ui_port=ui, ui=False)
    await asyncio.to_thread(postgres.start)
    await asyncio.to_thread(temporal.start)
    try:
        await prepare(postgres.url)
        client = await temporal.connect(data_converter=CONVERTER)
        env = SimpleNamespace(client=client)  # what running_stack uses of an environment
        async with running_stack(env, postgres.url, policy=POLICY) as stack:  # type: ignore[arg-type]
            orders = [Order.model_validate(order_json()) for _ in range(ORDERS)]
            for order in orders:
                await stack.storefront.place_order(order)
            await wait_for_status(stack.pool, orders[-1].order_id, "PICKING", timeout=60)

            in_flight = await stack.pool.fetchval(
                "SELECT count(*) FROM orders WHERE order_id = ANY($1::text[]) AND status <> 'COMPLETED'",
                [o.order_id for o in orders],
            )
            assert in_flight == ORDERS, "the servers must restart with every order in flight"
            await asyncio.to_thread(postgres.restart)
            await asyncio.sleep(1)
            await asyncio.to_thread(temporal.restart)

            for order in orders:
                await wait_for_status(stack.pool, order.order_id, "COMPLETED", timeout=180)
            ids = [o.order_id for o in orders]
            rows = await stack.pool.fetch(
                """SELECT o.order_id,
                          (SELECT count(*) FROM notifications n WHERE n.order_id = o.order_id
                             AND n.kind = 'order_confirmation') AS confirmations,
                          (SELECT count(*) FROM shipments s WHERE s.order_id = o.order_id) AS shipments,
                          (SELECT count(*) FROM reservations r WHERE r.order_id = o.order_id) AS reservations,
                          (SELECT count(*) FROM order_events e WHERE e.order_id = o.order_id
                             AND e.status = 'COMPLETED') AS completions
                   FROM orders o WHERE o.order_id = ANY($1::text[])""",
                ids,
            )
            assert len(rows) == ORDERS
            for row in rows:
                counts = (
                    row["confirmations"],
                    row["shipments"],
                    row["reservations"],
                    row["completions"],
                )
                assert counts == (1, 1, 1, 1), dict(row)
    finally:
        await asyncio.to_thread(temporal.stop)
        await asyncio.to_thread(postgres.stop)
