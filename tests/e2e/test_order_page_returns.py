"""A return asked for on the customer's order page, in a real headless Chromium on a phone
screen: the delivered order offers its lines, the customer picks one and a reason, and the
page tells the return's number and follows it to its label."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import order_page_url
from orderflow.models import OrderPolicy
from tests.e2e.order_page_support import PHONE_WIDTH, open_order_page
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


async def test_the_customer_asks_for_a_return_on_the_order_page(stack: Stack) -> None:
    body = order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)])
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    order_id = body["order_id"]
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    url = order_page_url(str(stack.api.base_url), order_id, placed.json()["access_token"])

    async with open_order_page(url, phone=True) as page:
        await page.wait_visible("return-form")
        await page.fill("return-reason", "The mugs are too small")
        await page.click("return-send")
        await page.wait_text("return-result", "Choose at least one item")
        await page.run(
            "const input = document.querySelector('#return-lines input[data-sku=\"SKU-RED-MUG\"]');"
            "input.value = '1';"
        )
        await page.click("return-send")
        said = await page.wait_text("return-result", "return label")
        return_id = f"{order_id}-1"
        assert return_id in said
        await page.wait_text("returns", "label sent")
        assert await page.scroll_width() <= PHONE_WIDTH

    lines = await stack.pool.fetch(
        "SELECT sku, quantity FROM return_lines WHERE return_id = $1", return_id
    )
    assert [(r["sku"], r["quantity"]) for r in lines] == [("SKU-RED-MUG", 1)]


async def test_the_customer_asks_for_an_exchange_on_the_order_page(stack: Stack) -> None:
    body = order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)])
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    order_id = body["order_id"]
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    url = order_page_url(str(stack.api.base_url), order_id, placed.json()["access_token"])
    return_id = f"{order_id}-1"
    replacement_id = f"{return_id}-EX"

    async with open_order_page(url, phone=True) as page:
        await page.wait_visible("return-form")
        # One mug sent again, the tea tin's money back (left at the default).
        await page.run(
            "document.querySelector('#return-lines input[data-sku=\"SKU-RED-MUG\"]').value = '1';"
            "document.querySelector('#return-lines input[data-sku=\"SKU-TEA-TIN\"]').value = '1';"
        )
        await page.choose_in('#return-lines select[data-sku="SKU-RED-MUG"]', "exchange")
        await page.fill("return-reason", "One mug arrived chipped")
        await page.click("return-send")
        said = await page.wait_text("return-result", "replacement order")
        assert return_id in said and replacement_id in said, said
        # The replacement's id appears once the return is approved and the order placed;
        # the page cannot make its token, so it points to the replacement's own e-mail.
        shown = await page.wait_text("returns", f"Replacement: order {replacement_id}")
        assert "its own e-mail" in shown
        assert ": replacement" in shown and ": money back" in shown, shown
        await page.wait_text("timeline", "A replacement order was placed for your exchange")
        assert await page.scroll_width() <= PHONE_WIDTH

    lines = await stack.pool.fetch(
        "SELECT sku, quantity, resolution FROM return_lines WHERE return_id = $1 ORDER BY sku",
        return_id,
    )
    assert [(r["sku"], r["quantity"], r["resolution"]) for r in lines] == [
        ("SKU-RED-MUG", 1, "exchange"),
        ("SKU-TEA-TIN", 1, "refund"),
    ]
    assert await stack.pool.fetchval("SELECT 1 FROM orders WHERE order_id = $1", replacement_id)
