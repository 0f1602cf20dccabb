"""Outbound webhooks against real servers: orders placed through the API and run by a worker
on a Temporal dev server, dispatchers on PostgreSQL, and receivers that are uvicorn servers
on loopback ports. Nothing in the delivery path is mocked.

The module has a database of its own: its subscriptions receive every order event, so other
tests' orders must not reach these receivers (nor theirs queue deliveries here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI, Request, Response
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from app.cli import app as cli_app
from db.pool import create_pool
from db.repositories import webhooks as repo
from orderflow.models import OrderPolicy
from orderflow.settings import Settings, get_settings
from orderflow.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from stack.supervisor import free_port
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, fresh_database, prepare, running_stack, serve
from workers.webhooks import WebhookDispatcher

pytestmark = pytest.mark.integration

SECRET = "receiver-secret-0123456789abcdef"
BODY_FIELDS = {"id", "type", "order_id", "status", "occurred_at", "data"}


# ---------------------------------------------------------------- a receiver
@dataclass
class Received:
    hook: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float


@dataclass
class Receiver:
    """Records every request per hook name; answers 500 to a hook's first `fail[name]`."""

    url: str
    app: FastAPI
    received: list[Received] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)

    def of(self, hook: str, order_ids: set[str]) -> list[Received]:
        return [
            r for r in self.received if r.hook == hook and _json(r.body)["order_id"] in order_ids
        ]


def _json(body: bytes) -> Any:
    return json.loads(body)


def receiver_app() -> tuple[FastAPI, list[Received], dict[str, int]]:
    app = FastAPI()
    received: list[Received] = []
    fail: dict[str, int] = {}

    @app.post("/hook/{name}")
    async def hook(name: str, request: Request) -> Response:
        body = await request.body()
        answered = 200
        if fail.get(name, 0) > 0:
            fail[name] -= 1
            answered = 500
        received.append(Received(name, dict(request.headers), body, answered, time.monotonic()))
        return Response(status_code=answered)

    return app, received, fail


@contextlib.asynccontextmanager
async def receiving(port: int) -> AsyncIterator[Receiver]:
    app, received, fail = receiver_app()
    async with serve(app, port):
        yield Receiver(f"http://127.0.0.1:{port}", app, received, fail)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
async def hooks_db(postgres_server_url: str) -> str:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    return url


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, hooks_db: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, hooks_db, policy=OrderPolicy.instant()) as running:
        yield running


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving(free_port()) as running:
        yield running


@pytest.fixture(autouse=True)
async def no_subscriptions_left(stack: Stack) -> AsyncIterator[None]:
    yield
    await stack.pool.execute(
        "UPDATE webhook_subscriptions SET deleted_at = now() WHERE deleted_at IS NULL"
    )


