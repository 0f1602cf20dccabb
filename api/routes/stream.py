"""Live order events as server-sent events, fed by PostgreSQL LISTEN/NOTIFY.

A trigger on `order_events` announces each new event on the channel `order_events` when
its transaction commits (db/migrations/003_kpi.sql, 007_live_listeners.sql). Each API
process holds ONE listening connection (`EventHub`) and fans the events out to its streams
through asyncio queues:

- `GET /orders/{order_id}/events/stream`: one order's events, for its customer (access
  token) and operators; the order's history first, then live.
- `GET /events/stream`: every order's events, live, for operators.

NOTIFY costs every committing transaction group commit, so the trigger announces events
only while some API process has a stream open: the hub registers itself in
`live_event_listeners` on its first subscriber, renews while streams are open (and for a
few minutes after the last one), and the order path pays nothing when nobody watches.

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
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.responses import StreamingResponse

from api.auth import CUSTOMER, OPERATORS, Principal, require
from api.customer_view import customer_details
from api.deps import order_status_or_404, pool_of, settings_of
from api.limits import StreamSlot, StreamWithSlot, limits_of
from db.repositories import queues
from orderflow.models import Step
from orderflow.redact import mask_addresses

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
        self,
        pool: asyncpg.Pool,
        *,
        queue_size: int = 2000,
        retry_seconds: float = 1.0,
        registration_ttl: timedelta = timedelta(seconds=60),
        linger: timedelta = timedelta(minutes=5),
    ) -> None:
        self._pool = pool
        self._queue_size = queue_size
        self._retry_seconds = retry_seconds
        self._subscribers: set[Subscription] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()
        # The trigger announces events only while a listener is registered (migration 007).
        self.listener_id = f"api-{uuid.uuid4().hex}"
        self._ttl = registration_ttl
        self._linger = linger.total_seconds()
        self._registered_until = 0.0  # monotonic time our registration lasts to
        self._last_subscriber_at = 0.0
        self._register_lock = asyncio.Lock()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="event-hub-listen"),
            asyncio.create_task(self._keep_registered(), name="event-hub-register"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._end_all()
        with contextlib.suppress(Exception):
            await queues.unregister_listener(self._pool, self.listener_id)

    @contextlib.asynccontextmanager
    async def subscribe(self, order_id: str | None) -> AsyncIterator[Subscription]:
        """A subscription to new events (of one order, or all); events committed from
        when this returns are delivered."""
        sub = Subscription(order_id, asyncio.Queue(maxsize=self._queue_size))
        self._subscribers.add(sub)
        try:
            await self._ensure_registered()
            async with asyncio.timeout(10):
                await self.listening.wait()
            yield sub
        finally:
            self._subscribers.discard(sub)
            self._last_subscriber_at = time.monotonic()

    async def _ensure_registered(self) -> None:
        async with self._register_lock:
            # Renewed ahead of expiry by _keep_registered; register anew when lapsed.
            if time.monotonic() < self._registered_until - self._ttl.total_seconds() / 2:
                return
            async with self._pool.acquire() as conn:
                xid = await queues.register_listener(conn, self.listener_id, self._ttl)
                self._registered_until = time.monotonic() + self._ttl.total_seconds()
                # Transactions that checked for listeners before we registered may still
                # commit unannounced: wait for them (they are short), at most a second.
                for _ in range(50):
                    if await queues.transactions_before_finished(conn, xid):
                        break
                    await asyncio.sleep(0.02)

    async def _keep_registered(self) -> None:
        interval = self._ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                lingering = time.monotonic() - self._last_subscriber_at < self._linger
                if self._subscribers or lingering:
                    self._registered_until = 0.0
                    await self._ensure_registered()
                elif self._registered_until:
                    # Nobody watches: stop the announcements, the order path runs free.
                    self._registered_until = 0.0
                    await queues.unregister_listener(self._pool, self.listener_id)
            except Exception as exc:
                log.warning("live listener registration failed (%s); retrying", exc)

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
            log.warning("unreadable notification on %s: %.200s", CHANNEL, mask_addresses(payload))
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


def _frame(event: dict[str, Any], *, customer: bool = False) -> str:
    if customer:
        # The customer's stream tells the same events without the shop's risk review.
        event = {
            **event,
            "details": customer_details(
                step=event["step"],
                kind=event["kind"],
                status=event["status"],
                details=event["details"],
            ),
        }
    return f"id: {event['id']}\nevent: order_event\ndata: {json.dumps(event)}\n\n"


# Event ids are PostgreSQL bigints: a larger "id" could never be compared in SQL.
_MAX_EVENT_ID = 2**63 - 1


def _last_id(header: str | None) -> int:
    """The event id a stream resumes after; 422 before the stream starts for anything but
    an event id (ASCII digits, within bigint)."""
    if header is None:
        return 0
    value = header.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_EVENT_ID:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"Last-Event-ID must be an event id (a whole number from 0 to {_MAX_EVENT_ID})",
        )
    return int(value)


async def _stream(
    request: Request, *, order_id: str | None, after_id: int, replay: bool, customer: bool = False
) -> AsyncIterator[str]:
    pool, settings, hub = pool_of(request), settings_of(request), hub_of(request)
    deadline = time.monotonic() + settings.stream_max_seconds
    async with hub.subscribe(order_id) as sub:
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
                yield _frame(_event_json(row), customer=customer)
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
            yield _frame(_event_json(event), customer=customer)


def _sse(body: AsyncIterator[str], slot: StreamSlot) -> StreamingResponse:
    # The slot counts against the caller's and the server's caps until the stream ends.
    return StreamWithSlot(
        body,
        slot=slot,
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
    who: Annotated[Principal, Depends(require(*OPERATORS, customer=True))],
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The order's events as server-sent events (`event: order_event`, JSON data): its
    history first (or what followed `Last-Event-ID`), then each new event as it happens."""
    after = _last_id(last_event_id)
    await order_status_or_404(request, order_id)
    slot = limits_of(request).open_stream(who.actor)
    return _sse(
        _stream(
            request,
            order_id=order_id,
            after_id=after,
            replay=True,
            customer=who.role == CUSTOMER,
        ),
        slot,
    )


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def shop_event_stream(
    request: Request,
    who: Annotated[Principal, Depends(require(*STAFF))],
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Every order's events as they happen (after `Last-Event-ID` first, when sent)."""
    after = _last_id(last_event_id)
    slot = limits_of(request).open_stream(who.actor)
    return _sse(_stream(request, order_id=None, after_id=after, replay=after > 0), slot)
