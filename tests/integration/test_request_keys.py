"""Who did what, and requests that may be retried: a review decision is on record under the
authenticated principal, and goods receipts and feedback need an `Idempotency-Key` bound to
their body (the same key and body: the first answer; another body: 409)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from app.cli import app
from orderflow.access import customer_token
from orderflow.models import OrderPolicy
from orderflow.settings import get_settings
from tests.helpers import order_json, wait_for_status
from tests.integration.fulfilment_support import add_product, place, wait_awaiting
from tests.integration.inventory_support import new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

MANUAL = OrderPolicy.instant(auto_warehouse=False)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=MANUAL) as running:
        yield running


async def test_a_review_decision_is_recorded_under_the_token_not_the_body(stack: Stack) -> None:
    body = order_json(payment_status="failed")  # a failed payment flags the order
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    decided = await stack.http(
        "POST",
        f"/reviews/{order_id}/decision",
        role="reviewer",
        json={"decision": "reject", "note": "card reported stolen", "reviewer": "the-ceo"},
    )
    assert decided.status_code == 200, decided.text
    await wait_for_status(stack.pool, order_id, "REJECTED")
    row = await stack.pool.fetchrow(
        """SELECT actor, details FROM order_events
           WHERE order_id = $1 AND step = 3 AND status = 'REJECTED'""",
        order_id,
    )
    assert row is not None
    assert row["actor"] == "reviewer"
    assert "the-ceo" not in row["actor"]


async def _receipt(stack: Stack, sku: str, quantity: int, key: str | None) -> dict:
    headers = {"Idempotency-Key": key} if key is not None else {}
    response = await stack.http(
        "POST",
        "/purchasing/receipts",
        role="purchasing",
        json={"sku": sku, "quantity": quantity},
        headers=headers,
    )
    return {"status": response.status_code, "body": response.json()}


async def test_a_goods_receipt_needs_a_key_and_a_key_means_one_body(stack: Stack) -> None:
    sku = await new_sku(stack.pool, on_hand=0)
    missing = await _receipt(stack, sku, 3, None)
    assert missing["status"] == 422 and "Idempotency-Key" in missing["body"]["detail"]

    key = f"note-{uuid.uuid4().hex}"
    first = await _receipt(stack, sku, 3, key)
    again = await _receipt(stack, sku, 3, key)
    assert first["status"] == again["status"] == 201
    assert again["body"]["receipt_id"] == first["body"]["receipt_id"]
    assert again["body"]["on_hand"] == first["body"]["on_hand"] == 3
    assert again["body"]["duplicate"] is True

    other = await _receipt(stack, sku, 5, key)
    assert other["status"] == 409, other
    level = (await stack.http("GET", f"/inventory/{sku}", role="warehouse")).json()
    assert level["on_hand"] == 3


async def test_feedback_needs_a_key_and_a_key_means_one_body(stack: Stack) -> None:
    sku = await add_product(stack)
    order, _ = await place(stack, MANUAL, [(sku, 1)])
    order_id = order.order_id
    await wait_awaiting(stack, order_id, "picked")
    token = customer_token(stack.settings.customer_token_secret, order_id)

    async def send(body: dict, key: str | None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        response = await stack.http(
            "POST", f"/orders/{order_id}/feedback", role=None, headers=headers, json=body
        )
        return response.status_code, response.json()

    question = {"category": "other", "message": "Do you gift-wrap?"}
    code, answer = await send(question, None)
    assert code == 422 and "Idempotency-Key" in answer["detail"]

    code, first = await send(question, "q-1")
    assert code == 201, first
    code, again = await send(question, "q-1")
    assert code == 200 and again["ticket_id"] == first["ticket_id"]
    code, conflict = await send({"category": "other", "message": "Something else"}, "q-1")
    assert code == 409, conflict
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM feedback_tickets WHERE order_id = $1", order_id
    )
    assert count == 1


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_orderflow_receive_sends_a_key_printed_and_reusable(
    stack: Stack, cli: CliRunner
) -> None:
    sku = await new_sku(stack.pool, on_hand=0)
    first = await asyncio.to_thread(cli.invoke, app, ["receive", sku, "2"])
    assert first.exit_code == 0, first.output
    assert "Idempotency-Key: receipt-" in first.output
    key = first.output.split("Idempotency-Key: ", 1)[1].split()[0]
    again = await asyncio.to_thread(cli.invoke, app, ["receive", sku, "2", "--key", key])
    assert again.exit_code == 0, again.output
    assert '"duplicate": true' in again.output
    level = (await stack.http("GET", f"/inventory/{sku}", role="warehouse")).json()
    assert level["on_hand"] == 2
