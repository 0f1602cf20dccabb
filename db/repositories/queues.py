"""The shared view's reads: what waits on each department now, the times stuck orders
entered their status, and order events after a given one (live streams resuming).

Every queue query returns the same columns, oldest first: `ref` (the item's own id),
`order_id`, `status`, `waiting_since`, `due_at` (when its SLA runs out), `now` (the
database's clock, so waits are measured on one clock) and `details` (jsonb).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeAlias

import asyncpg

from db.repositories import process_issues
from orderflow.settings import Settings

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
QueueReader: TypeAlias = Callable[[Conn], Awaitable[list[asyncpg.Record]]]


def readers(settings: Settings, department: str) -> dict[str, QueueReader]:
    """Each kind of queue item (orderflow/process.py `Department.queues`) and how to read
    what waits of it on `department` now, with the service level that applies."""
    policy = settings.order_policy
    return {
        "review_task": review_tasks,
        "pick_task": pick_tasks,
        "purchase_request": lambda c: purchase_requests(c, settings.purchase_request_sla),
        "follow_up": lambda c: follow_ups(c, policy.followup_interval),
        "feedback_ticket": lambda c: feedback_tickets(c, department, settings.feedback_sla),
        "failed_mail": lambda c: failed_mails(c, settings.failed_mail_sla),
        "unprocessable_order": lambda c: unprocessable_orders(c, settings.unprocessable_order_sla),
        "payment_problem": lambda c: payment_problems(c, settings.payment_problem_sla),
        "payment_dispute": lambda c: payment_disputes(c, settings.payment_dispute_sla),
        "channel_exception": lambda c: channel_exceptions(c, settings.channel_exception_sla),
        "return_decision": lambda c: return_decisions(c, settings.return_decision_sla),
        "return_inspection": lambda c: return_inspections(c, settings.return_policy.inspection_sla),
        "pre_order": pre_orders,
        "process_issue": lambda c: process_issues.waiting_on(
            c,
            department,
            {
                "high": settings.process_issue_sla_high,
                "medium": settings.process_issue_sla_medium,
                "low": settings.process_issue_sla_low,
            },
        ),
    }


# Kinds every department's queue has besides its own (`Department.queues`): any step may
# meet a difficulty, and the department that owns it answers.
EVERY_DEPARTMENT = ("process_issue",)


def kinds_of(queues: tuple[str, ...]) -> tuple[str, ...]:
    """The kinds of queue items of a department whose own kinds are `queues`."""
    return (*queues, *EVERY_DEPARTMENT)


async def review_tasks(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT t.order_id AS ref, t.order_id, t.status, t.opened_at AS waiting_since,
                  t.due_at, now() AS now,
                  jsonb_build_object('score', t.score, 'reasons', t.reasons,
                                     'deadline_at', t.deadline_at, 'total', o.total::text,
                                     'currency', o.currency, 'customer_id', o.customer_id)
                      AS details
           FROM review_tasks t JOIN orders o ON o.order_id = t.order_id
           WHERE t.status IN ('open', 'escalated')
           ORDER BY t.opened_at, t.order_id"""
    )


async def pick_tasks(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT t.order_id AS ref, t.order_id, t.status, t.opened_at AS waiting_since,
                  t.due_at, now() AS now,
                  jsonb_build_object('service_level', o.service_level,
                                     'lines', (SELECT count(*) FROM order_lines l
                                               WHERE l.order_id = t.order_id))
                      AS details
           FROM warehouse_tasks t JOIN orders o ON o.order_id = t.order_id
           WHERE t.status IN ('open', 'picked')
           ORDER BY t.opened_at, t.order_id"""
    )


async def purchase_requests(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT r.id::text AS ref, NULL::text AS order_id, r.status,
                  r.created_at AS waiting_since, r.created_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('sku', r.sku, 'quantity', r.quantity, 'reason', r.reason,
                                     'orders_waiting',
                                     (SELECT count(*) FROM backorders b
                                      WHERE b.sku = r.sku AND b.status = 'waiting'))
                      AS details
           FROM purchase_requests r
           WHERE r.status = 'open'
           ORDER BY r.created_at, r.id""",
        sla,
    )


async def follow_ups(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT f.order_id || '#' || f.attempt AS ref, f.order_id, f.status,
                  f.opened_at AS waiting_since, f.opened_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('attempt', f.attempt, 'escalated', f.escalated,
                                     'carrier_status', f.carrier_status,
                                     'carrier', s.carrier,
                                     'tracking_number', s.tracking_number,
                                     'expected_delivery', s.expected_delivery)
                      AS details
           FROM follow_ups f LEFT JOIN shipments s ON s.order_id = f.order_id
           WHERE f.status = 'open'
           ORDER BY f.opened_at, f.order_id, f.attempt""",
        sla,
    )


async def feedback_tickets(conn: Conn, department: str, sla: timedelta) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT t.ticket_id AS ref, t.order_id, t.status, t.created_at AS waiting_since,
                  t.created_at + $2::interval AS due_at, now() AS now,
                  jsonb_build_object('category', t.category, 'message', left(t.message, 300))
                      AS details
           FROM feedback_tickets t
           WHERE t.department = $1 AND t.status = 'open'
           ORDER BY t.created_at, t.ticket_id""",
        department,
        sla,
    )