def hook_settings(database_url: str, **overrides: Any) -> Settings:
    """Fast rounds and short backoff, so tests wait on outcomes, not on the clock."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "webhook_interval_seconds": 0.05,
        "webhook_backoff_seconds": 0.1,
        "webhook_backoff_max_seconds": 0.4,
        "webhook_timeout_seconds": 3,
        "webhook_lease_seconds": 30,
        "webhook_max_age": timedelta(minutes=5),
    }
    return Settings(**{**fields, **overrides})


@contextlib.asynccontextmanager
async def dispatching(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[WebhookDispatcher]:
    dispatcher = WebhookDispatcher(pool, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 60.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {result!r})")
        await asyncio.sleep(0.05)


async def subscribe(stack: Stack, url: str, events: list[str] | None = None) -> int:
    response = await stack.http(
        "POST",
        "/webhooks/subscriptions",
        role="admin",
        json={"url": url, "secret": SECRET, "events": events or ["*"]},
    )
    assert response.status_code == 201, response.text
    subscription_id: int = response.json()["id"]
    return subscription_id


async def place_completed(stack: Stack, n: int) -> set[str]:
    bodies = [order_json() for _ in range(n)]
    for body in bodies:
        placed = await stack.http("POST", "/orders", json=body)
        assert placed.status_code == 202, placed.text
    for body in bodies:
        await wait_for_status(stack.pool, body["order_id"], "COMPLETED")
    return {body["order_id"] for body in bodies}


async def event_ids(pool: asyncpg.Pool, order_ids: set[str]) -> list[int]:
    return [
        r["id"]
        for r in await pool.fetch(
            "SELECT id FROM order_events WHERE order_id = ANY($1::text[]) ORDER BY id",
            list(order_ids),
        )
    ]


async def deliveries(pool: asyncpg.Pool, subscription_id: int, order_ids: set[str]) -> list[Any]:
    return list(
        await pool.fetch(
            """SELECT id, event_id, order_id, status, attempts FROM webhook_deliveries
               WHERE subscription_id = $1 AND order_id = ANY($2::text[]) ORDER BY event_id""",
            subscription_id,
            list(order_ids),
        )
    )


async def all_in(
    pool: asyncpg.Pool, subscription_id: int, order_ids: set[str], status: str
) -> bool:
    """Every event of the orders has a delivery to the subscription, all in `status`."""
    rows = await deliveries(pool, subscription_id, order_ids)
    events = await event_ids(pool, order_ids)
    return [r["event_id"] for r in rows] == events and all(r["status"] == status for r in rows)


def assert_in_order_per_order(requests: list[Received]) -> None:
    """Per order, the events arrive in the order they happened (a retry repeats one)."""
    seen: dict[str, int] = {}
    for r in requests:
        body = _json(r.body)
        event_id = int(body["id"])
        assert event_id >= seen.get(body["order_id"], 0), (body["order_id"], event_id, seen)
        seen[body["order_id"]] = event_id


# ---------------------------------------------------------------- delivery
async def test_every_event_arrives_once_signed_and_in_order_with_two_dispatchers(
    stack: Stack, receiver: Receiver, hooks_db: str
) -> None:
    subscription = await subscribe(stack, f"{receiver.url}/hook/all")
    settings = hook_settings(hooks_db)
    pool_b = await create_pool(hooks_db, min_size=1, max_size=4)
    try:
        # The orders run to the end first: their events wait as one backlog, which the two
        # dispatchers then share, many on the wire at once.
        orders = await place_completed(stack, 4)
        async with dispatching(stack.pool, settings) as a, dispatching(pool_b, settings) as b:
            await eventually(
                lambda: all_in(stack.pool, subscription, orders, "delivered"),
                what="every event delivered",
            )
            # A few more rounds: nothing is sent again.
            await asyncio.sleep(0.3)
    finally:
        await pool_b.close()

    expected = await event_ids(stack.pool, orders)
    requests = receiver.of("all", orders)
    ids = [int(_json(r.body)["id"]) for r in requests]
    assert sorted(ids) == expected, "each event exactly once"
    assert all(r.answered == 200 for r in requests)
    assert a.delivered + b.delivered == len(await deliveries(stack.pool, subscription, orders))
    assert_in_order_per_order(requests)

    events = {
        r["id"]: r
        for r in await stack.pool.fetch(
            "SELECT id, order_id, kind, status FROM order_events WHERE order_id = ANY($1)",
            list(orders),
        )
    }
    now = int(time.time())
    status_so_far: dict[str, str] = {}
    for r in sorted(requests, key=lambda r: int(_json(r.body)["id"])):
        body = _json(r.body)
        assert set(body) == BODY_FIELDS
        assert r.headers[EVENT_ID_HEADER.lower()] == body["id"]
        assert r.headers["content-type"] == "application/json"
        signature = r.headers[SIGNATURE_HEADER.lower()]
        assert signature.startswith("v1=")
        assert verify(SECRET, r.body, r.headers[TIMESTAMP_HEADER.lower()], signature, now=now)
        assert not verify(
            "another-secret", r.body, r.headers[TIMESTAMP_HEADER.lower()], signature, now=now
        )
        event = events[int(body["id"])]
        assert (body["type"], body["order_id"]) == (event["kind"], event["order_id"])
        # `status` is the order's status as of the event.
        if event["status"] is not None:
            status_so_far[event["order_id"]] = event["status"]
        assert body["status"] == status_so_far.get(event["order_id"])
    assert {_json(r.body)["status"] for r in requests} >= {"RECEIVED", "COMPLETED"}

    # What operators see: delivered rows, one attempt each, and the secret only masked.
    listed = await stack.http(
        "GET", f"/webhooks/subscriptions/{subscription}/deliveries?limit=1000", role="admin"
    )
    assert listed.status_code == 200
    mine = [d for d in listed.json() if d["order_id"] in orders]
    assert len(mine) == len(expected)
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in mine)
    assert all(d["last_status_code"] == 200 for d in mine)
    subscriptions = await stack.http("GET", "/webhooks/subscriptions", role="admin")
    assert SECRET not in subscriptions.text
    (shown,) = [s for s in subscriptions.json() if s["id"] == subscription]
    assert shown["secret"] == "****" + SECRET[-4:]
    assert shown["deliveries"]["delivered"] >= len(expected)
    sealed = await stack.pool.fetchval(
        "SELECT secret_sealed FROM webhook_subscriptions WHERE id = $1", subscription
    )
    assert SECRET.encode() not in bytes(sealed)


async def test_a_failing_receiver_gets_retries_with_backoff_and_a_dead_one_delays_nobody(
    stack: Stack, receiver: Receiver, hooks_db: str
) -> None:
    receiver.fail["flaky"] = 3
    flaky = await subscribe(stack, f"{receiver.url}/hook/flaky")
    # Nothing listens there: every attempt is refused.
    down = await subscribe(stack, f"http://127.0.0.1:{free_port()}/hook/down")
    settings = hook_settings(hooks_db)
    async with dispatching(stack.pool, settings):
        # One order: only its earliest undelivered event is ever on the wire, so the three
        # refusals all fall on its first event.
        orders = await place_completed(stack, 1)
        await eventually(
            lambda: all_in(stack.pool, flaky, orders, "delivered"),
            what="every event delivered to the flaky receiver",
        )
        down_rows = await deliveries(stack.pool, down, orders)

    requests = receiver.of("flaky", orders)
    accepted = [int(_json(r.body)["id"]) for r in requests if r.answered == 200]
    assert sorted(accepted) == await event_ids(stack.pool, orders), "each accepted once"
    assert sum(r.answered == 500 for r in requests) == 3
    # Even the refused attempts come in order per order: a retry waits for nothing later.
    assert_in_order_per_order(requests)

    # The first event was refused three times, then taken: four attempts, growing waits.
    first = (await deliveries(stack.pool, flaky, orders))[0]
    assert first["attempts"] == 4
    detail = await stack.http("GET", f"/webhooks/deliveries/{first['id']}", role="admin")
    assert detail.status_code == 200
    log = detail.json()["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 500, 500, 200]
    assert all(a["latency_ms"] >= 0 for a in log)
    assert log[0]["error"].startswith("HTTP 500")
    times = [r.at for r in requests if _json(r.body)["id"] == str(first["event_id"])]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Backoff 0.1 s doubling: each wait at least as long as the policy says.
    assert [g >= w * 0.9 for g, w in zip(gaps, (0.1, 0.2, 0.4), strict=True)] == [True] * 3

    # The dead subscriber was tried all along, without holding the other one up.
    assert down_rows and all(r["status"] in ("pending", "sending") for r in down_rows)
    assert down_rows[0]["attempts"] >= 1
    error = await stack.pool.fetchval(
        "SELECT last_error FROM webhook_deliveries WHERE id = $1", down_rows[0]["id"]
    )
    assert error and "ConnectError" in error


async def test_dead_letters_after_the_max_age_and_a_retry_sends_them_once(
    stack: Stack, hooks_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    subscription = await subscribe(stack, f"http://127.0.0.1:{port}/hook/late")
    settings = hook_settings(hooks_db, webhook_max_age=timedelta(seconds=2))
    async with dispatching(stack.pool, settings) as dispatcher:
        orders = await place_completed(stack, 1)
        await eventually(
            lambda: all_in(stack.pool, subscription, orders, "dead"),
            what="every delivery dead-lettered",
        )
        rows = await deliveries(stack.pool, subscription, orders)
        assert rows[0]["attempts"] >= 2, "retried before it was given up"
        assert dispatcher.dead >= len(rows)

    # The receiver is up now; replays go through a dispatcher with the usual max age, so a
    # slow machine cannot dead-letter them again.
    async with receiving(port) as receiver, dispatching(stack.pool, hook_settings(hooks_db)):
        # A retry sends that one delivery, once; the other dead letters stay dead.
        retried = await stack.http(
            "POST", f"/webhooks/deliveries/{rows[0]['id']}/retry", role="admin"
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"

        async def first_delivered() -> bool:
            status = await stack.pool.fetchval(
                "SELECT status FROM webhook_deliveries WHERE id = $1", rows[0]["id"]
            )
            return bool(status == "delivered")

        await eventually(first_delivered, what="the retried delivery delivered")
        await asyncio.sleep(0.3)
        assert [_json(r.body)["id"] for r in receiver.received] == [str(rows[0]["event_id"])]
        assert (await deliveries(stack.pool, subscription, orders))[1]["status"] == "dead"
        again = await stack.http(
            "POST", f"/webhooks/deliveries/{rows[0]['id']}/retry", role="admin"
        )
        assert again.status_code == 409 and "not dead" in again.json()["detail"]

        # The command line replays the rest, oldest first.
        monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
        get_settings.cache_clear()
        try:
            result = await asyncio.to_thread(
                CliRunner().invoke,
                cli_app,
                ["webhooks", "retry", "--all-dead", str(subscription)],
            )
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        await eventually(
            lambda: all_in(stack.pool, subscription, orders, "delivered"),
            what="every dead letter delivered after the replay",
        )
        await asyncio.sleep(0.3)
        ids = [int(_json(r.body)["id"]) for r in receiver.received]
        assert sorted(ids) == await event_ids(stack.pool, orders), "each once"
        assert_in_order_per_order(receiver.received)


# ---------------------------------------------------------------- the API's rules
@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/hook", "secret": SECRET},
        {"url": "not a url", "secret": SECRET},
        {"secret": SECRET},
        {"url": "https://example.com/hook", "secret": "short"},
        {"url": "https://example.com/hook", "secret": SECRET, "events": []},
        {"url": "https://example.com/hook", "secret": SECRET, "events": ["no spaces"]},
    ],
)
async def test_invalid_subscriptions_are_422(stack: Stack, body: dict[str, Any]) -> None:
    response = await stack.http("POST", "/webhooks/subscriptions", role="admin", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_subscriptions_are_for_admins_and_unknown_ids_are_404(stack: Stack) -> None:
    body = {"url": "https://example.com/hook", "secret": SECRET}
    assert (await stack.http("POST", "/webhooks/subscriptions", json=body)).status_code == 403
    assert (await stack.http("GET", "/webhooks/subscriptions", role="raw")).status_code == 401
    for method, path in (
        ("DELETE", "/webhooks/subscriptions/999999"),
        ("GET", "/webhooks/subscriptions/999999/deliveries"),
        ("GET", "/webhooks/deliveries/999999"),
        ("POST", "/webhooks/deliveries/999999/retry"),
    ):
        response = await stack.http(method, path, role="admin")
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"]


async def test_a_generated_secret_is_shown_once_and_a_removed_subscription_gets_nothing(
    stack: Stack,
) -> None:
    created = await stack.http(
        "POST",
        "/webhooks/subscriptions",
        role="admin",
        json={"url": "https://erp.example.com/orderflow", "events": ["shipped", "*"]},
    )
    assert created.status_code == 201, created.text
    subscription, secret = created.json()["id"], created.json()["secret"]
    assert len(secret) >= 32
    listed = await stack.http("GET", "/webhooks/subscriptions", role="admin")
    (shown,) = [s for s in listed.json() if s["id"] == subscription]
    assert shown["events"] == ["*"] and shown["url"] == "https://erp.example.com/orderflow"
    assert secret not in listed.text

    removed = await stack.http("DELETE", f"/webhooks/subscriptions/{subscription}", role="admin")
    assert removed.status_code == 200 and removed.json() == {"id": subscription, "deleted": True}
    listed = await stack.http("GET", "/webhooks/subscriptions", role="admin")
    assert subscription not in [s["id"] for s in listed.json()]
    placed = order_json()
    assert (await stack.http("POST", "/orders", json=placed)).status_code == 202
    await wait_for_status(stack.pool, placed["order_id"], "COMPLETED")
    assert not await deliveries(stack.pool, subscription, {placed["order_id"]})
    again = await stack.http("DELETE", f"/webhooks/subscriptions/{subscription}", role="admin")
    assert again.status_code == 404


async def test_only_the_subscribed_event_types_are_queued(stack: Stack) -> None:
    subscription = await subscribe(stack, "https://crm.example.com/hook", ["order_completed"])
    orders = await place_completed(stack, 1)
    rows = await deliveries(stack.pool, subscription, orders)
    kinds = await stack.pool.fetch(
        "SELECT kind FROM order_events WHERE id = ANY($1::bigint[])", [r["event_id"] for r in rows]
    )
    assert [k["kind"] for k in kinds] == ["order_completed"]


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_the_command_line_adds_lists_and_removes(stack: Stack, cli: CliRunner) -> None:
    def run(*args: str) -> Any:
        return asyncio.to_thread(cli.invoke, cli_app, ["webhooks", *args])

    added = await run(
        "add", "https://bi.example.com/in", "--secret", SECRET, "--event", "order_completed"
    )
    assert added.exit_code == 0, added.output
    subscription = _json(added.output.encode())["id"]
    listed = await run("list", "--json")
    assert listed.exit_code == 0 and SECRET not in listed.output
    assert subscription in [s["id"] for s in _json(listed.output.encode())]
    shown = await run("deliveries", str(subscription), "--status", "dead")
    assert shown.exit_code == 0, shown.output
    bad = await run("add", "gopher://bi.example.com/in")
    assert bad.exit_code == 1 and "422" in bad.output
    removed = await run("remove", str(subscription))
    assert removed.exit_code == 0
    assert (await run("remove", str(subscription))).exit_code == 1


# ---------------------------------------------------------------- the repository
async def test_claims_hand_out_one_event_per_order_hold_the_rest_and_are_fenced(
    stack: Stack,
) -> None:
    (order_id,) = await place_completed(stack, 1)
    subscription = await subscribe(stack, "https://fence.example.com/hook")
    for n in range(3):
        await stack.pool.execute(
            """INSERT INTO order_events (order_id, event_key, step, kind, actor)
               VALUES ($1, $2, 8, $3, 'test')""",
            order_id,
            f"test.fence.{n}",
            f"test_fence_{n}",
        )

    async def claim() -> list[Any]:
        rows = await repo.claim_due(stack.pool, limit=50, lease_seconds=30)
        return [r for r in rows if r["subscription_id"] == subscription]

    async def followers() -> list[Any]:
        return list(
            await stack.pool.fetch(
                """SELECT next_attempt_at > now() AS held FROM webhook_deliveries
                   WHERE subscription_id = $1 AND event_type <> 'test_fence_0' ORDER BY id""",
                subscription,
            )
        )

    (head,) = await claim()
    assert head["event_type"] == "test_fence_0" and head["attempts"] == 1
    assert head["order_status"] == "COMPLETED", "the order's status as of the event"
    assert await claim() == [], "the next events wait while the first is on the wire"

    later = head["db_now"] + timedelta(hours=1)
    wrong = await repo.mark_failed(
        stack.pool,
        head["id"],
        uuid.uuid4(),
        status_code=500,
        error="x",
        latency_ms=1,
        next_attempt_at=later,
    )
    assert wrong is None, "only the holder of the lease records the outcome"
    failed = await repo.mark_failed(
        stack.pool,
        head["id"],
        head["lease_token"],
        status_code=503,
        error="HTTP 503",
        latency_ms=7,
        next_attempt_at=later,
    )
    assert failed is not None and failed["status"] == "pending"
    assert [f["held"] for f in await followers()] == [True, True]
    assert await claim() == []

    await stack.pool.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = $1", head["id"]
    )
    (again,) = await claim()
    assert (again["id"], again["attempts"]) == (head["id"], 2)
    assert await repo.mark_delivered(
        stack.pool, again["id"], again["lease_token"], status_code=204, latency_ms=3
    )
    assert not await repo.mark_delivered(
        stack.pool, again["id"], again["lease_token"], status_code=204, latency_ms=3
    ), "a delivery is marked delivered once"
    assert [f["held"] for f in await followers()] == [False, False]
    (second,) = await claim()
    assert second["event_type"] == "test_fence_1"
    assert await repo.release(stack.pool, [(second["id"], second["lease_token"])]) == 1
    row = await repo.get_delivery(stack.pool, second["id"])
    assert row is not None and (row["status"], row["attempts"]) == ("pending", 0)
    codes = [a["status_code"] for a in await repo.attempts_of(stack.pool, head["id"])]
    assert codes == [503, 204]


async def test_a_subscriber_with_a_backlog_of_retries_does_not_hold_back_another(
    stack: Stack,
) -> None:
    down = await subscribe(stack, "https://down.example.com/hook")
    answering = await subscribe(stack, "https://up.example.com/hook")
    await place_completed(stack, 6)
    # Every delivery of the one that is down has been due for an hour: a claim by age alone
    # would hand out only those.
    await stack.pool.execute(
        """UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 hour'
           WHERE subscription_id = $1""",
        down,
    )
    rows = await repo.claim_due(stack.pool, limit=6, lease_seconds=30)
    # One earliest event per order and subscription is claimable: six each. They take turns.
    claimed = Counter(r["subscription_id"] for r in rows)
    assert claimed == {down: 3, answering: 3}, claimed


async def test_an_event_queued_behind_a_retry_is_not_due_before_it(stack: Stack) -> None:
    (order_id,) = await place_completed(stack, 1)
    subscription = await subscribe(stack, "https://behind.example.com/hook")

    async def add_event(n: int) -> None:
        await stack.pool.execute(
            """INSERT INTO order_events (order_id, event_key, step, kind, actor)
               VALUES ($1, $2, 8, $3, 'test')""",
            order_id,
            f"test.behind.{n}",
            f"test_behind_{n}",
        )

    async def due_now(kind: str) -> bool:
        due: bool = await stack.pool.fetchval(
            """SELECT next_attempt_at <= now() FROM webhook_deliveries
               WHERE subscription_id = $1 AND event_type = $2""",
            subscription,
            kind,
        )
        return due

    async def claim() -> Any:
        (row,) = [
            r
            for r in await repo.claim_due(stack.pool, limit=50, lease_seconds=30)
            if r["subscription_id"] == subscription
        ]
        return row

    await add_event(0)
    head = await claim()
    # Queued while the first is on the wire: due, and handed out once that one is through.
    await add_event(1)
    assert await due_now("test_behind_1")
    retry_at = head["db_now"] + timedelta(hours=1)
    assert await repo.mark_failed(
        stack.pool,
        head["id"],
        head["lease_token"],
        status_code=503,
        error="HTTP 503",
        latency_ms=5,
        next_attempt_at=retry_at,
    )
    # Queued while the first waits out its retry: not due before it (nor scanned).
    await add_event(2)
    assert not await due_now("test_behind_1") and not await due_now("test_behind_2")
    await stack.pool.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = $1", head["id"]
    )
    again = await claim()
    assert again["id"] == head["id"]
    assert await repo.mark_delivered(
        stack.pool, again["id"], again["lease_token"], status_code=204, latency_ms=3
    )
    assert await due_now("test_behind_1") and await due_now("test_behind_2")


async def test_claims_serve_first_the_subscription_with_least_on_the_wire(stack: Stack) -> None:
    down = await subscribe(stack, "https://slow.example.com/hook")
    answering = await subscribe(stack, "https://quick.example.com/hook")
    await place_completed(stack, 4)
    await stack.pool.execute(
        """UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 hour'
           WHERE subscription_id = $1""",
        down,
    )
    # A dispatcher with a round's worth of the slow one's deliveries still on the wire asks
    # for one more: the other's comes first, however old the slow one's are.
    rows = await repo.claim_due(stack.pool, limit=1, lease_seconds=30, busy={down: 3})
    assert [r["subscription_id"] for r in rows] == [answering]
    rows = await repo.claim_due(stack.pool, limit=1, lease_seconds=30)
    assert [r["subscription_id"] for r in rows] == [down], "with nothing on the wire: oldest"


async def test_first_attempts_go_before_any_retry(stack: Stack) -> None:
    down = await subscribe(stack, "https://retried.example.com/hook")
    answering = await subscribe(stack, "https://fresh.example.com/hook")
    await place_completed(stack, 3)
    # The one that is down: every delivery tried twice already, due again for an hour.
    await stack.pool.execute(
        """UPDATE webhook_deliveries SET attempts = 2, next_attempt_at = now() - interval '1 hour'
           WHERE subscription_id = $1""",
        down,
    )
    rows = await repo.claim_due(stack.pool, limit=3, lease_seconds=30)
    assert [r["subscription_id"] for r in rows] == [answering] * 3
    rows = await repo.claim_due(stack.pool, limit=3, lease_seconds=30)
    assert [r["subscription_id"] for r in rows] == [down] * 3, "retries take what is left"
