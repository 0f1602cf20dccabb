"""A pre-order on the customer's order page, in a real headless Chromium: the timeline says
what the order waits for and when, in the customer's language, and follows a moved date."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import order_page_url
from orderflow.models import OrderPolicy
from tests.e2e.order_page_support import open_order_page
from tests.helpers import order_json
from tests.integration.inventory_support import new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


async def release(stack: Stack, sku: str, at: datetime) -> None:
    response = await stack.http(
        "POST",
        "/purchasing/releases",
        role="purchasing",
        json={"sku": sku, "release_at": at.isoformat(), "note": "supplier's date"},
    )
    assert response.status_code == 200, response.text


async def test_the_page_tells_a_pre_order_its_release_date_and_when_it_moves(
    stack: Stack,
) -> None:
    sku = await new_sku(stack.pool, on_hand=10, prefix="PRP")
    await stack.pool.execute("UPDATE products SET unit_price = 12.50 WHERE sku = $1", sku)
    # Noon, so that the date is the same day in any time zone the browser may have.
    first = (datetime.now(UTC) + timedelta(days=40)).replace(hour=12, minute=0, second=0)
    await release(stack, sku, first)
    body = order_json(items=[(sku, 1)])
    body["customer"]["locale"] = "de"
    body["items"][0]["unit_price"] = "12.50"
    body["payment"]["amount"] = "12.50"
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    url = order_page_url(str(stack.api.base_url), body["order_id"], placed.json()["access_token"])

    async with open_order_page(url, phone=True) as page:
        said = await page.wait_text("timeline", "Vorbestellung: Versand nach dem Erscheinen am")
        assert str(first.year) in said and "{date}" not in said
        moved = first + timedelta(days=30)
        await release(stack, sku, moved)
        said = await page.wait_text("timeline", "Der Erscheinungstermin wurde auf")
        assert str(moved.day) in said
    # Nothing was reserved while it waits.
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM reservations WHERE order_id = $1", body["order_id"]
        )
        == 0
    )
