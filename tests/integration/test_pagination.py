"""List endpoints on the real stack: a bounded `limit`, an opaque `cursor`, the next page's
cursor in `X-Next-Cursor` (and `Link`), and every row exactly once across the pages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.integration.fulfilment_support import add_product, place, wait_awaiting
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

POLICY = OrderPolicy.instant(auto_warehouse=False)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=POLICY) as running:
        yield running


async def _all_pages(
    stack: Stack, path: str, role: str, *, limit: int, items: str | None = None
) -> list[list[Any]]:
    pages: list[list[Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await stack.http("GET", path, role=role, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        rows = body[items] if items else body
        assert len(rows) <= limit
        pages.append(rows)
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in response.headers
            return pages
        assert len(rows) == limit
        if items is None:
            assert response.headers["Link"].endswith('; rel="next"')
        else:
            assert body["next_cursor"] == cursor
        params = {"limit": limit, "cursor": cursor}


async def test_inventory_pages_through_every_sku_once(stack: Stack) -> None:
    for _ in range(3):
        await add_product(stack)
    pages = await _all_pages(stack, "/inventory", "admin", limit=2)
    skus = [row["sku"] for page in pages for row in page]
    expected = [
        r["sku"]
        for r in await stack.pool.fetch(
            "SELECT p.sku FROM products p JOIN inventory i ON i.sku = p.sku ORDER BY p.sku"
        )
    ]
    assert skus == expected and len(pages) >= 2


async def test_warehouse_tasks_and_department_queue_page_oldest_first(stack: Stack) -> None:
    order_ids = []
    for _ in range(3):
        order, _ = await place(stack, POLICY, [(await add_product(stack), 1)])
        order_ids.append(order.order_id)
    for order_id in order_ids:
        await wait_awaiting(stack, order_id, "picked")

    tasks = [
        t
        for page in await _all_pages(stack, "/warehouse/tasks", "warehouse", limit=2)
        for t in page
    ]
    seen = [t["order_id"] for t in tasks]
    assert len(seen) == len(set(seen))
    assert set(order_ids) <= set(seen)
    assert [t["opened_at"] for t in tasks] == sorted(t["opened_at"] for t in tasks)

    pages = await _all_pages(stack, "/departments/warehouse/queue", "admin", limit=2, items="items")
    refs = [i["ref"] for page in pages for i in page]
    assert len(refs) == len(set(refs)) and set(order_ids) <= set(refs)


@pytest.mark.parametrize(
    "path",
    [
        "/inventory",
        "/warehouse/tasks",
        "/reviews/pending",
        "/purchasing/requests",
        "/logistics/lost-parcels",
        "/departments/warehouse/queue",
        "/orders/stuck",
    ],
)
async def test_limit_is_bounded(stack: Stack, path: str) -> None:
    for limit in (0, 201):
        response = await stack.http("GET", path, role="admin", params={"limit": limit})
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)
    assert (await stack.http("GET", path, role="admin", params={"limit": 200})).status_code == 200


@pytest.mark.parametrize("cursor", ["not-a-cursor", "e30", uuid.uuid4().hex])
async def test_a_cursor_it_never_gave_is_refused(stack: Stack, cursor: str) -> None:
    for path in ("/inventory", "/warehouse/tasks", "/purchasing/requests", "/mail/outbox"):
        response = await stack.http("GET", path, role="admin", params={"cursor": cursor})
        assert response.status_code == 422, (path, response.text)
        assert "cursor" in response.json()["detail"]
