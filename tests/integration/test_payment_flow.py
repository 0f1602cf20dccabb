"""Orders whose money moves through the PSP, end to end on real parts: the order workflow on
the Temporal dev server, its worker, PostgreSQL, the API over HTTP, the carrier simulator
and the PSP simulator, whose own records say what happened to the money."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from app.cli import app as cli_app
from orderflow.models import OrderPolicy
from orderflow.settings import get_settings
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, fresh_database, prepare, running_stack

pytestmark = pytest.mark.integration

BLOCKED = "blocked-buyer"


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> AsyncIterator[Stack]:
    # A database of its own: reconciliation reads every order of it, and the PSP simulator
    # here knows only this module's payments.
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    async with running_stack(
        temporal_env,
        url,
        policy=OrderPolicy.instant(),
        # A blocked e-mail flags its order for review on its own.
        risk_block_list_emails=[f"{BLOCKED}@example.com"],
    ) as running:
        yield running


@pytest.fixture(autouse=True)
async def normal_psp(stack: Stack) -> AsyncIterator[None]:
    await stack.psp.control(reset=True)
    yield
    await stack.psp.control(reset=True)


def authorised(**overrides: Any) -> dict[str, Any]:
    body = order_json(**overrides)
    expires = datetime.now(UTC) + timedelta(days=7)
    body["payment"] |= {"status": "authorized", "authorization_expires_at": expires.isoformat()}
    return body


async def place(stack: Stack, body: dict[str, Any]) -> str:
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    order_id: str = body["order_id"]
    return order_id


async def deliver(stack: Stack, order_id: str) -> None:
    """The carrier simulator (instant mode) delivers what it booked."""
    assert await wait_for_status(stack.pool, order_id, "COMPLETED") == "COMPLETED"


async def operations(stack: Stack, order_id: str) -> list[tuple[str, str]]:
    rows = await stack.pool.fetch(
        "SELECT kind, status FROM payment_operations WHERE order_id = $1 ORDER BY id", order_id
    )
    return [(r["kind"], r["status"]) for r in rows]


async def test_an_authorised_order_is_captured_once_for_the_amount_shipped(stack: Stack) -> None:
    body = authorised()
    order_id = await place(stack, body)
    await deliver(stack, order_id)
    at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
    assert [(c["amount"], c["status"]) for c in at_psp["captures"]] == [
        (body["payment"]["amount"], "succeeded")
    ]
    assert at_psp["refunds"] == [] and at_psp["status"] != "voided"
    assert await operations(stack, order_id) == [("capture", "succeeded")]
    # The capture came before the parcel was handed over.
    kinds = [
        r["kind"]
        for r in await stack.pool.fetch(
            "SELECT kind FROM order_events WHERE order_id = $1 ORDER BY id", order_id
        )
    ]
    assert kinds.index("payment_capture_succeeded") < kinds.index("shipped")


async def test_a_psp_failing_twice_then_answering_captures_once(stack: Stack) -> None:
    await stack.psp.control(mode="fail", fail_times=2)
    body = authorised()
    order_id = await place(stack, body)
    await deliver(stack, order_id)
    at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
    assert len(at_psp["captures"]) == 1
    assert await operations(stack, order_id) == [("capture", "succeeded")]


async def test_a_psp_failing_twice_then_answering_refunds_once(stack: Stack) -> None:
    body = order_json(customer_id=BLOCKED.upper())
    order_id = await place(stack, body)
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    await stack.psp.control(mode="fail", fail_times=2)
    response = await stack.http(
        "POST", f"/orders/{order_id}/cancel", json={"reason": "changed my mind"}
    )
    assert response.status_code == 200, response.text
    await stack.storefront.handle(order_id).result()
    at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
    assert [r["amount"] for r in at_psp["refunds"]] == [body["payment"]["amount"]]
    assert [kind for kind, _ in await operations(stack, order_id)] == ["refund"]


async def test_a_cancelled_authorised_order_is_voided_not_refunded(stack: Stack) -> None:
    body = authorised(customer_id=BLOCKED.upper())
    order_id = await place(stack, body)
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    response = await stack.http(
        "POST", f"/orders/{order_id}/cancel", json={"reason": "changed my mind"}
    )
    assert response.status_code == 200, response.text
    assert await wait_for_status(stack.pool, order_id, "CANCELLED") == "CANCELLED"
    await stack.storefront.handle(order_id).result()
    at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
    assert at_psp["status"] == "voided"
    assert at_psp["captures"] == [] and at_psp["refunds"] == []
    assert await operations(stack, order_id) == [("void", "succeeded")]


async def test_a_captured_order_rejected_in_review_is_refunded_once(stack: Stack) -> None:
    body = order_json(customer_id=BLOCKED.upper())
    order_id = await place(stack, body)
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    response = await stack.http(
        "POST",
        f"/reviews/{order_id}/decision",
        role="reviewer",
        json={"decision": "reject", "note": "blocked buyer"},
    )
    assert response.status_code == 200, response.text
    await stack.storefront.handle(order_id).result()
    at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
    assert [(r["amount"], r["reason"]) for r in at_psp["refunds"]] == [
        (body["payment"]["amount"], "rejected: blocked buyer")
    ]
    (refund,) = await operations(stack, order_id)
    assert refund[0] == "refund"


async def test_a_refused_capture_holds_the_parcel_until_finance_retries(stack: Stack) -> None:
    await stack.psp.control(mode="refuse")
    body = authorised()
    order_id = await place(stack, body)
    await wait_for_status(stack.pool, order_id, "PACKED")

    async def held() -> bool:
        view = await stack.storefront.get_status(order_id)
        return view.awaiting == "payment_capture"

    await _eventually(held)
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM shipments WHERE order_id = $1", order_id)
        == 0
    )
    queue = await stack.http("GET", "/departments/finance/queue", role="admin")
    assert queue.status_code == 200, queue.text
    problems = [i for i in queue.json()["items"] if i["order_id"] == order_id]
    assert [p["kind"] for p in problems] == ["payment_problem"]
    # Asked again while the PSP still refuses: refused again, still held.
    again = await stack.http(
        "POST", f"/payments/{order_id}/capture/retry", role="admin", json={"note": "try"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["awaiting"] == "payment_capture"

    await stack.psp.control(mode="normal")
    retried = await stack.http(
        "POST", f"/payments/{order_id}/capture/retry", role="admin", json={"note": "card ok"}
    )
    assert retried.status_code == 200, retried.text
    await deliver(stack, order_id)
    at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
    assert [c["status"] for c in at_psp["captures"]] == ["succeeded"]
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM shipments WHERE order_id = $1", order_id)
        == 1
    )
    queue = await stack.http("GET", "/departments/finance/queue", role="admin")
    assert [i for i in queue.json()["items"] if i["order_id"] == order_id] == []
    # Not held any more: a retry now is a conflict.
    late = await stack.http("POST", f"/payments/{order_id}/capture/retry", role="admin", json={})
    assert late.status_code == 409


async def test_reconcile_agrees_after_a_mixed_run_and_catches_a_planted_mismatch(
    stack: Stack,
) -> None:
    # 100 orders: authorised and captured at checkout, shipped, cancelled (voided or
    # refunded), rejected in review (refunded or voided), one disputed after delivery.
    flagged = [
        authorised(customer_id=BLOCKED.upper())
        if n % 2
        else order_json(customer_id=BLOCKED.upper())
        for n in range(8)
    ]
    shipped = [authorised() if n % 2 else order_json() for n in range(92)]
    placed = await asyncio.gather(*(place(stack, body) for body in shipped + flagged))
    for n, body in enumerate(flagged):
        order_id = body["order_id"]
        await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
        if n < 4:
            response = await stack.http(
                "POST", f"/orders/{order_id}/cancel", json={"reason": "changed my mind"}
            )
        else:
            response = await stack.http(
                "POST",
                f"/reviews/{order_id}/decision",
                role="reviewer",
                json={"decision": "reject", "note": "blocked buyer"},
            )
        assert response.status_code == 200, response.text
    for order_id in placed:
        await stack.storefront.handle(order_id).result()
    # The PSP knows the payments it captured: one of those is disputed after delivery.
    await stack.psp.dispute(shipped[1]["payment"]["transaction_id"])
    await _eventually(lambda: _disputed(stack, shipped[1]["order_id"]))

    code, report = await _reconcile(stack)
    assert code == 0, report
    for body in shipped[1:20:2]:
        at_psp = await stack.psp.payment(body["payment"]["transaction_id"])
        assert [c["status"] for c in at_psp["captures"]] == ["succeeded"], body["order_id"]

    # A capture the PSP never made, planted in the ledger, is caught.
    planted = shipped[3]["order_id"]
    await stack.pool.execute(
        """INSERT INTO payment_operations (order_id, kind, idempotency_key, amount, status)
           VALUES ($1, 'capture', $2, $3, 'succeeded')""",
        planted,
        f"capture-{planted}-planted",
        Decimal("1.00"),
    )
    code, report = await _reconcile(stack)
    assert code == 1
    assert planted in json.dumps(report)


async def _disputed(stack: Stack, order_id: str) -> bool:
    found = await stack.pool.fetchval(
        "SELECT count(*) FROM payment_disputes WHERE order_id = $1", order_id
    )
    return bool(found)


async def _reconcile(stack: Stack) -> tuple[int, Any]:
    env = {
        "DATABASE_URL": stack.database_url,
        "ORDERFLOW_PSP_API_URL": stack.settings.psp_api_url,
        "ORDERFLOW_PSP_API_KEY": stack.settings.psp_api_key,
    }
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["payments", "reconcile", "--json"], env=env
        )
    finally:
        get_settings.cache_clear()
    return result.exit_code, json.loads(result.stdout)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)
