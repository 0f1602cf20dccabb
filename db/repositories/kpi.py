"""The KPI report's reads (one period's cohort: the orders placed in it) and the stored
weekly KPI snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from db.repositories import risk_labels
from policies.kpi import (
    DeliveredLineFacts,
    FeedbackFacts,
    FollowUpFacts,
    ForecastFacts,
    KpiInputs,
    MoneyFacts,
    OrderFacts,
    ReturnFacts,
    ShipmentFacts,
)

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# Kinds whose first time the computations need (review decision time).
_TIMED_KINDS = ("review_flagged", "review_approved", "review_rejected")

# A forecast is judged on the week of sales after the day it was made for.
FORECAST_HORIZON_DAYS = 7


async def load_inputs(conn: asyncpg.Connection, start: datetime, end: datetime) -> KpiInputs:
    """Everything the KPI computations read about the orders placed in [start, end)."""
    orders = await conn.fetch(
        """SELECT o.order_id, o.order_type, o.channel, o.status, o.placed_at,
                  o.risk_model_version,
                  (SELECT count(*) FROM order_lines l WHERE l.order_id = o.order_id) AS lines
           FROM orders o
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    events = await conn.fetch(
        """SELECT e.order_id, e.status, e.kind, min(e.occurred_at) AS first_at
           FROM order_events e JOIN orders o ON o.order_id = e.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2
           GROUP BY e.order_id, e.status, e.kind""",
        start,
        end,
    )
    shortages = await conn.fetch(
        """SELECT DISTINCT ON (e.order_id) e.order_id, e.details -> 'shortages' AS shortages
           FROM order_events e JOIN orders o ON o.order_id = e.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2 AND e.kind = 'backordered'
           ORDER BY e.order_id, e.id""",
        start,
        end,
    )
    reached: dict[str, dict[str, datetime]] = {}
    kinds: dict[str, set[str]] = {}
    kind_times: dict[str, dict[str, datetime]] = {}
    for e in events:
        order_id = e["order_id"]
        kinds.setdefault(order_id, set()).add(e["kind"])
        if e["status"] is not None:
            known = reached.setdefault(order_id, {})
            if e["status"] not in known or e["first_at"] < known[e["status"]]:
                known[e["status"]] = e["first_at"]
        if e["kind"] in _TIMED_KINDS:
            kind_times.setdefault(order_id, {})[e["kind"]] = e["first_at"]
    short = {r["order_id"]: frozenset((r["shortages"] or {}).keys()) for r in shortages}

    review_tasks = await conn.fetch(
        """SELECT t.order_id, t.status FROM review_tasks t JOIN orders o ON o.order_id = t.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    shipments = await conn.fetch(
        """SELECT s.order_id, s.carrier, s.expected_delivery, s.delivered_at
           FROM shipments s JOIN orders o ON o.order_id = s.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    follow_ups = await conn.fetch(
        """SELECT f.order_id, f.attempt, f.escalated
           FROM follow_ups f JOIN orders o ON o.order_id = f.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    feedback = await conn.fetch(
        """SELECT t.department, t.category, t.created_at, t.resolved_at
           FROM feedback_tickets t JOIN orders o ON o.order_id = t.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    ratings = await conn.fetch(
        """SELECT r.rating FROM product_reviews r JOIN orders o ON o.order_id = r.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    money = await conn.fetch(
        # Captured: at checkout, or by the shop's captures since. Refunded: settled refunds
        # at the PSP; an order refunded before the ledger had them counts its refunds row.
        """SELECT p.currency,
                  sum(CASE WHEN p.status = 'captured' THEN p.amount ELSE 0 END
                      + COALESCE((SELECT sum(c.amount) FROM payment_operations c
                                  WHERE c.order_id = p.order_id AND c.kind = 'capture'
                                    AND c.status IN ('succeeded', 'settled')), 0)) AS captured,
                  sum(CASE WHEN EXISTS (SELECT 1 FROM payment_operations r
                                        WHERE r.order_id = p.order_id AND r.kind = 'refund')
                           THEN COALESCE((SELECT sum(r.amount) FROM payment_operations r
                                          WHERE r.order_id = p.order_id AND r.kind = 'refund'
                                            AND r.status = 'settled'), 0)
                           ELSE COALESCE((SELECT f.amount FROM refunds f
                                          WHERE f.order_id = p.order_id), 0)
                      END) AS refunded,
                  sum(COALESCE((SELECT sum(d.amount) FROM payment_disputes d
                                WHERE d.order_id = p.order_id), 0)) AS disputed
           FROM payments p JOIN orders o ON o.order_id = p.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2
           GROUP BY p.currency
           ORDER BY p.currency""",
        start,
        end,
    )
    fraud = await risk_labels.fraud_placed_between(conn, start, end)
    forecasts = await conn.fetch(
        # The last plan per SKU and day of the period whose horizon has passed by its end,
        # beside the units sold from that day on for the horizon.
        """SELECT DISTINCT ON (p.sku, p.as_of)
                  p.sku, p.as_of, p.method, p.mean_daily_demand,
                  COALESCE((SELECT sum(s.quantity) FROM daily_sales s
                            WHERE s.sku = p.sku AND s.day >= p.as_of
                              AND s.day < p.as_of + $3::int), 0)::int AS sold
           FROM replenishment_plans p
           WHERE p.as_of >= ($1 AT TIME ZONE 'UTC')::date
             AND p.as_of + $3::int <= ($2 AT TIME ZONE 'UTC')::date
           ORDER BY p.sku, p.as_of, p.planned_at DESC""",
        start,
        end,
        FORECAST_HORIZON_DAYS,
    )
    delivered_lines, returns = await _returns(conn, start, end)
    return KpiInputs(
        orders=[
            OrderFacts(
                order_id=o["order_id"],
                order_type=o["order_type"],
                channel=o["channel"],
                status=o["status"],
                placed_at=o["placed_at"],
                lines=o["lines"],
                reached=reached.get(o["order_id"], {}),
                kinds=frozenset(kinds.get(o["order_id"], ())),
                kind_times=kind_times.get(o["order_id"], {}),
                short_skus=short.get(o["order_id"], frozenset()),
            )
            for o in orders
        ],
        review_task_statuses={r["order_id"]: r["status"] for r in review_tasks},
        shipments=[
            ShipmentFacts(s["order_id"], s["carrier"], s["expected_delivery"], s["delivered_at"])
            for s in shipments
        ],
        follow_ups=[FollowUpFacts(f["order_id"], f["attempt"], f["escalated"]) for f in follow_ups],
        feedback=[
            FeedbackFacts(t["department"], t["category"], t["created_at"], t["resolved_at"])
            for t in feedback
        ],
        ratings=[r["rating"] for r in ratings],
        fraud=frozenset(fraud),
        risk_versions={o["order_id"]: o["risk_model_version"] for o in orders},
        money=[
            MoneyFacts(m["currency"], m["captured"], m["refunded"], m["disputed"]) for m in money
        ],
        forecasts=[
            ForecastFacts(
                f["sku"],
                f["as_of"],
                f["method"],
                float(f["mean_daily_demand"]),
                int(f["sold"]),
                FORECAST_HORIZON_DAYS,
            )
            for f in forecasts
        ],
        delivered_lines=delivered_lines,
        returns=returns,
    )


async def _returns(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> tuple[list[DeliveredLineFacts], list[ReturnFacts]]:
    """The cohort's delivered lines (delivered as the return rules see it,
    `db/repositories/returns.py`) and its orders' returns with their units per SKU."""
    delivered = await conn.fetch(
        """SELECT l.order_id, l.sku, l.quantity
           FROM order_lines l
           JOIN orders o ON o.order_id = l.order_id
           JOIN shipments s ON s.order_id = l.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2
             AND coalesce(s.delivered_at,
                          CASE WHEN s.status = 'DELIVERED' THEN s.last_event_at END) IS NOT NULL""",
        start,
        end,
    )
    returns = await conn.fetch(
        # A refund's time is the return's closing, written with its `return_refunded` event;
        # the event stands in should a row lack it.
        """SELECT r.return_id, r.order_id, r.reason, r.status, o.currency, r.requested_at,
                  (r.arrived_at IS NOT NULL OR r.inspected_at IS NOT NULL) AS came_back,
                  r.refund_amount,
                  CASE WHEN r.status = 'REFUNDED' THEN coalesce(
                      r.closed_at,
                      (SELECT min(e.occurred_at) FROM order_events e
                       WHERE e.order_id = r.order_id AND e.kind = 'return_refunded'
                         AND e.details ->> 'return_id' = r.return_id)) END AS refunded_at
           FROM returns r JOIN orders o ON o.order_id = r.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    lines = await conn.fetch(
        """SELECT l.return_id, l.sku, l.quantity
           FROM return_lines l JOIN orders o ON o.order_id = l.order_id
           WHERE o.placed_at >= $1 AND o.placed_at < $2""",
        start,
        end,
    )
    units: dict[str, dict[str, int]] = {}
    for line in lines:
        units.setdefault(line["return_id"], {})[line["sku"]] = line["quantity"]
    return (
        [DeliveredLineFacts(d["order_id"], d["sku"], d["quantity"]) for d in delivered],
        [
            ReturnFacts(
                return_id=r["return_id"],
                order_id=r["order_id"],
                reason=r["reason"],
                status=r["status"],
                currency=r["currency"],
                requested_at=r["requested_at"],
                came_back=r["came_back"],
                refund_amount=r["refund_amount"],
                refunded_at=r["refunded_at"],
                lines=units.get(r["return_id"], {}),
            )
            for r in returns
        ],
    )


async def store_snapshot(
    conn: Conn, start: datetime, end: datetime, kpis: dict[str, Any]
) -> datetime:
    """Store (or replace) the period's snapshot; returns when it was taken."""
    taken_at: datetime = await conn.fetchval(
        """INSERT INTO kpi_snapshots (period_start, period_end, kpis) VALUES ($1, $2, $3)
           ON CONFLICT (period_start, period_end)
           DO UPDATE SET kpis = EXCLUDED.kpis, taken_at = now()
           RETURNING taken_at""",
        start,
        end,
        kpis,
    )
    return taken_at


async def snapshot(conn: Conn, start: datetime, end: datetime) -> dict[str, Any] | None:
    kpis: dict[str, Any] | None = await conn.fetchval(
        "SELECT kpis FROM kpi_snapshots WHERE period_start = $1 AND period_end = $2", start, end
    )
    return kpis


async def latest_snapshots(conn: Conn, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT period_start, period_end, taken_at, kpis FROM kpi_snapshots
           ORDER BY period_end DESC, period_start DESC LIMIT $1""",
        limit,
    )
