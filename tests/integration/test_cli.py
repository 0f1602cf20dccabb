"""The operator's command line against the real API: place, status, review list/approve."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from app.cli import app
from orderflow.models import OrderPolicy
from orderflow.settings import get_settings
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_place_status_and_review_from_the_command_line(
    stack: Stack, cli: CliRunner, tmp_path: Path
) -> None:
    body = order_json(payment_status="failed")
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(body))

    placed = await asyncio.to_thread(cli.invoke, app, ["place", str(order_file)])
    assert placed.exit_code == 0, placed.output
    assert body["order_id"] in placed.output
    await wait_for_status(stack.pool, body["order_id"], "PENDING_REVIEW")

    # Flagged orders are findable in Temporal visibility, as the Web UI filters them.
    # (Visibility is eventually consistent: give the upsert a moment to be indexed.)
    query = f"Flagged = true AND WorkflowId = 'order-{body['order_id']}'"
    for _ in range(50):
        flagged = [w.id async for w in stack.client.list_workflows(query)]
        if flagged:
            break
        await asyncio.sleep(0.1)
    assert flagged == [f"order-{body['order_id']}"]

    listed = await asyncio.to_thread(cli.invoke, app, ["review", "list"])
    assert listed.exit_code == 0, listed.output
    assert body["order_id"] in listed.output

    refused = await asyncio.to_thread(
        cli.invoke, app, ["review", "reject", body["order_id"], "--note", ""]
    )
    assert refused.exit_code == 1
    assert "422" in refused.output

    approved = await asyncio.to_thread(
        cli.invoke, app, ["review", "approve", body["order_id"], "--note", "known customer"]
    )
    assert approved.exit_code == 0, approved.output
    await wait_for_status(stack.pool, body["order_id"], "COMPLETED")

    status = await asyncio.to_thread(cli.invoke, app, ["status", body["order_id"]])
    assert status.exit_code == 0, status.output
    assert f"order {body['order_id']}: COMPLETED" in status.output
    assert "review" in status.output and "APPROVED" in status.output

    again = await asyncio.to_thread(cli.invoke, app, ["review", "approve", body["order_id"]])
    assert again.exit_code == 1 and "409" in again.output


def test_an_unreachable_api_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERFLOW_API_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["review", "list"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "cannot reach the API" in result.output
