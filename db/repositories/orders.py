"""Orders, their lines and payment: written once at intake, read by every department."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from orderflow.models import Order


async def insert_order(
    conn: asyncpg.Connection,
    order: Order,
    *,
    workflow_id: str,
    placed_at: datetime,
    status: str,
    received_at: datetime | None = None,
) -> bool:
    """Persist an order with its lines and payment; False when it exists already.

    `received_at` is when the shop accepted the order (default: `placed_at`); queues and the
    time in a status count from it, never from the storefront's `placed_at`.
    """
    inserted = await conn.fetchval(
        """INSERT INTO orders (order_id, workflow_id, channel, customer_id, customer_email,
               customer_name, currency, total, total_quantity, shipping_country, billing_country,
               shipping_postal, promo_code, service_level, payment_txn, placed_at, status,
               status_changed_at, payload, customer_locale, received_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $20, $18, $19, $20)
           ON CONFLICT (order_id) DO NOTHING
           RETURNING order_id""",
        order.order_id,
        workflow_id,
        order.channel,
        order.customer.id,
        str(order.customer.email).lower(),
        order.customer.name,
        order.currency,
        order.total,
        order.total_quantity,
        order.shipping_address.country,
        order.effective_billing_address.country,
        order.shipping_address.postal_code,
        order.promo_code,
        order.service_level,
        order.payment.transaction_id,
        placed_at,
        status,
        order.model_dump(mode="json"),
        # As sent (None: the shop's default); mails fall back to English for one without
        # templates, but the page may know more languages, so nothing is resolved here.
        order.customer.locale,
        received_at or placed_at,
    )
    if inserted is None:
        return False
    await conn.executemany(
        """INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price)
           VALUES ($1, $2, $3, $4, $5)""",
        [
            (order.order_id, n, item.sku, item.quantity, item.unit_price)
            for n, item in enumerate(order.items, start=1)
        ],
    )
    await conn.execute(
        """INSERT INTO payments (order_id, method, transaction_id, amount, currency, status,
                                  authorization_expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        order.order_id,
        order.payment.method,
        order.payment.transaction_id,
        order.payment.amount,
        order.currency,
        order.payment.status,
        order.payment.authorization_expires_at,
    )
    return True


async def order_summary(
    conn: asyncpg.Connection | asyncpg.Pool, order_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT o.order_id, o.workflow_id, o.status, o.status_changed_at, o.order_type,
                  o.department, o.risk_score, o.risk_reasons, o.flagged, o.placed_at, o.total,
                  o.currency, o.customer_id, o.channel, o.service_level,
                  s.carrier, s.tracking_number, s.expected_delivery
           FROM orders o LEFT JOIN shipments s ON s.order_id = o.order_id
           WHERE o.order_id = $1""",
        order_id,
    )


async def order_status(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> str | None:
    status: str | None = await conn.fetchval(
        "SELECT status FROM orders WHERE order_id = $1", order_id
    )
    return status


async def customer_facts(
    conn: asyncpg.Connection | asyncpg.Pool, order_id: str
) -> asyncpg.Record | None:
    """What the customer's page shows besides the status: the lines (with product names),
    the shipping address and locale as placed, when it completed, and whether it is reviewed."""
    return await conn.fetchrow(
        """SELECT o.payload -> 'shipping_address' AS shipping_address,
                  o.payload -> 'customer' ->> 'locale' AS locale,
                  (SELECT min(e.occurred_at) FROM order_events e
                    WHERE e.order_id = o.order_id AND e.status = 'COMPLETED') AS completed_at,
                  EXISTS (SELECT 1 FROM product_reviews r WHERE r.order_id = o.order_id)
                    AS reviewed,
                  COALESCE(
                    (SELECT jsonb_agg(jsonb_build_object(
                               'sku', l.sku, 'name', p.name, 'quantity', l.quantity,
                               'unit_price', l.unit_price::text,
                               'line_total', (l.quantity * l.unit_price)::text)
                             ORDER BY l.line_no)
                       FROM order_lines l LEFT JOIN products p ON p.sku = l.sku
                      WHERE l.order_id = o.order_id),
                    '[]'::jsonb) AS items
           FROM orders o
           WHERE o.order_id = $1""",
        order_id,
    )


async def placed_at(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> datetime:
    placed: datetime | None = await conn.fetchval(
        "SELECT placed_at FROM orders WHERE order_id = $1", order_id
    )
    if placed is None:
        raise LookupError(f"order {order_id} is not recorded")
    return placed


async def received_at(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> datetime:
    """When the shop accepted the order: the place it takes in first-come queues."""
    received: datetime | None = await conn.fetchval(
        "SELECT received_at FROM orders WHERE order_id = $1", order_id
    )
    if received is None:
        raise LookupError(f"order {order_id} is not recorded")
    return received


async def lines_of(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> list[tuple[str, int]]:
    """The order's (sku, quantity) lines."""
    rows = await conn.fetch("SELECT sku, quantity FROM order_lines WHERE order_id = $1", order_id)
    return [(r["sku"], r["quantity"]) for r in rows]


async def risk_of(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> asyncpg.Record | None:
    """The order's stored risk verdict (score None until assessed) and when it was placed."""
    return await conn.fetchrow(
        "SELECT risk_score, risk_reasons, flagged, placed_at FROM orders WHERE order_id = $1",
        order_id,
    )


async def order_exists(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM orders WHERE order_id = $1", order_id))


async def set_classification(
    conn: asyncpg.Connection, order_id: str, order_type: str, department: str
) -> None:
    await conn.execute(
        "UPDATE orders SET order_type = $2, department = $3 WHERE order_id = $1",
        order_id,
        order_type,
        department,
    )


async def set_risk(
    conn: asyncpg.Connection, order_id: str, score: float, reasons: list[dict], flagged: bool
) -> None:
    await conn.execute(
        "UPDATE orders SET risk_score = $2, risk_reasons = $3, flagged = $4 WHERE order_id = $1",
        order_id,
        score,
        reasons,
        flagged,
    )
