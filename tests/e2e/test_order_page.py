"""The customer's order page in a real headless Chromium on a 375-pixel phone screen, against
the real stack: the customer opens the page from the link with the order's access token,
follows the order live through the warehouse and the carrier, writes to the shop, is told
in the API's words why a cancel no longer works, confirms receipt and reviews the order.
A wrong or missing token shows a clear message and nothing of the order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import customer_token, order_page_url
from orderflow.models import OrderPolicy
from tests.e2e.order_page_support import PHONE_WIDTH, open_order_page, order_page_browser
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

# A person packs the parcel, the customer has the quiet period and the review window to act.
POLICY = OrderPolicy(
    auto_warehouse=False,
    quiet_period=timedelta(minutes=10),
    review_window=timedelta(minutes=10),
)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env,
        database_url,
        policy=POLICY,
        # The carrier takes its time to book (the order stays PACKED while the parcel is
        # already being handed over: the moment a cancel is refused), then scans the parcel
        # a second apart, so each status shows on the page.
        carrier_simulator_mode="slow",
        carrier_simulator_slow_seconds=8.0,
        carrier_simulator_event_interval_seconds=1.0,
        carrier_http_timeout_seconds=30.0,
    ) as running:
        yield running


async def _place(stack: Stack, *, locale: str | None = None) -> tuple[dict[str, Any], str]:
    body = order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)])
    if locale is not None:
        body["customer"]["locale"] = locale
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    return body, placed.json()["access_token"]


def _url(stack: Stack, order_id: str, token: str | None) -> str:
    url = order_page_url(str(stack.api.base_url), order_id, token or "")
    return url if token else url.partition("#")[0]


async def _goods_kg(stack: Stack, order_id: str) -> float:
    weight = await stack.pool.fetchval(
        """SELECT sum(p.weight_kg * l.quantity) FROM order_lines l JOIN products p USING (sku)
           WHERE l.order_id = $1""",
        order_id,
    )
    return float(weight)


async def test_customer_follows_and_acts_on_the_order(stack: Stack, tmp_path: Path) -> None:
    body, token = await _place(stack)
    order_id = body["order_id"]
    await wait_for_status(stack.pool, order_id, "PICKING")

    async with open_order_page(_url(stack, order_id, token), phone=True) as page:
        await page.wait_status("PICKING")
        assert "token=" not in await page.url(), "the token left the address bar"
        shown = await page.text()
        for fact in ("SKU-RED-MUG", "SKU-TEA-TIN", body["shipping_address"]["line1"], "Berlin"):
            assert fact in shown
        assert "33.90" in await page.element_text("total")  # 2 x 12.50 + 8.90
        assert await page.visible("cancel-box") and await page.visible("feedback-form")
        assert not await page.visible("confirm-box") and not await page.visible("review-form")
        assert await page.scroll_width() <= PHONE_WIDTH
        await page.screenshot(tmp_path / "order-page-375-picking.png")
        await page.record_statuses()

        # Feedback, answered with the ticket's id.
        await page.choose("feedback-category", "delivery")
        await page.fill("feedback-message", "Please ring twice, the bell is quiet.")
        await page.click("feedback-send")
        answer = await page.wait_text("feedback-result", "FB-")
        ticket = await stack.pool.fetchval(
            "SELECT ticket_id FROM feedback_tickets WHERE order_id = $1", order_id
        )
        assert ticket in answer
        await page.wait_text("tickets", ticket)

        # The warehouse picks and packs: the page follows without a reload.
        assert (
            await stack.http("POST", f"/warehouse/tasks/{order_id}/picked", role="warehouse")
        ).status_code == 200
        packed = await stack.http(
            "POST",
            f"/warehouse/tasks/{order_id}/packed",
            role="warehouse",
            json={"weight_kg": round(await _goods_kg(stack, order_id) + 0.3, 3)},
        )
        assert packed.status_code == 200, packed.text
        await page.wait_status("PACKED")

        # The parcel is being handed to the carrier: the order still reads PACKED, so the page
        # offers the cancel, and the API refuses it; the customer reads why.
        assert (
            await stack.pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
            == "PACKED"
        )
        await page.click("cancel-open")
        await page.fill("cancel-reason", "Found it cheaper elsewhere")
        await page.click("cancel-send")
        refusal = await page.wait_text("cancel-result", "can no longer be cancelled")
        assert "already shipped" in refusal

        # Live through the carrier's scans to the door.
        await page.wait_status("DELIVERED", timeout=90)
        tracking = await stack.pool.fetchrow(
            "SELECT carrier, tracking_number FROM shipments WHERE order_id = $1", order_id
        )
        await page.wait_text("tracking-number", tracking["tracking_number"])
        assert tracking["carrier"].lower() in (await page.element_text("carrier")).lower()
        assert "not yet" not in await page.element_text("expected-delivery")
        await page.wait_hidden("cancel-box")
        await page.wait_visible("confirm-box")
        assert not await page.visible("review-form")

        # Receipt confirmed: completed at once; the review window opens.
        await page.click("confirm-receipt")
        await page.wait_status("COMPLETED")
        await page.wait_text("confirm-result", "Thank you")
        await page.wait_visible("review-form")
        await page.rate(4)
        await page.fill("review-comment", "Mugs arrived safely.")
        await page.click("review-send")
        await page.wait_text("review-result", "Thank you for your review")
        await page.wait_hidden("review-form")
        review = await stack.pool.fetchrow(
            "SELECT rating, comment FROM product_reviews WHERE order_id = $1", order_id
        )
        assert (review["rating"], review["comment"]) == (4, "Mugs arrived safely.")

        statuses = await page.recorded_statuses()
        assert statuses is not None, "the page was reloaded"
        moved = [s for s in statuses if s in ("PACKED", "SHIPPED", "DELIVERED", "COMPLETED")]
        assert moved == ["PACKED", "SHIPPED", "DELIVERED", "COMPLETED"], statuses

        # Nothing of the risk review reaches the customer's page.
        assert "risk" not in (await page.html()).lower()
        assert await page.scroll_width() <= PHONE_WIDTH
        shot = await page.screenshot(tmp_path / "order-page-375.png")
        assert shot.stat().st_size > 10_000


async def test_a_wrong_or_missing_token_shows_nothing_of_the_order(stack: Stack) -> None:
    body, _ = await _place(stack)
    order_id = body["order_id"]
    other, other_token = await _place(stack)
    await wait_for_status(stack.pool, order_id, "PICKING")
    secrets = (
        "SKU-RED-MUG",
        "SKU-TEA-TIN",
        body["shipping_address"]["line1"],
        body["shipping_address"]["postal_code"],
        body["customer"]["name"],
        "33.90",
        "33,90",
    )
    wrong = customer_token("not-the-shop's-secret", order_id)
    async with order_page_browser(phone=True) as page:
        for token, says in (
            (wrong, "does not open this order"),
            (other_token, "does not open this order"),  # another order's valid token
            ("nonsense", "does not open this order"),
            (None, "link in your order e-mail"),
        ):
            await page.open(_url(stack, order_id, token))
            assert not await page.order_shown()
            assert says in await page.element_text("message")
            everything = await page.html()
            for secret in secrets:
                assert secret not in everything, (token, secret)
        assert await page.scroll_width() <= PHONE_WIDTH

        # The other order's own token opens that order only.
        await page.open(_url(stack, other["order_id"], other_token))
        await page.wait_text("order-id", other["order_id"])


async def test_page_speaks_the_customers_language(stack: Stack) -> None:
    body, token = await _place(stack, locale="de")
    await wait_for_status(stack.pool, body["order_id"], "PICKING")
    async with open_order_page(_url(stack, body["order_id"], token), phone=True) as page:
        await page.wait_text("order-status", "Wird zusammengestellt")
        shown = await page.text()
        assert "Lieferadresse" in shown and "Ihre Bestellung" in shown
        assert await page.run("return document.documentElement.lang") == "de"
