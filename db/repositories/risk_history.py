"""The risk history summary of one order, read from PostgreSQL in one query.

Every part of it is a bounded index range scan: the customer's orders on (customer_id,
placed_at), velocity on the e-mail, address and payment indexes within the last day, the
shop's distribution over its latest orders on (placed_at), and each SKU's latest lines on
(sku, placed_at) (migration 002 copies the order's time onto its lines).
`policies.risk_history` computes the same summary in memory; a test holds them equal.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from orderflow.models import Order
from orderflow.models.risk import (
    AmountDistribution,
    HistoryWindow,
    RiskHistory,
    SkuUsage,
    Velocity,
)
from policies.risk_history import DAY, HOUR

RISK_HISTORY_SQL = """
WITH customer_past AS (
    SELECT count(*) AS order_count,
           min(placed_at) AS first_order_at,
           count(*) FILTER (
               WHERE shipping_country = $5 AND shipping_postal = $6
                 AND lower(payload -> 'shipping_address' ->> 'line1') = lower($7)
           ) AS orders_to_address,
           max(total_quantity) AS max_quantity
    FROM orders
    WHERE customer_id = $3 AND placed_at < $1 AND order_id <> $2
),
customer_recent AS (
    SELECT total::float8 AS total
    FROM orders
    WHERE customer_id = $3 AND placed_at < $1 AND order_id <> $2
    ORDER BY placed_at DESC, order_id COLLATE "C" DESC
    LIMIT $10
),
customer_amounts AS (
    SELECT count(*) AS n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY total) AS median,
           percentile_cont(ARRAY[0.9, 0.95, 0.99]::float8[]) WITHIN GROUP (ORDER BY total) AS q
    FROM customer_recent
),
customer_mad AS (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(r.total - a.median)) AS mad
    FROM customer_recent r CROSS JOIN customer_amounts a
),
shop_recent AS (
    SELECT total::float8 AS total
    FROM orders
    WHERE placed_at < $1 AND order_id <> $2
    ORDER BY placed_at DESC, order_id COLLATE "C" DESC
    LIMIT $11
),
shop_amounts AS (
    SELECT count(*) AS n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY total) AS median,
           percentile_cont(ARRAY[0.9, 0.95, 0.99]::float8[]) WITHIN GROUP (ORDER BY total) AS q
    FROM shop_recent
),
shop_mad AS (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(r.total - a.median)) AS mad
    FROM shop_recent r CROSS JOIN shop_amounts a
),
customer_velocity AS (
    SELECT count(*) FILTER (WHERE placed_at >= $13) AS last_hour, count(*) AS last_day
    FROM orders
    WHERE customer_id = $3 AND placed_at >= $14 AND placed_at < $1 AND order_id <> $2
),
email_velocity AS (
    SELECT count(*) FILTER (WHERE placed_at >= $13) AS last_hour, count(*) AS last_day
    FROM orders
    WHERE customer_email = $4 AND placed_at >= $14 AND placed_at < $1 AND order_id <> $2
),
address_velocity AS (
    SELECT count(*) FILTER (WHERE placed_at >= $13) AS last_hour, count(*) AS last_day
    FROM orders
    WHERE shipping_country = $5 AND shipping_postal = $6
      AND lower(payload -> 'shipping_address' ->> 'line1') = lower($7)
      AND placed_at >= $14 AND placed_at < $1 AND order_id <> $2
),
payment_velocity AS (
    SELECT count(*) FILTER (WHERE placed_at >= $13) AS last_hour, count(*) AS last_day
    FROM orders
    WHERE payment_txn = $8 AND placed_at >= $14 AND placed_at < $1 AND order_id <> $2
),
sku_usage AS (
    SELECT s.sku,
           count(l.quantity) AS lines,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY l.quantity) AS median_quantity,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY l.quantity) AS p95_quantity
    FROM unnest($9::text[]) AS s (sku)
    LEFT JOIN LATERAL (
        SELECT ol.quantity
        FROM order_lines ol
        WHERE ol.sku = s.sku AND ol.placed_at < $1 AND ol.order_id <> $2
        ORDER BY ol.placed_at DESC, ol.order_id COLLATE "C" DESC
        LIMIT $12
    ) l ON true
    GROUP BY s.sku
)
SELECT cp.order_count, cp.first_order_at, cp.orders_to_address, cp.max_quantity,
       ca.n AS customer_n, ca.median AS customer_median, cm.mad AS customer_mad,
       ca.q AS customer_q,
       sa.n AS shop_n, sa.median AS shop_median, sm.mad AS shop_mad, sa.q AS shop_q,
       cv.last_hour AS customer_hour, cv.last_day AS customer_day,
       ev.last_hour AS email_hour, ev.last_day AS email_day,
       av.last_hour AS address_hour, av.last_day AS address_day,
       pv.last_hour AS payment_hour, pv.last_day AS payment_day,
       (SELECT array_agg(sku ORDER BY sku) FROM sku_usage) AS skus,
       (SELECT array_agg(lines ORDER BY sku) FROM sku_usage) AS sku_lines,
       (SELECT array_agg(median_quantity ORDER BY sku) FROM sku_usage) AS sku_medians,
       (SELECT array_agg(p95_quantity ORDER BY sku) FROM sku_usage) AS sku_p95s
