"""The payment ledger through real parts: the PSP simulator over HTTP, PostgreSQL, the
project's API with its PSP webhook, and `orderflow payments reconcile`.

Orders are written as intake leaves them (their workflow is not needed to move money); the
payment activities run in Temporal's activity environment against the simulator, whose own
records say what happened there. The simulator posts its signed webhooks to the running API.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from typer.testing import CliRunner

from activities.payments import PaymentActivities
from activities.psp_client import PspClient, PspUnavailable
from app.cli import app as cli_app
from db.pool import create_pool
from db.repositories import orders
from orderflow.models import CaptureInput, Order, OrderPolicy, RefundInput
from orderflow.models.psp import PaymentFacts
from orderflow.settings import Settings, get_settings
from orderflow.signing import signed_headers
from stack.supervisor import free_port
from tests.helpers import order_json
from tests.servers import (
    FAST_PSP,
    Psp,
    Stack,
    fresh_database,
    prepare,
    psp_simulator,
    running_stack,
)

pytestmark = pytest.mark.integration

WAIT = 15.0


@dataclass
class World:
    stack: Stack
    psp: Psp
    activities: PaymentActivities

    @property
    def pool(self) -> asyncpg.Pool:
        return self.stack.pool


@pytest.fixture(scope="module")
async def world(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[World]:
    async with running_stack(
        temporal_env, database_url, policy=OrderPolicy.instant(), with_worker=False
    ) as stack:
        # The simulator posts to the API's webhook (running_stack points it there).
        assert stack.settings.psp_webhook_url.endswith(
            f":{stack.settings.api_port}/payments/events"
        )
        async with PspClient(stack.settings) as client:
            yield World(stack, stack.psp, PaymentActivities(stack.pool, stack.settings, client))


@pytest.fixture(autouse=True)
async def normal_psp(world: World) -> AsyncIterator[None]:
    await world.psp.control(reset=True)
    yield
    await world.psp.control(reset=True)


async def record_order(
    pool: asyncpg.Pool,
    *,
    authorised: bool = True,
    status: str = "PACKED",
    expires_in: timedelta = timedelta(days=7),
) -> Order:
    """An order as intake records it (25.00 EUR), authorised or captured at checkout."""
    body = order_json()
    if authorised:
        body["payment"] |= {
            "status": "authorized",
            "authorization_expires_at": (datetime.now(UTC) + expires_in).isoformat(),
        }
    order = Order.model_validate(body)
    async with pool.acquire() as conn, conn.transaction():
        assert await orders.insert_order(
            conn,
            order,
            workflow_id=f"order-{order.order_id}",
            placed_at=datetime.now(UTC),
            status=status,
        )
    return order


async def run(activity: Callable[..., Any], arg: Any) -> Any:
    return await ActivityEnvironment().run(activity, arg)


async def operations(pool: asyncpg.Pool, order_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM payment_operations WHERE order_id = $1 ORDER BY id", order_id
    )


async def event_kinds(pool: asyncpg.Pool, order_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT kind FROM order_events WHERE order_id = $1 ORDER BY id", order_id
    )
    return [r["kind"] for r in rows]


async def eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ order contract at the API


async def test_placing_a_lapsed_authorisation_is_refused(world: World) -> None:
    body = order_json()
    body["payment"] |= {
        "status": "authorized",
        "authorization_expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }
    refused = await world.stack.http("POST", "/orders", json=body)
    assert refused.status_code == 422
    assert "authorization has expired" in refused.json()["detail"]

    no_expiry = order_json()
    no_expiry["payment"]["status"] = "authorized"
    assert (await world.stack.http("POST", "/orders", json=no_expiry)).status_code == 422
    unknown_method = order_json()
    unknown_method["payment"]["method"] = "bitcoin"
    assert (await world.stack.http("POST", "/orders", json=unknown_method)).status_code == 422
    wrong_amount = order_json()
    wrong_amount["payment"]["amount"] = "1.00"
    assert (await world.stack.http("POST", "/orders", json=wrong_amount)).status_code == 422


async def test_intake_stores_the_authorisations_expiry(world: World) -> None:
    order = await record_order(world.pool)
    stored = await world.pool.fetchval(
        "SELECT authorization_expires_at FROM payments WHERE order_id = $1", order.order_id
    )
    assert stored == order.payment.authorization_expires_at


# ------------------------------------------------------------------ activities


async def test_a_retried_capture_captures_once(world: World) -> None:
    order = await record_order(world.pool)
    data = CaptureInput(order_id=order.order_id, amount=Decimal("25.00"))
    first = await run(world.activities.capture_payment, data)
    again = await run(world.activities.capture_payment, data)
    assert first.ok and first.status == "succeeded" and first.psp_id
    assert again == first

    at_psp = world.psp.sim.payments[order.payment.transaction_id]
    assert [c.amount for c in at_psp.captures] == [Decimal("25.00")]
    # A known outcome is not asked again.
    assert world.psp.sim.attempts[f"capture-{order.order_id}-1"] == 1
    rows = await operations(world.pool, order.order_id)
    assert [(r["kind"], r["status"], r["idempotency_key"]) for r in rows] == [
        ("capture", "succeeded", f"capture-{order.order_id}-1")
    ]
    # The outcome is on the order's timeline once.
    assert (await event_kinds(world.pool, order.order_id)).count("payment_capture_succeeded") == 1


async def test_a_psp_failing_twice_then_answering_captures_once(world: World) -> None:
    order = await record_order(world.pool)
    await world.psp.control(mode="fail", fail_times=2)
    result = await run(
        world.activities.capture_payment,
        CaptureInput(order_id=order.order_id, amount=Decimal("25.00")),
    )
    assert result.ok
    key = f"capture-{order.order_id}-1"
    assert world.psp.sim.attempts[key] == 3
    assert len(world.psp.sim.payments[order.payment.transaction_id].captures) == 1


async def test_a_psp_down_longer_than_the_client_retries_fails_the_attempt_for_temporal(
    world: World,
) -> None:
    order = await record_order(world.pool)
    data = CaptureInput(order_id=order.order_id, amount=Decimal("25.00"))
    await world.psp.control(mode="fail", fail_times=50)
    with pytest.raises(PspUnavailable):
        await run(world.activities.capture_payment, data)
    # The operation is written with its key before the call: Temporal's retry reuses it.
    [row] = await operations(world.pool, order.order_id)
    assert row["status"] == "pending"
    assert order.payment.transaction_id not in world.psp.sim.payments

    await world.psp.control(reset=True)
    result = await run(world.activities.capture_payment, data)
    assert result.ok and result.idempotency_key == row["idempotency_key"]
    assert len(world.psp.sim.payments[order.payment.transaction_id].captures) == 1
    assert len(await operations(world.pool, order.order_id)) == 1


async def test_a_refused_capture_is_a_result_not_an_error(world: World) -> None:
    order = await record_order(world.pool)
    await world.psp.control(mode="refuse")
    result = await run(
        world.activities.capture_payment,
        CaptureInput(order_id=order.order_id, amount=Decimal("25.00")),
    )
    assert (result.ok, result.status, result.code) == (False, "refused", "declined")
    [row] = await operations(world.pool, order.order_id)
    assert (row["status"], row["failure_code"]) == ("refused", "declined")
    assert "payment_capture_refused" in await event_kinds(world.pool, order.order_id)
    assert world.psp.sim.payments[order.payment.transaction_id].captured == 0


async def test_a_void_releases_the_authorisation_once(world: World) -> None:
    order = await record_order(world.pool)
    first = await run(world.activities.void_payment, order.order_id)
    again = await run(world.activities.void_payment, order.order_id)
    assert first.ok and first.status == "succeeded" and again == first
    assert world.psp.sim.payments[order.payment.transaction_id].voided
    assert world.psp.sim.attempts[f"void-{order.order_id}-1"] == 1


async def test_a_reauthorisation_renews_the_expiry(world: World) -> None:
    order = await record_order(world.pool, expires_in=timedelta(hours=1))
    result = await run(world.activities.reauthorize_payment, order.order_id)
    assert result.ok and result.authorization_expires_at is not None
    assert order.payment.authorization_expires_at is not None
    assert result.authorization_expires_at > order.payment.authorization_expires_at
    stored = await world.pool.fetchrow(
        """SELECT authorization_expires_at, authorization_renewed_until FROM payments
           WHERE order_id = $1""",
        order.order_id,
    )
    # The checkout's expiry stays what checkout said; the renewal is kept beside it.
    assert stored["authorization_expires_at"] == order.payment.authorization_expires_at
    assert stored["authorization_renewed_until"] == result.authorization_expires_at


async def test_a_refund_the_psp_refuses_as_sent_fails_for_good_and_tells_finance(
    world: World,
) -> None:
    order = await record_order(world.pool)  # authorised only: nothing captured to refund
    with pytest.raises(ApplicationError) as failed:
        await run(
            world.activities.refund_payment,
            RefundInput(order_id=order.order_id, amount=Decimal("5.00"), reason="goodwill"),
        )
    assert failed.value.non_retryable
    [row] = await operations(world.pool, order.order_id)
    assert (row["status"], row["failure_code"]) == ("failed", "insufficient_captured")
    queue = await world.stack.http("GET", "/departments/finance/queue", role="admin")
    assert queue.status_code == 200, queue.text
    items = [i for i in queue.json()["items"] if i["order_id"] == order.order_id]
    assert [(i["kind"], i["ref"]) for i in items] == [("payment_problem", row["idempotency_key"])]
    notices = await world.pool.fetch(
        "SELECT kind, channel FROM notifications WHERE order_id = $1", order.order_id
    )
    assert [(n["kind"], n["channel"]) for n in notices] == [("payment_problem", "department")]


async def test_nothing_captured_nothing_refunded(world: World) -> None:
    order = await record_order(world.pool)
    result = await run(
        world.activities.refund_payment,
        RefundInput(order_id=order.order_id, reason="order cancelled"),
    )
    assert (result.ok, result.status, result.amount) == (True, "nothing", Decimal("0.00"))
    assert await operations(world.pool, order.order_id) == []


# ------------------------------------------------------------------ the webhook


async def test_a_refund_is_pending_until_the_psps_signed_webhook_settles_it(world: World) -> None:
    order = await record_order(world.pool, authorised=False)  # captured at checkout
    result = await run(
        world.activities.refund_payment,
        RefundInput(order_id=order.order_id, reason="damaged on arrival"),
    )
    assert (result.ok, result.status, result.amount) == (True, "pending", Decimal("25.00"))

    async def settled() -> bool:
        [row] = await operations(world.pool, order.order_id)
        return bool(row["status"] == "settled")

    await eventually(settled)
    kinds = await event_kinds(world.pool, order.order_id)
    assert kinds == ["payment_refund_pending", "payment_refund_settled"]
    ledger = await world.stack.http("GET", f"/payments/{order.order_id}", role="admin")
    assert ledger.status_code == 200, ledger.text
    body = ledger.json()
    assert (Decimal(body["captured"]), Decimal(body["refunded"])) == (
        Decimal("25.00"),
        Decimal("25.00"),
    )
    assert [e["type"] for e in body["webhook_events"]] == ["refund.settled"]
    forbidden = await world.stack.http("GET", f"/payments/{order.order_id}", role="storefront")
    assert forbidden.status_code == 403


async def test_a_failed_refund_goes_to_finance_and_is_sent_again_under_a_new_key(
    world: World,
) -> None:
    order = await record_order(world.pool, authorised=False)
    await world.psp.control(refund_outcome="failed")
    await run(
        world.activities.refund_payment,
        RefundInput(order_id=order.order_id, reason="returned goods"),
    )

    async def failed() -> asyncpg.Record | None:
        [row] = await operations(world.pool, order.order_id)
        return row if row["status"] == "failed" else None

    first = await eventually(failed)
    queue = (await world.stack.http("GET", "/departments/finance/queue", role="admin")).json()
    assert first["idempotency_key"] in [
        i["ref"] for i in queue["items"] if i["kind"] == "payment_problem"
    ]

    await world.psp.control(refund_outcome="settled")
    retried = await world.stack.http(
        "POST", f"/payments/{order.order_id}/refunds/retry", role="admin"
    )
    assert retried.status_code == 200, retried.text
    new_key = retried.json()["idempotency_key"]
    assert new_key != first["idempotency_key"] and retried.json()["status"] == "pending"

    async def settled() -> bool:
        rows = await operations(world.pool, order.order_id)
        return [r["status"] for r in rows] == ["failed", "settled"]

    await eventually(settled)
    rows = await operations(world.pool, order.order_id)
    assert rows[1]["retry_of"] == first["idempotency_key"]
    # Sent again once: the failed refund has left finance's queue, and a second click finds
    # nothing to send.
    queue = (await world.stack.http("GET", "/departments/finance/queue", role="admin")).json()
    assert first["idempotency_key"] not in [i["ref"] for i in queue["items"]]
    again = await world.stack.http(
        "POST", f"/payments/{order.order_id}/refunds/retry", role="admin"
    )
    assert again.status_code == 409
    at_psp = world.psp.sim.payments[order.payment.transaction_id]
    assert [r.status for r in at_psp.refunds] == ["failed", "settled"]


def _event(transaction_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt_{uuid.uuid4().hex[:12]}",
        "type": "dispute.opened",
        "transaction_id": transaction_id,
        "object_id": f"dp_{uuid.uuid4().hex[:12]}",
        "amount": "25.00",
        "reason": "fraudulent",
        "at": datetime.now(UTC).isoformat(),
    } | changes


async def _post_event(
    world: World, event: dict[str, Any], *, secret: str | None = None, at: int | None = None
) -> httpx.Response:
    body = json.dumps(event).encode()
    headers = signed_headers(
        secret or world.stack.settings.psp_webhook_secret, body, at or int(time.time())
    )
    return await world.stack.http(
        "POST",
        "/payments/events",
        role=None,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )


async def test_unsigned_forged_or_stale_events_are_refused(world: World) -> None:
    order = await record_order(world.pool, authorised=False)
    event = _event(order.payment.transaction_id)
    unsigned = await world.stack.http("POST", "/payments/events", role=None, json=event)
    assert unsigned.status_code == 401
    forged = await _post_event(world, event, secret="not-the-secret")
    assert forged.status_code == 401
    stale = await _post_event(world, event, at=int(time.time()) - 3600)
    assert stale.status_code == 401
    assert (
        await world.pool.fetchval(
            "SELECT count(*) FROM psp_webhook_events WHERE event_id = $1", event["event_id"]
        )
        == 0
    )


async def test_an_event_about_an_unknown_payment_is_recorded_and_refused(world: World) -> None:
    event = _event(f"pay_unknown_{uuid.uuid4().hex[:6]}")
    answer = await _post_event(world, event)
    assert answer.status_code == 404
    row = await world.pool.fetchrow(
        "SELECT outcome, order_id FROM psp_webhook_events WHERE event_id = $1", event["event_id"]
    )
    assert (row["outcome"], row["order_id"]) == ("unknown_payment", None)


async def test_a_replayed_event_is_applied_once(world: World) -> None:
    order = await record_order(world.pool, authorised=False)
    event = _event(order.payment.transaction_id)
    first = await _post_event(world, event)
    replay = await _post_event(world, event)
    assert (first.status_code, first.json()["outcome"]) == (200, "applied")
    assert (replay.status_code, replay.json()["outcome"]) == (200, "duplicate")
    assert (
        await world.pool.fetchval(
            "SELECT count(*) FROM payment_disputes WHERE order_id = $1", order.order_id
        )
        == 1
    )
    assert (await event_kinds(world.pool, order.order_id)).count("payment_dispute_opened") == 1


async def test_a_dispute_is_finances_task_and_the_order_goes_on(world: World) -> None:
    order = await record_order(world.pool, authorised=False, status="SHIPPED")
    await world.psp.checkout(order.payment.transaction_id, "25.00", capture=True)
    dispute_id = await world.psp.dispute(order.payment.transaction_id)

    async def recorded() -> bool:
        return bool(
            await world.pool.fetchval(
                "SELECT count(*) FROM payment_disputes WHERE dispute_id = $1", dispute_id
            )
        )

    await eventually(recorded)
    queue = (await world.stack.http("GET", "/departments/finance/queue", role="admin")).json()
    items = [i for i in queue["items"] if i["order_id"] == order.order_id]
    assert [(i["kind"], i["ref"]) for i in items] == [("payment_dispute", dispute_id)]
    # Finance is worked by admin only.
    assert (
        await world.stack.http("GET", "/departments/finance/queue", role="logistics")
    ).status_code == 403
    events = await world.pool.fetch(
        "SELECT kind, status, step FROM order_events WHERE order_id = $1", order.order_id
    )
    assert [(e["kind"], e["status"]) for e in events] == [("payment_dispute_opened", None)]
    assert await orders.order_status(world.pool, order.order_id) == "SHIPPED"
    notice = await world.pool.fetchrow(
        "SELECT kind, recipient, subject FROM notifications WHERE order_id = $1", order.order_id
    )
    assert notice["kind"] == "payment_dispute" and order.order_id in notice["subject"]


# ------------------------------------------------------------------ reconciliation


async def _reconcile(database_url: str, psp: Psp) -> tuple[int, dict[str, Any], str]:
    env = {"DATABASE_URL": database_url, "ORDERFLOW_PSP_API_URL": psp.url}
    get_settings.cache_clear()
    try:
        as_json = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["payments", "reconcile", "--json"], env=env
        )
        as_text = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["payments", "reconcile"], env=env
        )
    finally:
        get_settings.cache_clear()
    assert as_text.exit_code == as_json.exit_code, as_text.output
    return as_json.exit_code, json.loads(as_json.stdout), as_text.output


async def test_reconcile_agrees_on_a_mixed_ledger_and_reports_what_was_planted(
    postgres_server_url: str,
) -> None:
    # A database and a PSP of their own: the session's database holds other tests' orders.
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    port = free_port()
    settings = Settings(
        database_url=url,
        psp_api_url=f"http://127.0.0.1:{port}",
        # Nobody listens: the PSP's webhooks are given up on, the ledger keeps its refunds
        # pending, and reconciliation still agrees (a refund on its way is no mismatch).
        psp_webhook_url=f"http://127.0.0.1:{free_port()}/payments/events",
        **FAST_PSP | {"psp_simulator_webhook_attempts": 1},
    )
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        async with psp_simulator(settings, port) as psp, PspClient(settings) as client:
            acts = PaymentActivities(pool, settings, client)
            shipped = await record_order(pool, status="SHIPPED")
            await _ship(pool, shipped.order_id)
            await run(
                acts.capture_payment, CaptureInput(order_id=shipped.order_id, amount=Decimal("25"))
            )
            voided = await record_order(pool, status="CANCELLED")
            await run(acts.void_payment, voided.order_id)
            refunded = await record_order(pool, authorised=False, status="CANCELLED")
            await psp.checkout(refunded.payment.transaction_id, "25.00", capture=True)
            await run(
                acts.refund_payment,
                RefundInput(order_id=refunded.order_id, amount=Decimal("10.00"), reason="part"),
            )
            disputed = await record_order(pool, authorised=False, status="DELIVERED")
            await psp.checkout(disputed.payment.transaction_id, "25.00", capture=True)
            await psp.dispute(disputed.payment.transaction_id)
            waiting = await record_order(pool, status="RESERVED")
            await psp.checkout(waiting.payment.transaction_id, "25.00", capture=False)

            code, report, text = await _reconcile(url, psp)
            assert (code, report["mismatch_count"]) == (0, 0), text
            # Every order authorised, acted on or listed by the PSP.
            assert report["orders_checked"] == 5
            assert report["payments_at_psp"] == 5
            assert "agree" in text

            # Planted: a refund the PSP never saw, a parcel booked for a voided payment,
            # and money taken at the PSP for an order still waiting for stock.
            await pool.execute(
                """INSERT INTO payment_operations (order_id, kind, idempotency_key, amount,
                                                   status)
                   VALUES ($1, 'refund', $2, 5.00, 'settled')""",
                shipped.order_id,
                f"planted-{shipped.order_id}",
            )
            await _ship(pool, voided.order_id)
            facts = PaymentFacts.model_validate(
                {"amount": "25.00", "currency": "EUR", "status": "authorized"}
            )
            await client.capture(
                waiting.payment.transaction_id, Decimal("25.00"), facts, "outside-capture"
            )

            code, report, text = await _reconcile(url, psp)
            assert code == 1, text
            found = {(m["order_id"], m["kind"]) for m in report["mismatches"]}
            assert found == {
                (shipped.order_id, "refund_missing"),
                (voided.order_id, "shipped_not_captured"),
                (waiting.order_id, "captured_not_shipped"),
                (waiting.order_id, "amount_differs"),
            }
            for order_id, kind in found:
                assert order_id in text and kind in text
    finally:
        await pool.close()


async def _ship(pool: asyncpg.Pool, order_id: str) -> None:
    """The parcel booked with a carrier, as step 6 leaves it."""
    now = datetime.now(UTC)
    await pool.execute(
        """INSERT INTO shipments (order_id, carrier, tracking_number, delivery_note,
                                  service_level, weight_kg, cost, choice_reason, booked_at,
                                  expected_delivery, status)
           VALUES ($1, 'dhl', $2, 'DN-1', 'standard', 1.0, 4.90, 'test', $3, $4, 'BOOKED')""",
        order_id,
        f"TN-{uuid.uuid4().hex[:12]}",
        now,
        now + timedelta(days=2),
    )
