"""What a reviewer decides with: the flagged order's facts beside its score and reasons, and
the customer's history in numbers."""

from __future__ import annotations

import asyncpg


async def task_with_order(
    conn: asyncpg.Connection | asyncpg.Pool, order_id: str
) -> asyncpg.Record | None:
    """The review task of the order with its lines, total, addresses and payment; None
    when the order has no review task."""
    return await conn.fetchrow(
        """SELECT t.order_id, t.status AS task_status, t.score::float8 AS score, t.reasons,
                  t.opened_at, t.due_at, t.deadline_at, t.escalated_at, t.decided_at,
                  t.decided_by, t.decision, t.note,
                  o.status, o.customer_id, o.customer_email, o.customer_name, o.total,
                  o.currency, o.placed_at, o.channel, o.risk_model_version,
                  o.payload -> 'shipping_address' AS shipping_address,
                  o.payload -> 'billing_address' AS billing_address,
                  p.method AS payment_method, p.status AS payment_status,
                  p.amount AS payment_amount, p.transaction_id,
                  COALESCE(
                    (SELECT jsonb_agg(jsonb_build_object(
                               'sku', l.sku, 'name', pr.name, 'quantity', l.quantity,
                               'unit_price', l.unit_price::text,
                               'line_total', (l.quantity * l.unit_price)::text)
                             ORDER BY l.line_no)
                       FROM order_lines l LEFT JOIN products pr ON pr.sku = l.sku
                      WHERE l.order_id = o.order_id),
                    '[]'::jsonb) AS items
           FROM review_tasks t
           JOIN orders o ON o.order_id = t.order_id
           LEFT JOIN payments p ON p.order_id = t.order_id
           WHERE t.order_id = $1""",
        order_id,
    )


async def customer_history(
    conn: asyncpg.Connection | asyncpg.Pool, customer_id: str, order_id: str
) -> asyncpg.Record:
    """The customer's other orders in numbers: how many and for how much (per currency),
    the first one's date, how many were flagged and how their reviews ended, and how many
    were reported as fraud (by a person or a chargeback)."""
    row = await conn.fetchrow(
        """WITH other AS (
               SELECT o.order_id, o.placed_at, o.total, o.currency, o.flagged
               FROM orders o WHERE o.customer_id = $1 AND o.order_id <> $2
           )
           SELECT count(*) AS orders,
                  min(placed_at) AS first_order_at,
                  count(*) FILTER (WHERE flagged) AS flagged,
                  (SELECT count(*) FROM other JOIN review_tasks t USING (order_id)
                    WHERE t.status = 'approved') AS approved,
                  (SELECT count(*) FROM other JOIN review_tasks t USING (order_id)
                    WHERE t.status = 'rejected') AS rejected,
                  (SELECT count(*) FROM other JOIN review_tasks t USING (order_id)
                    WHERE t.status = 'expired') AS timed_out,
                  (SELECT count(*) FROM other JOIN review_tasks t USING (order_id)
                    WHERE t.status IN ('open', 'escalated')) AS awaiting_review,
                  (SELECT count(DISTINCT x.order_id) FROM other x
                    WHERE EXISTS (SELECT 1 FROM risk_labels r
                                   WHERE r.order_id = x.order_id AND r.label = 'fraud')
                       OR EXISTS (SELECT 1 FROM payment_disputes d
                                   WHERE d.order_id = x.order_id
                                     AND d.reason = 'fraudulent' AND d.status <> 'won'))
                    AS reported_fraud,
                  COALESCE(
                    (SELECT jsonb_object_agg(currency, amount) FROM (
                        SELECT currency, sum(total)::text AS amount FROM other
                        GROUP BY currency) a),
                    '{}'::jsonb) AS amounts
           FROM other""",
        customer_id,
        order_id,
    )
    assert row is not None
    return row
