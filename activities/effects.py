"""How an activity writes its effect: once, in one transaction with its event, the order's
new status and the notices it sends.

An activity names its event (`OrderEvent`) and claims its key. The claim records the event
and moves the order's status; only the call that recorded it gets a `Claim` back: it applies
the effect and queues the notices on `claimed.conn`, inside the same transaction. A retried
activity finds the key taken, gets None and changes nothing: effect, event, status and
notices happen together exactly once, or not at all.

    event = OrderEvent(order_id, "review.escalated", Step.REVIEW, "review_escalated")
    async with self._effects.claim(event) as claimed:
        if claimed is None:
            return  # an earlier attempt recorded it, with its effect
        await reviews.escalate(claimed.conn, order_id, at=claimed.at)
        await claimed.notify_department(
            department="risk_supervisor",
            key=f"{order_id}:review_escalated",
            kind="review_escalated",
        )

`claim` opens a transaction of its own. An activity that must read or lock in the same
transaction before it knows its event opens the transaction itself and calls `claim_in`.
Calls to outside services (a carrier's API) stay outside the transaction: they cannot be
rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db.repositories import events, notifications
from orderflow.settings import Settings


@dataclass(frozen=True)
class OrderEvent:
    """An entry of the order's timeline. `key` is unique per order: recorded at most once.

    `status`, when set, becomes the order's status as the event is recorded.
    """

    order_id: str
    key: str
    step: int
    kind: str
    status: str | None = None
    actor: str = "system"
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Claim:
    """This call recorded the event: apply its effect on `conn`, in the event's transaction."""

    conn: asyncpg.Connection
    # When the event was recorded: the effect's own timestamps use it.
    at: datetime
    order_id: str
    settings: Settings

    async def email_customer(
        self, *, key: str, kind: str, context: Mapping[str, Any] | None = None
    ) -> bool:
        """Queue an e-mail of `kind` to the order's customer, once per `key`."""
        return await notifications.email_customer(
            self.conn, self.settings, key=key, order_id=self.order_id, kind=kind, context=context
        )

    async def notify_department(
        self, *, department: str, key: str, kind: str, context: Mapping[str, Any] | None = None
    ) -> bool:
        """Queue a notice of `kind` about the order to a department's lead, once per `key`."""
        return await notifications.notify_department(
            self.conn,
            department=department,
            key=key,
            order_id=self.order_id,
            kind=kind,
            context=context,
        )


class Effects:
    """Claims order events for one activity group's pool and settings."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    @asynccontextmanager
    async def claim(self, event: OrderEvent) -> AsyncIterator[Claim | None]:
        """Open a transaction and claim `event` in it: a `Claim` when this call recorded the
        event, None when it was recorded before. The transaction commits when the block ends
        and rolls back, event included, when the block raises."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield await self.claim_in(conn, event)

    async def claim_in(self, conn: asyncpg.Connection, event: OrderEvent) -> Claim | None:
        """Claim `event` on a connection already inside the effect's transaction."""
        at = await events.record_event(
            conn,
            order_id=event.order_id,
            event_key=event.key,
            step=event.step,
            kind=event.kind,
            actor=event.actor,
            status=event.status,
            details=event.details,
        )
        if at is None:
            return None
        return Claim(conn=conn, at=at, order_id=event.order_id, settings=self._settings)


class OrderActivities:
    """An activity group that writes order effects: `self._effects` claims its events."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._effects = Effects(pool, settings)
