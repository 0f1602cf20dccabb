"""`orderflow returns` against the real API: a return requested, listed, shown, inspected and
refunded from the command line; customer service's decision; refusals printed on one line
with a non-zero exit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from app.cli import app
from app.commands import returns as returns_command
from orderflow.models import OrderPolicy
from orderflow.settings import get_settings
from tests.helpers import order_json, wait_for_status
from tests.integration.fulfilment_support import wait_until
from tests.integration.inventory_support import new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

UNREACHABLE_DATABASE = "postgresql://orderflow:secret@127.0.0.1:9/orderflow"


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    # Every command goes through the API: a database the CLI could reach would hide one
    # that does not.
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DATABASE)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def _run(cli: CliRunner, *args: str) -> Result:
    # The API serves on this event loop: the (blocking) command runs in a thread.
    return await asyncio.to_thread(cli.invoke, app, ["returns", *args], terminal_width=200)


async def _ok(cli: CliRunner, *args: str) -> Any:
    """The JSON a command printed on stdout (it must have succeeded)."""
    result = await _run(cli, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def delivered(stack: Stack, lines: list[tuple[str, int]]) -> str:
    body = order_json(items=lines)
    for item in body["items"]:
        item["unit_price"] = "10.00"
    body["payment"]["amount"] = str(sum(Decimal("10.00") * q for _, q in lines))
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    assert await wait_for_status(stack.pool, body["order_id"], "COMPLETED") == "COMPLETED"
    return str(body["order_id"])


async def in_status(stack: Stack, return_id: str, status: str) -> Any:
    async def check() -> Any:
        row = await stack.pool.fetchrow("SELECT * FROM returns WHERE return_id = $1", return_id)
        return row if row is not None and row["status"] == status else None

    return await wait_until(check, what=f"return {return_id} {status}")


def _refused(result: Result, code: int, words: str) -> None:
    """Refused by the API: one message with its status and detail (the terminal may wrap
    it), no traceback, exit 1."""
    assert result.exit_code == 1, result.output
    # stdout only: a request made without --key names its new key on stderr.
    message = " ".join(result.stdout.split())
    assert message.startswith(f"{code}: ") and words in message, result.output
    assert message.count(f"{code}: ") == 1 and "Traceback" not in message


async def test_a_return_requested_inspected_and_refunded_from_the_command_line(
    stack: Stack, cli: CliRunner
) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RCL")
    order_id = await delivered(stack, [(sku, 2)])

    key = f"cli-{order_id}"
    asked = await _ok(cli, "request", order_id, f"{sku}=1", "--reason", "too small", "--key", key)
    return_id = asked["return_id"]
    assert return_id == f"{order_id}-1" and asked["status"] == "APPROVED"
    # The same key again is the same request: no second return.
    again = await _ok(cli, "request", order_id, f"{sku}=1", "--reason", "too small", "--key", key)
    assert again["return_id"] == return_id
    # Without --key, a new key is made and printed on stderr to repeat the request with.
    second = await _run(cli, "request", order_id, f"{sku}=1", "--reason", "also too small")
    assert second.exit_code == 0, second.output
    assert "Idempotency-Key: return-" in second.stderr
    assert json.loads(second.stdout)["return_id"] == f"{order_id}-2"
    more = await _run(cli, "request", order_id, f"{sku}=1", "--reason", "one more")
    _refused(more, 409, "returned already")

    row = await in_status(stack, return_id, "LABEL_SENT")
    listed = await _ok(cli, "list", "--order", order_id, "--json")
    assert [r["return_id"] for r in listed] == [f"{order_id}-2", return_id]
    (line,) = listed[1]["lines"]
    assert (line["sku"], line["quantity"], line["unit_price"], line["outcome"]) == (
        sku,
        1,
        "10.00",
        None,
    )
    table = await _run(cli, "list", "--order", order_id)
    assert table.exit_code == 0, table.output
    assert return_id in table.output and f"{order_id}-2" in table.output
    assert "LABEL_SENT" in table.output
    newest = await _run(cli, "list", "--order", order_id, "--limit", "1")
    assert newest.exit_code == 0, newest.output
    assert f"{order_id}-2" in newest.output and return_id not in newest.output
    assert "the newest 1 (--limit for more)" in newest.output
    assert "--limit for more" not in table.output
    # A --limit beyond one page of the API follows its cursors (a page of one here).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(returns_command, "PAGE_MAX", 1)
        paged = await _ok(cli, "list", "--order", order_id, "--limit", "5", "--json")
    assert [r["return_id"] for r in paged] == [f"{order_id}-2", return_id]

    early = await _run(cli, "inspect", return_id, f"{sku}=restock")
    _refused(early, 409, "not awaiting inspection")

    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as sim:
        handed = await sim.post(
            f"/carriers/{row['carrier']}/returns/{row['tracking_number']}/hand-in"
        )
        assert handed.status_code == 202, handed.text
    await in_status(stack, return_id, "ARRIVED")
    arrived = await _ok(cli, "list", "--status", "arrived", "--json")
    assert return_id in [r["return_id"] for r in arrived]
    assert all(r["status"] == "ARRIVED" for r in arrived)

    wrong = await _run(cli, "inspect", return_id, "NO-SUCH-SKU=restock")
    _refused(wrong, 422, "NO-SUCH-SKU")
    inspected = await _ok(cli, "inspect", return_id, f"{sku}=restock", "--note", "as new")
    assert inspected["inspected"] == {sku: "restock"}
    await in_status(stack, return_id, "REFUNDED")

    shown = await _ok(cli, "show", return_id, "--json")
    assert shown["status"] == "REFUNDED" and shown["refund_amount"] == "10.00"
    assert shown["lines"][0]["outcome"] == "restock" and shown["lines"][0]["note"] == "as new"
    text = await _run(cli, "show", return_id)
    assert text.exit_code == 0, text.output
    assert f"return {return_id} of order {order_id}: REFUNDED" in text.output
    assert "refund: 10.00" in text.output and f"1 x {sku} @ 10.00: restock (as new)" in text.output
    refunded = await _ok(cli, "list", "--status", "REFUNDED", "--json")
    assert return_id in [r["return_id"] for r in refunded]


async def test_customer_service_decides_and_bad_requests_are_refused(
    stack: Stack, cli: CliRunner
) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RCX")
    await stack.pool.execute("UPDATE products SET returnable = false WHERE sku = $1", sku)
    order_id = await delivered(stack, [(sku, 1)])

    too_many = await _run(cli, "request", order_id, f"{sku}=2", "--reason", "x")
    _refused(too_many, 422, "more than the 1 delivered")
    not_a_line = await _run(cli, "request", order_id, "RCX-NOT-A-LINE=1", "--reason", "x")
    _refused(not_a_line, 422, "not a line")
    unknown = await _run(cli, "request", "T-no-such-order", f"{sku}=1", "--reason", "x")
    _refused(unknown, 404, "not found")
    # Slips of the operator are usage errors, caught before anything is sent.
    for args in (
        ("request", order_id, f"{sku}", "--reason", "x"),
        ("request", order_id, f"{sku}=0", "--reason", "x"),
        ("request", order_id, f"{sku}=1", "--reason", " "),
        ("request", order_id, f"{sku}=1", "--reason", "x", "--resolution", "credit"),
        ("decide", f"{order_id}-1", "maybe"),
        ("inspect", f"{order_id}-1", f"{sku}=burn"),
        ("list", "--status", "LOST"),
    ):
        slip = await _run(cli, *args)
        assert slip.exit_code == 2, (args, slip.output)
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM returns WHERE order_id = $1", order_id) == 0
    )

    asked = await _ok(cli, "request", order_id, f"{sku}=1", "--reason", "opened by mistake")
    return_id = asked["return_id"]
    assert asked["status"] == "REQUESTED"
    waiting = await _ok(cli, "list", "--status", "REQUESTED", "--json")
    assert return_id in [r["return_id"] for r in waiting]

    rejected = await _ok(cli, "decide", return_id, "reject", "--note", "hygiene article")
    assert rejected["status"] == "REJECTED"
    await in_status(stack, return_id, "REJECTED")
    twice = await _run(cli, "decide", return_id, "approve")
    _refused(twice, 409, "")

    # Refused, it holds nothing: asked again, customer service approves it this time.
    again = await _ok(cli, "request", order_id, f"{sku}=1", "--reason", "unopened after all")
    approved = await _ok(cli, "decide", again["return_id"], "approve", "--note", "unopened")
    assert approved["status"] in ("APPROVED", "LABEL_SENT")
    await in_status(stack, again["return_id"], "LABEL_SENT")

    _refused(await _run(cli, "show", f"{order_id}-9"), 404, f"return {order_id}-9 not found")
    _refused(await _run(cli, "show", "nonsense"), 404, "return nonsense not found")


@pytest.mark.parametrize("command", [["list"], ["show", "A-1001-1"]])
def test_an_unreachable_api_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("ORDERFLOW_API_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["returns", *command])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "cannot reach the API" in result.output and "Traceback" not in result.output
