"""Orders that people watch while they run still replay: on the real dev server, a query
that lands while a step's local activity runs leaves a history the workflow replays
unchanged (no workflow task of the query's own, no patch call that moves on replay)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from orderflow.models import Order, OrderPolicy
from tests.helpers import order_json
from tests.servers import Stack, running_stack
from workers.order_worker import SANDBOX
from workflows.order import OrderWorkflow

pytestmark = pytest.mark.integration

ORDERS = 8


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


async def _watch(stack: Stack, order_id: str) -> int:
    """Query the order as fast as a busy operator page would, until it ends."""
    handle = stack.storefront.handle(order_id)
    queries = 0
    while True:
        try:
            await handle.query(OrderWorkflow.view)
            queries += 1
        except RPCError:
            pass
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return queries


async def test_orders_queried_while_they_run_replay_unchanged(stack: Stack) -> None:
    orders = [Order.model_validate(order_json()) for _ in range(ORDERS)]
    for order in orders:
        await stack.storefront.place_order(order)
    queries = await asyncio.wait_for(
        asyncio.gather(*(_watch(stack, o.order_id) for o in orders)), timeout=120
    )
    assert sum(queries) > ORDERS
    replayer = Replayer(
        workflows=[OrderWorkflow],
        data_converter=stack.client.data_converter,
        workflow_runner=SANDBOX,
    )
    for order in orders:
        history = await stack.storefront.handle(order.order_id).fetch_history()
        await replayer.replay_workflow(history)
