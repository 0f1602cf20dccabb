"""Mail content on the real stack: what the outbox holds for an order is rendered in the
customer's language, with both parts, the order's facts and the link to its page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import customer_token, order_page_url
from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


async def _place(stack: Stack, locale: str | None) -> dict[str, Any]:
    body = order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)])
    if locale is not None:
        body["customer"]["locale"] = locale
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    await wait_for_status(stack.pool, body["order_id"], "COMPLETED")
    return body


async def _notices(pool: asyncpg.Pool, order_id: str) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch(
        """SELECT kind, channel, recipient, subject, body, body_html, locale
           FROM notifications WHERE order_id = $1 ORDER BY id""",
        order_id,
    )
    return {f"{r['channel']}/{r['kind']}": r for r in rows}


async def test_a_german_customer_gets_german_mails_with_the_order_and_its_link(
    stack: Stack,
) -> None:
    body = await _place(stack, "de")
    order_id = body["order_id"]
    assert (
        await stack.pool.fetchval(
            "SELECT customer_locale FROM orders WHERE order_id = $1", order_id
        )
        == "de"
    )
    notices = await _notices(stack.pool, order_id)
    customer = {k: r for k, r in notices.items() if k.startswith("email/")}
    assert set(customer) == {
        "email/order_confirmation",
        "email/shipping_confirmation",
        "email/delivered",
        "email/review_invitation",
    }
    link = order_page_url(
        stack.settings.public_url,
        order_id,
        customer_token(stack.settings.customer_token_secret, order_id),
    )
    for row in customer.values():
        assert row["locale"] == "de"
        assert row["recipient"] == body["customer"]["email"]
        assert row["subject"] and row["body"] and row["body_html"]
        assert link in row["body"] and f'href="{link}"' in row["body_html"]

    confirmation = customer["email/order_confirmation"]
    assert confirmation["subject"] == f"Ihre Bestellung {order_id} ist bestätigt"
    for text in ("SKU-RED-MUG", "Red ceramic mug", "SKU-TEA-TIN", "Loose-leaf tea tin"):
        assert text in confirmation["body"] and text in confirmation["body_html"]
    assert "2 × 12,50\xa0€ = 25,00\xa0€" in confirmation["body"]
    assert "Gesamtbetrag: 33,90\xa0€" in confirmation["body"]
    assert body["shipping_address"]["line1"] in confirmation["body"]
    assert "10115 Berlin" in confirmation["body"] and "Deutschland" in confirmation["body"]

    shipment = await stack.pool.fetchrow(
        """SELECT c.name, s.tracking_number FROM shipments s JOIN carriers c ON c.code = s.carrier
           WHERE s.order_id = $1""",
        order_id,
    )
    shipped = customer["email/shipping_confirmation"]
    assert shipped["subject"] == f"Ihre Bestellung {order_id} ist unterwegs"
    assert shipment["name"] in shipped["body"] and shipment["tracking_number"] in shipped["body"]
    assert "Voraussichtliche Zustellung:" in shipped["body"]

    # Department notices go through the same templates, in English.
    assigned = notices["department/department_assignment"]
    assert assigned["locale"] == "en" and assigned["body_html"]
    assert assigned["subject"].startswith(f"Order {order_id} (")


@pytest.mark.parametrize(("locale", "stored", "rendered"), [(None, None, "en"), ("fr", "fr", "en")])
async def test_no_or_an_unknown_locale_gets_english(
    stack: Stack, locale: str | None, stored: str | None, rendered: str
) -> None:
    body = await _place(stack, locale)
    order_id = body["order_id"]
    assert (
        await stack.pool.fetchval(
            "SELECT customer_locale FROM orders WHERE order_id = $1", order_id
        )
        == stored
    )
    confirmation = (await _notices(stack.pool, order_id))["email/order_confirmation"]
    assert confirmation["locale"] == rendered
    assert confirmation["subject"] == f"Your order {order_id} is confirmed"
    assert "Total: €33.90" in confirmation["body"]
