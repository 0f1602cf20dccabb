"""The notification outbox: e-mails and department notices, one row per key, sent later.

A notice is rendered from its kind's template (notices/) when it is queued, inside the
transaction of the effect it reports, and stored as it will be sent: subject, text part
(`body`), HTML part (`body_html`) and the language it is in (`locale`). So the notice is
exactly-once with its effect, and what an operator reads in the outbox is what went out.
Callers name a kind and pass the facts of the event; every word is in the templates.

- `email_customer`: to the order's customer, in their language (orders.customer_locale,
  else settings.default_locale), with the order's facts (items, total, address, parcel) and
  the link to their order page.
- `notify_department`: to a department's lead, in English.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from notices import Channel, ComposedMail, compose
from orderflow.access import customer_token, order_page_url
from orderflow.settings import Settings

_ADDRESS_FIELDS = ("name", "line1", "line2", "city", "postal_code", "country")


async def store(
    conn: asyncpg.Connection,
    *,
    key: str,
    order_id: str | None,
    kind: str,
    channel: Channel,
    recipient: str,
    mail: ComposedMail,
) -> bool:
    """Queue a composed notice once; a second call with the same key queues nothing."""
    inserted = await conn.fetchval(
        """INSERT INTO notifications (notification_key, order_id, kind, channel, recipient,
                                      subject, body, body_html, locale)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (notification_key) DO NOTHING
           RETURNING id""",
        key,
        order_id,
        kind,
        channel,
        recipient,
        mail.subject,
        mail.text,
        mail.html,
        mail.locale,
    )
    return inserted is not None


async def enqueue(
    conn: asyncpg.Connection,
    *,
    key: str,
    order_id: str | None,
    kind: str,
    channel: Channel,
    recipient: str,
    context: Mapping[str, Any],
    locale: str | None = None,
) -> bool:
    """Render `kind` for `channel` in `locale` (None: English) and queue it once."""
    mail = compose(kind, locale, {"order_id": order_id, **context}, channel=channel)
    return await store(
        conn,
        key=key,
        order_id=order_id,
        kind=kind,
        channel=channel,
        recipient=recipient,
        mail=mail,
    )


async def department_lead(conn: asyncpg.Connection, department: str) -> str:
    email: str | None = await conn.fetchval(
        "SELECT lead_email FROM departments WHERE code = $1", department
    )
    return email or f"{department}@orderflow.local"


async def customer_context(
    conn: asyncpg.Connection, settings: Settings, order_id: str
) -> tuple[str, str, dict[str, Any]]:
    """The order's customer address and language, and what every customer mail may say:
    the order (items with product names, total, shipping address), its current parcel if it
    has one, and the link to the order's page (its access token in the URL fragment)."""
    row = await conn.fetchrow(
        """SELECT o.customer_email, o.customer_name, o.customer_locale, o.currency, o.total,
                  o.placed_at, o.payload -> 'shipping_address' AS shipping_address,
                  s.carrier, coalesce(c.name, s.carrier) AS carrier_name, s.tracking_number,
                  s.expected_delivery
           FROM orders o
           LEFT JOIN shipments s ON s.order_id = o.order_id
           LEFT JOIN carriers c ON c.code = s.carrier
           WHERE o.order_id = $1""",
        order_id,
    )
    if row is None:
        raise LookupError(f"order {order_id} is not recorded")
    lines = await conn.fetch(
        """SELECT l.sku, p.name, l.quantity, l.unit_price, l.quantity * l.unit_price AS line_total
           FROM order_lines l LEFT JOIN products p ON p.sku = l.sku
           WHERE l.order_id = $1 ORDER BY l.line_no""",
        order_id,
    )
    address = row["shipping_address"]
    if isinstance(address, str):  # a connection without the pool's jsonb codec
        address = json.loads(address)
    token = customer_token(settings.customer_token_secret, order_id)
    context: dict[str, Any] = {
        "order_id": order_id,
        "customer_name": row["customer_name"],
        "order_url": order_page_url(settings.public_url, order_id, token),
        "currency": row["currency"],
        "total": row["total"],
        "placed_at": row["placed_at"],
        "items": [dict(line) for line in lines],
        # Every field present (None when absent): the templates run with StrictUndefined.
        "shipping_address": {field: address.get(field) for field in _ADDRESS_FIELDS},
        "shipment": None
        if row["tracking_number"] is None
        else {
            "carrier": row["carrier"],
            "carrier_name": row["carrier_name"],
            "tracking_number": row["tracking_number"],
            "expected_delivery": row["expected_delivery"],
        },
    }
    locale = row["customer_locale"] or settings.default_locale
    return row["customer_email"], locale, context


async def email_customer(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    key: str,
    order_id: str,
    kind: str,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Queue an e-mail of `kind` to the order's customer once, in their language.

    `context`: what the event adds to the order's own facts (a ticket id, a reminder's
    number); the order, its parcel and the page link are looked up here.
    """
    recipient, locale, facts = await customer_context(conn, settings, order_id)
    return await enqueue(
        conn,
        key=key,
        order_id=order_id,
        kind=kind,
        channel="email",
        recipient=recipient,
        context={**facts, **(context or {})},
        locale=locale,
    )


async def notify_department(
    conn: asyncpg.Connection,
    *,
    department: str,
    key: str,
    order_id: str | None,
    kind: str,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Queue a notice of `kind` to the department's lead once (in English)."""
    return await enqueue(
        conn,
        key=key,
        order_id=order_id,
        kind=kind,
        channel="department",
        recipient=await department_lead(conn, department),
        context={"department": department, **(context or {})},
    )