async def failed_mails(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    """Outbox rows given up on (`failed`): customer service re-sends or reaches the customer
    another way (db/repositories/outbox.py)."""
    return await conn.fetch(
        """SELECT n.id::text AS ref, n.order_id, n.status,
                  coalesce(n.failed_at, n.created_at) AS waiting_since,
                  coalesce(n.failed_at, n.created_at) + $1::interval AS due_at, now() AS now,
                  jsonb_build_object('kind', n.kind, 'channel', n.channel,
                                     'recipient', n.recipient, 'subject', n.subject,
                                     'attempts', n.attempts,
                                     'last_error', left(n.last_error, 300))
                      AS details
           FROM notifications n
           WHERE n.status = 'failed'
           ORDER BY coalesce(n.failed_at, n.created_at), n.id""",
        sla,
    )


async def unprocessable_orders(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    """Orders rejected because a step could never process them: someone finds out what was
    wrong, refunds by hand when the automatic refund was not possible, and tells the
    customer (db/repositories/unprocessable.py)."""
    return await conn.fetch(
        """SELECT u.order_id AS ref, u.order_id, 'open' AS status,
                  u.recorded_at AS waiting_since, u.recorded_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('step', u.step, 'activity', u.activity,
                                     'reason', u.reason, 'refunded', u.refunded)
                      AS details
           FROM unprocessable_orders u
           WHERE u.resolved_at IS NULL
           ORDER BY u.recorded_at, u.order_id""",
        sla,
    )


async def current_statuses(conn: Conn, order_ids: list[str]) -> list[asyncpg.Record]:
    """Each order's latest status event (when it entered its current status), with the
    shipment's expected delivery where there is one."""
    return await conn.fetch(
        """SELECT DISTINCT ON (e.order_id)
                  e.order_id, e.status, e.occurred_at AS since, now() AS now,
                  o.order_type, o.department, o.customer_id, s.expected_delivery
           FROM order_events e
           JOIN orders o ON o.order_id = e.order_id
           LEFT JOIN shipments s ON s.order_id = e.order_id
           WHERE e.order_id = ANY($1::text[]) AND e.status IS NOT NULL
           ORDER BY e.order_id, e.id DESC""",
        order_ids,
    )


async def order_events_after(
    conn: Conn, order_id: str, *, after_id: int, limit: int
) -> list[asyncpg.Record]:
    """One order's events after `after_id`, in id order."""
    return await conn.fetch(
        """SELECT id, order_id, step, status, kind, actor, details, occurred_at
           FROM order_events
           WHERE order_id = $1 AND id > $2
           ORDER BY id
           LIMIT $3""",
        order_id,
        after_id,
        limit,
    )


async def shop_events_after(conn: Conn, *, after_id: int, limit: int) -> list[asyncpg.Record]:
    """The whole shop's events after `after_id`, in id order."""
    return await conn.fetch(
        """SELECT id, order_id, step, status, kind, actor, details, occurred_at
           FROM order_events
           WHERE id > $1
           ORDER BY id
           LIMIT $2""",
        after_id,
        limit,
    )


async def event_details(conn: Conn, event_id: int) -> dict[str, object] | None:
    details: dict[str, object] | None = await conn.fetchval(
        "SELECT details FROM order_events WHERE id = $1", event_id
    )
    return details


async def register_listener(conn: asyncpg.Connection, listener_id: str, ttl: timedelta) -> int:
    """Ask the event trigger to announce events for `ttl` more; returns the transaction id
    that registered (see `transactions_before_finished`)."""
    async with conn.transaction():
        xid: int = await conn.fetchval(
            """INSERT INTO live_event_listeners (listener_id, expires_at)
               VALUES ($1, now() + $2::interval)
               ON CONFLICT (listener_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
               RETURNING pg_current_xact_id()::text::bigint""",
            listener_id,
            ttl,
        )
    return xid


async def transactions_before_finished(conn: Conn, xid: int) -> bool:
    """True when no transaction that began writing before `xid` is still running (each
    later event insert sees the registration and is announced)."""
    done: bool = await conn.fetchval(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint > $1", xid
    )
    return done


async def unregister_listener(conn: Conn, listener_id: str) -> None:
    await conn.execute("DELETE FROM live_event_listeners WHERE listener_id = $1", listener_id)


async def payment_problems(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    """Captures and refunds the PSP failed or refused and nobody has sent again. A refused
    capture holds the order's parcel at PACKED: finance retries it (the order asks the PSP
    again) or cancels the order; a refund finance retries, or settles with the customer
    another way (db/repositories/payments.py)."""
    return await conn.fetch(
        """SELECT p.idempotency_key AS ref, p.order_id, p.status,
                  p.updated_at AS waiting_since, p.updated_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('operation', p.kind, 'amount', p.amount::text,
                                     'failure_code', p.failure_code, 'psp_id', p.psp_id)
                      AS details
           FROM payment_operations p
           WHERE p.status IN ('failed', 'refused') AND p.kind IN ('capture', 'refund')
             AND NOT EXISTS (SELECT 1 FROM payment_operations r
                             WHERE r.retry_of = p.idempotency_key)
             AND NOT (p.kind = 'capture'
                      AND (EXISTS (SELECT 1 FROM payment_operations c
                                   WHERE c.order_id = p.order_id AND c.kind = 'capture'
                                     AND c.id > p.id)
                           OR EXISTS (SELECT 1 FROM orders o
                                      WHERE o.order_id = p.order_id
                                        AND o.status IN ('CANCELLED', 'REJECTED'))))
           ORDER BY p.updated_at, p.idempotency_key""",
        sla,
    )


async def payment_disputes(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    """Open chargebacks: finance answers the card holder's bank before the deadline."""
    return await conn.fetch(
        """SELECT d.dispute_id AS ref, d.order_id, d.status,
                  d.recorded_at AS waiting_since, d.recorded_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('amount', d.amount::text, 'reason', d.reason,
                                     'opened_at', d.opened_at)
                      AS details
           FROM payment_disputes d
           WHERE d.status = 'open'
           ORDER BY d.recorded_at, d.dispute_id""",
        sla,
    )


async def channel_exceptions(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    """Orders from marketplaces that could not be mapped: customer service fixes and places
    them, or rejects them (db/repositories/marketplace.py). Named by the order id they get."""
    return await conn.fetch(
        """SELECT m.marketplace || '/' || m.external_order_id AS ref,
                  m.marketplace || '-' || m.external_order_id AS order_id, m.status,
                  m.received_at AS waiting_since, m.received_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('marketplace', m.marketplace,
                                     'external_order_id', m.external_order_id,
                                     'problem', m.problem) AS details
           FROM marketplace_orders m
           WHERE m.status = 'exception'
           ORDER BY m.received_at, m.marketplace, m.external_order_id""",
        sla,
    )


async def return_decisions(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    """Returns outside the automatic rules (a product not returnable): customer service
    approves or rejects them (`POST /returns/{return_id}/decision`)."""
    return await conn.fetch(
        """SELECT r.return_id AS ref, r.order_id, r.status,
                  r.requested_at AS waiting_since, r.requested_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('reason', left(r.reason, 300),
                                     'requested_by', r.requested_by,
                                     'lines', (SELECT jsonb_agg(jsonb_build_object(
                                                          'sku', l.sku,
                                                          'quantity', l.quantity,
                                                          'returnable', p.returnable)
                                                      ORDER BY l.sku)
                                               FROM return_lines l
                                               LEFT JOIN products p ON p.sku = l.sku
                                               WHERE l.return_id = r.return_id))
                      AS details
           FROM returns r
           WHERE r.status = 'REQUESTED'
           ORDER BY r.requested_at, r.return_id""",
        sla,
    )


async def return_inspections(conn: Conn, sla: timedelta) -> list[asyncpg.Record]:
    """Returned parcels back at the warehouse: each line is restocked or disposed of
    (`POST /warehouse/returns/{return_id}/inspection`). Due with the return policy's
    inspection SLA, when the warehouse lead is told."""
    return await conn.fetch(
        """SELECT r.return_id AS ref, r.order_id, r.status,
                  r.arrived_at AS waiting_since, r.arrived_at + $1::interval AS due_at,
                  now() AS now,
                  jsonb_build_object('carrier', r.carrier,
                                     'tracking_number', r.tracking_number,
                                     'reason', left(r.reason, 300),
                                     'lines', (SELECT jsonb_agg(jsonb_build_object(
                                                          'sku', l.sku,
                                                          'quantity', l.quantity,
                                                          'inspected', l.outcome IS NOT NULL)
                                                      ORDER BY l.sku)
                                               FROM return_lines l
                                               WHERE l.return_id = r.return_id))
                      AS details
           FROM returns r
           WHERE r.status = 'ARRIVED' AND r.arrived_at IS NOT NULL
           ORDER BY r.arrived_at, r.return_id""",
        sla,
    )


async def pre_orders(conn: Conn) -> list[asyncpg.Record]:
    """Orders waiting for a pre-sale product's release: purchasing keeps the date true
    (`POST /purchasing/releases` moves it and every order waiting for it). Due at the
    release; still waiting after it, the order is overdue. `sku` names the SKUs it waits
    for in one text, as the operator page shows a queue item's `sku`."""
    return await conn.fetch(
        """SELECT p.order_id AS ref, p.order_id, p.status,
                  p.created_at AS waiting_since, p.release_at AS due_at, now() AS now,
                  jsonb_build_object('sku', array_to_string(p.skus, ', '), 'skus', p.skus,
                                     'release_at', p.release_at, 'moves', p.moves)
                      AS details
           FROM pre_orders p JOIN orders o ON o.order_id = p.order_id
           WHERE p.status = 'waiting' AND o.status NOT IN ('CANCELLED', 'REJECTED')
           ORDER BY p.created_at, p.order_id"""
    )
