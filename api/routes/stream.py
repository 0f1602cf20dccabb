"""Live order events as server-sent events, fed by PostgreSQL LISTEN/NOTIFY.

A trigger on `order_events` announces every new event on the channel `order_events` when
its transaction commits (db/migrations/003_kpi.sql). Each API process holds ONE listening
connection (`EventHub`) and fans the events out to its streams through asyncio queues:

- `GET /orders/{order_id}/events/stream`: one order's events, for its customer (access
  token) and operators; the order's history first, then live.
- `GET /events/stream`: every order's events, live, for operators.

A stream resumes after `Last-Event-ID` from the table, sends a keep-alive comment when idle
(`stream_keepalive_seconds`) and ends after `stream_max_seconds` (clients reconnect). A
subscriber that falls too far behind, or a lost listening connection, ends its stream too:
reconnecting with Last-Event-ID fills the gap from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.responses import StreamingResponse

from api.auth import OPERATORS, Principal, require
from api.deps import order_status_or_404, pool_of, settings_of
from db.repositories import queues
from orderflow.models import Step

log = logging.getLogger("orderflow.api.stream")

CHANNEL = "order_events"
# Operators of the shop; the storefront's machine token watches no shop-wide stream.
STAFF = ("reviewer", "warehouse", "purchasing", "logistics", "admin")
_REPLAY_LIMIT = 5000


@dataclass(eq=False)
class Subscription:
    order_id: str | None
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def wants(self, event: dict[str, Any]) -> bool:
        return self.order_id is None or self.order_id == event.get("order_id")


class EventHub:
    """One LISTEN connection, fanned out to any number of subscribers."""

    def __init__(
        self, pool: asyncpg.Pool, *, queue_size: int = 2000, retry_seconds: float = 1.0
    ) -> None:
        self._pool = pool
        self._queue_size = queue_size
        self._retry_seconds = retry_seconds
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end_all()

    @contextlib.contextmanager
    def subscribe(self, order_id: str | None) -> Iterator[Subscription]:
        sub = Subscription(order_id, asyncio.Queue(maxsize=self._queue_size))
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event listener lost (%s); reconnecting", exc)
            await asyncio.sleep(self._retry_seconds)

    async def _listen_once(self) -> None:
        conn: asyncpg.Connection = await self._pool.acquire()
        lost = asyncio.Event()

        def on_lost(_: Any) -> None:
            lost.set()

        conn.add_termination_listener(on_lost)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            self.listening.set()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=30)
                if not lost.is_set():
                    # A dead peer is noticed only on use: ask now and then.
                    await conn.execute("SELECT 1", timeout=10)
        finally:
            self.listening.clear()
            # Events may have been missed: streams end, clients resume from the table.
            self._end_all()
            conn.remove_termination_listener(on_lost)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.remove_listener(CHANNEL, self._on_notify), 5)
            with contextlib.suppress(Exception):
                await self._pool.release(conn, timeout=5)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("unreadable notification on %s: %.200s", CHANNEL, payload)
            return
        for sub in list(self._subscribers):
            if not sub.wants(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # Too slow a reader: drop its backlog and end its stream (it resumes).
                self._end(sub)

    def _end(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    def _end_all(self) -> None:
        for sub in list(self._subscribers):
            self._end(sub)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub = EventHub(app.state.pool)
    app.state.event_hub = hub
    await hub.start()
    try:
        yield
    finally:
        await hub.stop()


router = APIRouter(tags=["live view"], lifespan=lifespan)


def hub_of(request: Request) -> EventHub:
    hub: EventHub = request.app.state.event_hub
    return hub


def _event_json(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    at = row["occurred_at"]
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "step": row["step"],
        "step_name": Step(row["step"]).label,
        "status": row["status"],
        "kind": row["kind"],
        "actor": row["actor"],
        "at": at.isoformat() if isinstance(at, datetime) else at,
        "details": row["details"],
    }


def _frame(event: dict[str, Any]) -> str:
    return f"id: {event['id']}\nevent: order_event\ndata: {json.dumps(event)}\n\n"


def _last_id(header: str | None) -> int:
    if header is None:
        return 0
    try:
        return max(int(header.strip()), 0)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "Last-Event-ID must be an event id"
        ) from exc


async def _stream(
    request: Request, *, order_id: str | None, after_id: int, replay: bool
) -> AsyncIterator[str]:
    pool, settings, hub = pool_of(request), settings_of(request), hub_of(request)
    deadline = time.monotonic() + settings.stream_max_seconds
    with hub.subscribe(order_id) as sub:
        yield f"retry: 2000\n: listening for {'order ' + order_id if order_id else 'all orders'}\n\n"
        replayed: set[int] = set()
        if replay:
            rows = (
                await queues.order_events_after(
                    pool, order_id, after_id=after_id, limit=_REPLAY_LIMIT
                )
                if order_id is not None
                else await queues.shop_events_after(pool, after_id=after_id, limit=_REPLAY_LIMIT)
            )
            for row in rows:
                replayed.add(row["id"])
                yield _frame(_event_json(row))
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(
                    sub.queue.get(), timeout=min(settings.stream_keepalive_seconds, left)
                )
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return
            if event["id"] in replayed or event["id"] <= after_id:
                continue
            if "details" not in event:
                event["details"] = await queues.event_details(pool, event["id"]) or {}
            yield _frame(_event_json(event))


def _sse(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/orders/{order_id}/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def order_event_stream(
    order_id: str,
    request: Request,
    _: Annotated[Principal, Depends(require(*OPERATORS, customer=True))],
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The order's events as server-sent events (`event: order_event`, JSON data): its
    history first (or what followed `Last-Event-ID`), then each new event as it happens."""
    after = _last_id(last_event_id)
    await order_status_or_404(pool_of(request), order_id)
    return _sse(_stream(request, order_id=order_id, after_id=after, replay=True))


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def shop_event_stream(
    request: Request,
    _: Annotated[Principal, Depends(require(*STAFF))],
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Every order's events as they happen (after `Last-Event-ID` first, when sent)."""
    after = _last_id(last_event_id)
    return _sse(_stream(request, order_id=None, after_id=after, replay=after > 0))
