"""The reads behind the workers' operational gauges: outbox lag, orders by status, and what
waits on each department. Cheap aggregate queries, run every few seconds by each worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from db.repositories import queues
from orderflow.process import DEPARTMENTS
from orderflow.settings import Settings


@dataclass(frozen=True)
class OutboxLag:
    due: int  # pending rows whose time has come, plus sending rows whose lease ran out
    oldest_due_seconds: float  # how long the oldest of them has been due; 0 when none
    failed: int  # given up on, waiting for an admin's retry


async def outbox_lag(conn: queues.Conn) -> OutboxLag:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status IN ('pending', 'sending')
                                   AND next_attempt_at <= now()) AS due,
                  coalesce(extract(epoch FROM now() - min(next_attempt_at)
                           FILTER (WHERE status IN ('pending', 'sending')
                                   AND next_attempt_at <= now())), 0)::float8 AS oldest,
                  count(*) FILTER (WHERE status = 'failed') AS failed
           FROM notifications
           WHERE status IN ('pending', 'sending', 'failed')"""
    )
    assert row is not None
    return OutboxLag(int(row["due"]), float(row["oldest"]), int(row["failed"]))


async def orders_by_status(conn: queues.Conn) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM orders GROUP BY status")
    return {row["status"]: int(row["n"]) for row in rows}


@dataclass(frozen=True)
class StatusLatency:
    """How long orders took from receipt to a status they reached in the window."""

    orders: int
    p50_seconds: float
    p95_seconds: float


async def status_latencies(conn: queues.Conn, window: timedelta) -> dict[str, StatusLatency]:
    """Per status reached within `window`: orders, p50 and p95 of received → reached."""
    rows = await conn.fetch(
        """SELECT e.status, count(*) AS n,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY x.seconds) AS p50,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY x.seconds) AS p95
           FROM order_events e
           JOIN orders o ON o.order_id = e.order_id
           CROSS JOIN LATERAL (SELECT greatest(extract(epoch FROM e.occurred_at
                                               - coalesce(o.received_at, o.placed_at)), 0)
                                      ::float8 AS seconds) x
           WHERE e.status IS NOT NULL AND e.occurred_at >= now() - $1::interval
           GROUP BY e.status""",
        window,
    )
    return {r["status"]: StatusLatency(int(r["n"]), float(r["p50"]), float(r["p95"])) for r in rows}


@dataclass(frozen=True)
class QueueDepth:
    waiting: int
    overdue: int


async def department_queue_depths(conn: queues.Conn, settings: Settings) -> dict[str, QueueDepth]:
    """Per department code: items waiting on it now, and how many of them are overdue."""
    depths: dict[str, QueueDepth] = {}
    for dep in DEPARTMENTS:
        readers = queues.readers(settings, dep.code)
        waiting = overdue = 0
        for kind in queues.kinds_of(dep.queues):
            for row in await readers[kind](conn):
                waiting += 1
                overdue += row["now"] > row["due_at"]
        depths[dep.code] = QueueDepth(waiting, overdue)
    return depths
