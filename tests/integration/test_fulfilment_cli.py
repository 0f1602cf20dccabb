"""Warehouse staff and logistics on the command line against the real API: the pick list,
picked and packed, a carrier event posted signed, and a lost parcel resolved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from app.cli import app
from orderflow.models import OrderPolicy
from orderflow.settings import get_settings
from tests.helpers import wait_for_status
from tests.integration.fulfilment_support import (
    add_product,
    carrier_control,
    place,
    wait_awaiting,
)
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

MANUAL = OrderPolicy.instant(auto_warehouse=False)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=MANUAL) as running:
        await carrier_control(running, mode="normal", event_interval_seconds=3600)
        yield running


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def _run(cli: CliRunner, *args: str) -> Result:
    # The API serves on this event loop: the (blocking) command runs in a thread.
    return await asyncio.to_thread(cli.invoke, app, list(args))


async def test_warehouse_and_logistics_from_the_command_line(stack: Stack, cli: CliRunner) -> None:
    sku = await add_product(stack, bin_location="C-09-9")
    order, _ = await place(stack, MANUAL, [(sku, 2)])
    order_id = order.order_id
    await wait_awaiting(stack, order_id, "picked")

    listed = await _run(cli, "warehouse", "list")
    assert listed.exit_code == 0, listed.output
    assert order_id in listed.output and "C-09-9" in listed.output
    early = await _run(cli, "warehouse", "packed", order_id, "--weight-kg", "1.1")
    assert early.exit_code == 1 and "409" in early.output
    assert (await _run(cli, "warehouse", "picked", order_id)).exit_code == 0
    await wait_awaiting(stack, order_id, "packed")
    packed = await _run(cli, "warehouse", "packed", order_id, "--weight-kg", "1.1")
    assert packed.exit_code == 0, packed.output

    view = await wait_awaiting(stack, order_id, "delivery")
    assert view.carrier and view.tracking_number
    posted = await _run(cli, "track", "post", view.carrier, view.tracking_number, "LOST")
    assert posted.exit_code == 0, posted.output
    assert '"applied"' in posted.output
    await wait_awaiting(stack, order_id, "lost_parcel_resolution")

    lost = await _run(cli, "track", "lost")
    assert lost.exit_code == 0 and order_id in lost.output
    shown = await _run(cli, "track", "show", order_id)
    assert shown.exit_code == 0 and "parcel_lost" in shown.output

    bad = await _run(cli, "track", "resolve", order_id, "burn")
    assert bad.exit_code != 0
    refunded = await _run(
        cli, "track", "resolve", order_id, "refund", "--note", "customer wants money"
    )
    assert refunded.exit_code == 0, refunded.output
    assert "CANCELLED" in refunded.output
    await wait_for_status(stack.pool, order_id, "CANCELLED")
    again = await _run(cli, "track", "resolve", order_id, "reship")
    assert again.exit_code == 1 and "409" in again.output