FROM customer_past cp, customer_amounts ca, customer_mad cm, shop_amounts sa, shop_mad sm,
     customer_velocity cv, email_velocity ev, address_velocity av, payment_velocity pv
"""


def _distribution(
    n: int, median: float | None, mad: float | None, q: list[float] | None
) -> AmountDistribution:
    if n == 0 or median is None or q is None:
        return AmountDistribution()
    return AmountDistribution(count=n, median=median, mad=mad, p90=q[0], p95=q[1], p99=q[2])


async def load_risk_history(
    conn: asyncpg.Connection,
    order: Order,
    as_of: datetime,
    window: HistoryWindow | None = None,
) -> RiskHistory:
    """The history `order` is scored against: orders placed before `as_of`, itself excluded."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a time zone")
    window = window or HistoryWindow()
    address = order.shipping_address
    row = await conn.fetchrow(
        RISK_HISTORY_SQL,
        as_of,
        order.order_id,
        order.customer.id,
        order.customer.email,
        address.country,
        address.postal_code,
        address.line1,
        order.payment.transaction_id,
        sorted({item.sku for item in order.items}),
        window.customer_orders,
        window.shop_orders,
        window.sku_lines,
        as_of - HOUR,
        as_of - DAY,
    )
    assert row is not None  # aggregates without GROUP BY always return one row
    skus = row["skus"] or []
    return RiskHistory(
        as_of=as_of,
        customer_order_count=row["order_count"],
        customer_first_order_at=row["first_order_at"],
        customer_orders_to_address=row["orders_to_address"],
        customer_amounts=_distribution(
            row["customer_n"], row["customer_median"], row["customer_mad"], row["customer_q"]
        ),
        customer_max_quantity=row["max_quantity"],
        shop_amounts=_distribution(
            row["shop_n"], row["shop_median"], row["shop_mad"], row["shop_q"]
        ),
        customer_velocity=Velocity(last_hour=row["customer_hour"], last_day=row["customer_day"]),
        email_velocity=Velocity(last_hour=row["email_hour"], last_day=row["email_day"]),
        address_velocity=Velocity(last_hour=row["address_hour"], last_day=row["address_day"]),
        payment_velocity=Velocity(last_hour=row["payment_hour"], last_day=row["payment_day"]),
        sku_usage={
            sku: SkuUsage(lines=lines, median_quantity=median, p95_quantity=p95)
            for sku, lines, median, p95 in zip(
                skus,
                row["sku_lines"] or [],
                row["sku_medians"] or [],
                row["sku_p95s"] or [],
                strict=True,
            )
        },
    )
