"""Live event streams on the real stack: server-sent events fed by LISTEN/NOTIFY, read with
httpx streaming, for the customer and for operators."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.pool import connect
from orderflow.models import OrderPolicy
from stack.supervisor import free_port
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


class SseReader:
    """Frames of one server-sent event stream: events (dicts) and comments."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next_frame(self, timeout: float = 20.0) -> dict[str, str] | None:
        """The next frame (fields by name); None when the server ended the stream."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if fields:
                        return fields
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    fields.setdefault("comment", line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        return None

    async def next_event(self, timeout: float = 20.0) -> dict[str, Any]:
        while True:
            frame = await self.next_frame(timeout)
            assert frame is not None, "the stream ended"
            if frame.get("event") == "order_event":
                event = json.loads(frame["data"])
                assert str(event["id"]) == frame["id"]
                return dict(event)

    async def events_until(self, kind: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while not seen or seen[-1]["kind"] != kind:
                seen.append(await self.next_event(timeout))
        return seen


@contextlib.asynccontextmanager
async def sse(
    stack: Stack, path: str, *, token: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SseReader]:
    async with stack.api.stream(
        "GET",
        path,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        timeout=httpx.Timeout(30, read=60),
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def _db_events(stack: Stack, order_id: str) -> list[tuple[int, str]]:
    rows = await stack.pool.fetch(
        "SELECT id, kind FROM order_events WHERE order_id = $1 ORDER BY id", order_id
    )
    return [(r["id"], r["kind"]) for r in rows]


async def _listeners(stack: Stack) -> int:
    return int(
        await stack.pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND query = 'LISTEN "order_events"'"""
        )
    )


async def test_customer_and_operator_see_the_same_live_events(stack: Stack) -> None:
    body = order_json(payment_status="failed")
    order_id = body["order_id"]
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202
    customer_token = placed.json()["access_token"]
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")

    path = f"/orders/{order_id}/events/stream"
    async with (
        sse(stack, path, token=customer_token) as customer,
        sse(stack, path, token=stack.settings.token_for("reviewer")) as reviewer,
    ):
        # History first: what happened before the page opened.
        history = await customer.events_until("review_flagged")
        assert [e["status"] for e in history if e["status"]] == [
            "RECEIVED",
            "CLASSIFIED",
            "PENDING_REVIEW",
        ]
        assert all(e["order_id"] == order_id for e in history)
        # The risk review is the shop's: its customer sees that it happened, not its why.
        assert history[-1]["details"] == {}

        decided = await stack.http(
            "POST",
            f"/reviews/{order_id}/decision",
            role="reviewer",
            json={"decision": "approve", "note": "known customer"},
        )
        assert decided.status_code == 200, decided.text
        live = await customer.events_until("order_completed")
        approval = next(e for e in live if e["kind"] == "review_approved")
        assert approval["status"] == "APPROVED" and "note" not in approval["details"]
        assert approval["details"]["decision"] == "approve"
        assert approval["step_name"] == "review"

        seen_by_reviewer = await reviewer.events_until("order_completed")
        # Operators see the details: the score and reasons, and the reviewer's note.
        by_kind = {e["kind"]: e for e in seen_by_reviewer}
        assert by_kind["review_flagged"]["details"]["flagged"] is True
        assert by_kind["review_approved"]["details"]["note"] == "known customer"
        seen_by_customer = history + live
        assert [e["id"] for e in seen_by_reviewer] == [e["id"] for e in seen_by_customer]
        assert [(e["id"], e["kind"]) for e in seen_by_customer] == await _db_events(stack, order_id)
        # Two streams open, one listening connection.
        assert await _listeners(stack) == 1


async def test_shop_wide_stream_for_operators(stack: Stack) -> None:
    async with sse(stack, "/events/stream", token=stack.settings.token_for("logistics")) as shop:
        first = order_json()
        second = order_json()
        for body in (first, second):
            assert (await stack.http("POST", "/orders", json=body)).status_code == 202
        completed: set[str] = set()
        kinds: dict[str, list[str]] = {first["order_id"]: [], second["order_id"]: []}
        async with asyncio.timeout(60):
            while completed != set(kinds):
                event = await shop.next_event()
                if event["order_id"] in kinds:
                    kinds[event["order_id"]].append(event["kind"])
                    if event["kind"] == "order_completed":
                        completed.add(event["order_id"])
    for order_id, seen in kinds.items():
        assert seen == [k for _, k in await _db_events(stack, order_id)]


