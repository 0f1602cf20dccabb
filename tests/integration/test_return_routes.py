"""Returns across orders for operators, on real parts: `GET /returns` filtered by status and
order, newest first, a page at a time; `GET /returns/{return_id}` in the shape the order's
own list gives; roles, unknown returns and bad filters refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import customer_token
from orderflow.models import OrderPolicy
from tests.integration.inventory_support import new_sku
from tests.integration.test_returns import ask_return, delivered, return_row
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


async def _get(stack: Stack, path: str, role: str | None = "admin", **params: Any) -> Any:
    response = await stack.http("GET", path, role=role, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _asked(stack: Stack, order_id: str, sku: str, **extra: Any) -> str:
    response = await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        json={"lines": [{"sku": sku, "quantity": 1, **extra}], "reason": "not as pictured"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["return_id"])


async def _every_page(stack: Stack, limit: int, **filters: Any) -> list[str]:
    """The return ids of every page of `GET /returns`, following `X-Next-Cursor`."""
    ids: list[str] = []
    params: dict[str, Any] = {**filters, "limit": limit}
    while True:
        response = await stack.http("GET", "/returns", role="admin", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page) <= limit
        ids += [r["return_id"] for r in page]
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in response.headers
            return ids
        assert len(page) == limit and 'rel="next"' in response.headers["Link"]
        params = {**filters, "limit": limit, "cursor": cursor}


async def test_returns_are_listed_across_orders_by_status_and_order_newest_first(
    stack: Stack,
) -> None:
    kept, swapped = (
        await new_sku(stack.pool, 5, prefix="RRA"),
        await new_sku(stack.pool, 5, prefix="RRB"),
    )
    withheld = await new_sku(stack.pool, 5, prefix="RRN")
    await stack.pool.execute("UPDATE products SET returnable = false WHERE sku = $1", withheld)
    order_id = (await delivered(stack, [(kept, 1), (swapped, 1)]))["order_id"]
    other_id = (await delivered(stack, [(withheld, 1)]))["order_id"]

    refund = await _asked(stack, order_id, kept)
    exchange = await _asked(stack, order_id, swapped, resolution="exchange")
    waiting = await _asked(stack, other_id, withheld)
    await return_row(stack, refund, "LABEL_SENT")
    await return_row(stack, exchange, "LABEL_SENT")
    await return_row(stack, waiting, "REQUESTED")

    of_order = await _get(stack, "/returns", order_id=order_id)
    assert [r["return_id"] for r in of_order] == [exchange, refund]
    # The shape the order's own list gives, replacement and each line's resolution included.
    assert of_order == list(reversed(await _get(stack, f"/orders/{order_id}/returns")))
    assert of_order[0]["replacement_order_id"] == f"{exchange}-EX"
    assert [(line["sku"], line["resolution"]) for line in of_order[0]["lines"]] == [
        (swapped, "exchange")
    ]
    assert of_order[1]["replacement_order_id"] is None
    assert of_order[1]["lines"][0]["resolution"] == "refund"

    requested = await _get(stack, "/returns", status="REQUESTED")
    assert waiting in [r["return_id"] for r in requested]
    assert {r["status"] for r in requested} == {"REQUESTED"}
    assert not {refund, exchange} & {r["return_id"] for r in requested}
    both = await _get(stack, "/returns", status="LABEL_SENT", order_id=order_id)
    assert [r["return_id"] for r in both] == [exchange, refund]
    assert await _get(stack, "/returns", status="REQUESTED", order_id=order_id) == []
    assert await _get(stack, "/returns", order_id="T-no-such-order") == []

    # The warehouse lists too (what waits for it to arrive), and reads one return.
    assert await _get(stack, "/returns", role="warehouse", order_id=order_id) == of_order
    for role in ("admin", "warehouse", "storefront"):
        assert await _get(stack, f"/returns/{exchange}", role=role) == of_order[0]
    assert (
        await _get(stack, f"/returns/{waiting}")
        == (await _get(stack, f"/orders/{other_id}/returns"))[0]
    )


async def test_pages_follow_the_cursor_without_repeating_or_skipping_a_return(
    stack: Stack,
) -> None:
    skus = [await new_sku(stack.pool, 5, prefix="RRP") for _ in range(3)]
    first = (await delivered(stack, [(s, 1) for s in skus]))["order_id"]
    second = (await delivered(stack, [(skus[0], 1)]))["order_id"]
    ids = [await _asked(stack, first, sku) for sku in skus]
    ids.append(await _asked(stack, second, skus[0]))
    # All four asked at the same instant, the oldest of all: the order id and then the
    # newest return of an order first break the tie, across page boundaries too.
    await stack.pool.execute(
        "UPDATE returns SET requested_at = $2 WHERE return_id = ANY($1::text[])",
        ids,
        datetime(2001, 1, 1, tzinfo=UTC),
    )
    tied = sorted(ids, key=lambda r: (r.rpartition("-")[0], -int(r.rpartition("-")[2])))

    whole = [r["return_id"] for r in await _get(stack, "/returns", limit=200)]
    assert len(whole) < 200 and whole[-4:] == tied
    for limit in (1, 3):
        assert await _every_page(stack, limit) == whole
    assert await _every_page(stack, 2, order_id=first) == [ids[2], ids[1], ids[0]]

    # The cursor keeps the filters' place: the next page of one order's returns.
    response = await stack.http(
        "GET", "/returns", role="admin", params={"order_id": first, "limit": 1}
    )
    assert [r["return_id"] for r in response.json()] == [ids[2]]
    link = response.headers["Link"]
    assert link.startswith("</returns?") and f"order_id={first}" in link
    following = await stack.http("GET", link[1 : link.index(">")], role="admin")
    assert [r["return_id"] for r in following.json()] == [ids[1]]


async def test_roles_unknown_returns_and_bad_filters_are_refused(stack: Stack) -> None:
    sku = await new_sku(stack.pool, 5, prefix="RRR")
    body = await delivered(stack, [(sku, 1)])
    asked = await ask_return(stack, body["order_id"], [(sku, 1)])
    assert asked.status_code == 202, asked.text
    return_id = asked.json()["return_id"]
    await return_row(stack, return_id, "LABEL_SENT")

    for role in ("reviewer", "storefront", "purchasing", "logistics"):
        response = await stack.http("GET", "/returns", role=role)
        assert response.status_code == 403, (role, response.text)
        assert f"role '{role}' may not do this" in response.json()["detail"]
    for role in ("reviewer", "purchasing", "logistics"):
        response = await stack.http("GET", f"/returns/{return_id}", role=role)
        assert response.status_code == 403, (role, response.text)
    # The customer reads their returns on their order's path, not here.
    token = customer_token(stack.settings.customer_token_secret, body["order_id"])
    customer = {"Authorization": f"Bearer {token}"}
    response = await stack.http("GET", f"/returns/{return_id}", role=None, headers=customer)
    assert response.status_code == 403, response.text
    for path in ("/returns", f"/returns/{return_id}"):
        response = await stack.http("GET", path, role=None)
        assert response.status_code == 401 and response.json()["detail"], response.text

    for unknown in (f"{body['order_id']}-9", "T-no-such-order-1", "nonsense"):
        response = await stack.http("GET", f"/returns/{unknown}", role="admin")
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == f"return {unknown} not found"

    for params in (
        {"status": "LOST"},
        {"status": "arrived"},
        {"limit": 0},
        {"limit": 201},
        {"cursor": "not-a-cursor"},
        {"order_id": "x" * 201},
    ):
        response = await stack.http("GET", "/returns", role="admin", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"].startswith("invalid"), response.text

    # The document says so, each error with the `detail` body.
    document = (await stack.http("GET", "/openapi.json", role=None)).json()
    listing = document["paths"]["/returns"]["get"]["responses"]
    one = document["paths"]["/returns/{return_id}"]["get"]["responses"]
    assert {"200", "401", "403", "422"} <= set(listing) and "404" not in listing
    assert "X-Next-Cursor" in listing["200"]["headers"]
    assert {"200", "401", "403", "404"} <= set(one)
    assert one["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
