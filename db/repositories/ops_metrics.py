"""The reads behind the workers' operational gauges: outbox lag, orders by status, and what
waits on each department. Cheap aggregate queries, run every few seconds by each worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

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
class QueueDepth:
    waiting: int
    overdue: int


def _readers(
    settings: Settings, department: str
) -> dict[str, Callable[[queues.Conn], Awaitable[list[asyncpg.Record]]]]:
    # The same queues as GET /departments/{department}/queue reads.
    policy = settings.order_policy
    return {
        "review_task": queues.review_tasks,
        "pick_task": queues.pick_tasks,
        "purchase_request": lambda c: queues.purchase_requests(c, settings.purchase_request_sla),
        "follow_up": lambda c: queues.follow_ups(c, policy.followup_interval),
        "feedback_ticket": lambda c: queues.feedback_tickets(c, department, settings.feedback_sla),
        "failed_mail": lambda c: queues.failed_mails(c, settings.failed_mail_sla),
        "unprocessable_order": lambda c: queues.unprocessable_orders(
            c, settings.unprocessable_order_sla
        ),
        "payment_problem": lambda c: queues.payment_problems(c, settings.payment_problem_sla),
        "payment_dispute": lambda c: queues.payment_disputes(c, settings.payment_dispute_sla),
    }


async def department_queue_depths(conn: queues.Conn, settings: Settings) -> dict[str, QueueDepth]:
    """Per department code: items waiting on it now, and how many of them are overdue."""
    depths: dict[str, QueueDepth] = {}
    for dep in DEPARTMENTS:
        readers = _readers(settings, dep.code)
        waiting = overdue = 0
        for kind in dep.queues:
            for row in await readers[kind](conn):
                waiting += 1
                overdue += row["now"] > row["due_at"]
        depths[dep.code] = QueueDepth(waiting, overdue)
    return depths