async def test_resume_after_last_event_id(stack: Stack) -> None:
    body = order_json()
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    stored = await _db_events(stack, order_id)
    path = f"/orders/{order_id}/events/stream"
    admin = stack.settings.token_for("admin")
    async with sse(stack, path, token=admin, headers={"Last-Event-ID": str(stored[2][0])}) as s:
        rest = [await s.next_event() for _ in stored[3:]]
    assert [(e["id"], e["kind"]) for e in rest] == stored[3:]

    # The shop-wide stream replays after Last-Event-ID too.
    async with sse(
        stack, "/events/stream", token=admin, headers={"Last-Event-ID": str(stored[-2][0])}
    ) as shop:
        replayed = await shop.next_event()
    assert replayed["id"] > stored[-2][0]


async def test_stream_access(stack: Stack) -> None:
    body = order_json()
    placed = await stack.http("POST", "/orders", json=body)
    other = await stack.http("POST", "/orders", json=order_json())
    order_id = body["order_id"]
    await wait_for_status(stack.pool, order_id, "COMPLETED", "SHIPPED", "DELIVERED")

    async def status_of(path: str, token: str | None, **headers: str) -> int:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        async with stack.api.stream("GET", path, headers={**auth, **headers}) as response:
            return response.status_code

    own = f"/orders/{order_id}/events/stream"
    assert await status_of(own, None) == 401
    assert await status_of(own, other.json()["access_token"]) == 403
    assert await status_of("/events/stream", placed.json()["access_token"]) == 403
    assert await status_of("/events/stream", stack.settings.token_for("storefront")) == 403
    assert await status_of("/orders/NO-SUCH-ORDER/events/stream", "dev-admin") == 404
    assert await status_of(own, "dev-admin", **{"Last-Event-ID": "abc"}) == 422
    # Beyond a bigint, or not plain digits: refused before the stream starts.
    for beyond in (str(2**63), str(10**30), "1_000", "-5"):
        assert await status_of(own, "dev-admin", **{"Last-Event-ID": beyond}) == 422, beyond
        assert await status_of("/events/stream", "dev-admin", **{"Last-Event-ID": beyond}) == 422
    assert await status_of(own, "dev-admin", **{"Last-Event-ID": str(2**63 - 1)}) == 200


async def test_keep_alive_bounded_lifetime_and_disconnect(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"stream_keepalive_seconds": 0.2, "stream_max_seconds": 1.5}
    )
    port = free_port()
    app = create_app(settings, pool=stack.pool, storefront=stack.storefront)
    headers = {"Authorization": "Bearer dev-admin"}
    async with (
        serve(app, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        hub = app.state.event_hub
        registered = "SELECT expires_at > now() FROM live_event_listeners WHERE listener_id = $1"
        async with client.stream("GET", "/events/stream", headers=headers) as r:
            assert r.status_code == 200
            reader = SseReader(r)
            frames = [await reader.next_frame()]
            assert hub.subscribers == 1
            # An open stream registers its API process, so the trigger announces events.
            assert await stack.pool.fetchval(registered, hub.listener_id) is True
            while (frame := await reader.next_frame(timeout=10)) is not None:
                frames.append(frame)
            # A keep-alive comment on every idle interval, then the server ends the stream.
            assert reader.comments.count("keep-alive") >= 3
            assert frames[0] is not None and "retry" in frames[0]
            assert hub.listening.is_set()
        assert hub.subscribers == 0

        # A client that goes away ends its subscription.
        async with client.stream("GET", "/events/stream", headers=headers) as r:
            assert await SseReader(r).next_frame() is not None
            assert hub.subscribers == 1
        for _ in range(100):
            if hub.subscribers == 0:
                break
            await asyncio.sleep(0.05)
        assert hub.subscribers == 0
    # A stopped API leaves no registration behind.
    assert await stack.pool.fetchval(registered, hub.listener_id) is None


async def test_events_are_announced_only_while_someone_watches(stack: Stack) -> None:
    body = order_json()
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    listener = await connect(stack.database_url)
    heard: list[str] = []
    await listener.add_listener("order_events", lambda *args: heard.append(args[-1]))

    async def append_event(key: str) -> None:
        await stack.pool.execute(
            """INSERT INTO order_events (order_id, event_key, step, kind, actor)
               VALUES ($1, $2, 8, 'test_note', 'test')""",
            order_id,
            key,
        )
        await asyncio.sleep(0.3)

    try:
        # Nobody registered (the API's own registrations lapsed): no NOTIFY, no cost.
        await stack.pool.execute(
            "UPDATE live_event_listeners SET expires_at = now() - interval '1 second'"
        )
        await append_event("test.unwatched")
        assert heard == []
        await stack.pool.execute(
            """INSERT INTO live_event_listeners (listener_id, expires_at)
               VALUES ('test-watcher', now() + interval '1 minute')"""
        )
        await append_event("test.watched")
        assert len(heard) == 1 and json.loads(heard[0])["kind"] == "test_note"
    finally:
        await stack.pool.execute(
            "DELETE FROM live_event_listeners WHERE listener_id = 'test-watcher'"
        )
        await listener.close()
