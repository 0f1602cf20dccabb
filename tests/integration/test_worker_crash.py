"""A worker process killed (SIGKILL) while orders are in flight, then started again: every
order still completes, and no effect happens twice."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import Order, OrderPolicy
from stack.supervisor import ManagedProcess
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

ORDERS = 12
# Waits inside the warehouse step keep the orders in flight when the worker dies.
POLICY = OrderPolicy.instant().model_copy(
    update={"auto_pick_delay": timedelta(seconds=2), "auto_pack_delay": timedelta(seconds=1)}
)


@pytest.fixture
async def stack_without_worker(
    temporal_env: WorkflowEnvironment, database_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=POLICY, with_worker=False) as stack:
        yield stack


def _worker_process(stack: Stack, log_dir: Path) -> ManagedProcess:
    s = stack.settings
    env = {
        "DATABASE_URL": stack.database_url,
        "TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "ORDERFLOW_TASK_QUEUE": s.task_queue,
        "ORDERFLOW_CARRIER_API_URL": s.carrier_api_url,
        "ORDERFLOW_CARRIER_WEBHOOK_BASE_URL": s.carrier_webhook_base_url,
        "ORDERFLOW_OUTBOX_INTERVAL_SECONDS": "0.2",
        # The same risk configuration as the test stack's own worker.
        "ORDERFLOW_RISK_FLAG_THRESHOLD": str(s.risk_flag_threshold),
    }
    return ManagedProcess(
        "worker", [sys.executable, "-m", "app.cli", "worker"], log_dir / "worker.log", env
    )


async def test_killed_worker_loses_no_order_and_repeats_no_effect(
    stack_without_worker: Stack, tmp_path: Path
) -> None:
    stack = stack_without_worker
    orders = [
        Order.model_validate(order_json(items=[("SKU-TEA-TIN", 1), ("SKU-TEAPOT", 1)]))
        for _ in range(ORDERS)
    ]
    worker = _worker_process(stack, tmp_path)
    worker.start()
    try:
        for order in orders:
            await stack.storefront.place_order(order)
        # Wait until the worker is mid-way: some orders picking, none finished yet.
        await wait_for_status(stack.pool, orders[0].order_id, "PICKING", timeout=60)
        worker.kill()
        in_flight = await stack.pool.fetchval(
            "SELECT count(*) FROM orders WHERE order_id = ANY($1::text[]) AND status <> 'COMPLETED'",
            [o.order_id for o in orders],
        )
        assert in_flight > 0, "the worker must die with orders still in flight"
        await asyncio.sleep(1)
        worker.start()
        for order in orders:
            await wait_for_status(stack.pool, order.order_id, "COMPLETED", timeout=120)
    finally:
        worker.stop()

    ids = [o.order_id for o in orders]
    per_order = await stack.pool.fetch(
        """SELECT o.order_id,
                  (SELECT count(*) FROM notifications n
                   WHERE n.order_id = o.order_id AND n.kind = 'order_confirmation') AS confirmations,
                  (SELECT count(*) FROM notifications n
                   WHERE n.order_id = o.order_id AND n.kind = 'shipping_confirmation') AS shipping_mails,
                  (SELECT count(*) FROM shipments s WHERE s.order_id = o.order_id) AS shipments,
                  (SELECT count(*) FROM reservations r
                   WHERE r.order_id = o.order_id AND r.status = 'consumed') AS consumed_lines,
                  (SELECT count(*) FROM order_events e
                   WHERE e.order_id = o.order_id AND e.status = 'RESERVED') AS reserved_events
           FROM orders o WHERE o.order_id = ANY($1::text[])""",
        ids,
    )
    assert len(per_order) == ORDERS
    for row in per_order:
        assert (row["confirmations"], row["shipping_mails"], row["shipments"]) == (1, 1, 1), dict(
            row
        )
        assert row["consumed_lines"] == 2 and row["reserved_events"] == 1, dict(row)
    # Stock moved exactly once per order: nothing is still held for these orders.
    held = await stack.pool.fetchval(
        "SELECT count(*) FROM reservations WHERE order_id = ANY($1::text[]) AND status = 'held'",
        ids,
    )
    assert held == 0
    # Every booking at the carrier belongs to exactly one order (idempotency key).
    tracking_numbers = await stack.pool.fetchval(
        "SELECT count(DISTINCT tracking_number) FROM shipments WHERE order_id = ANY($1::text[])",
        ids,
    )
    assert tracking_numbers == ORDERS
