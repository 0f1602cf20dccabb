"""Exchanges on real parts: a returned line asked to be replaced is sent again as an order of
its own, linked to the return, uncharged; nothing of it is refunded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.integration.inventory_support import new_sku
from tests.integration.test_returns import delivered, hand_in, inspect, psp_refunds, return_row
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


async def test_an_exchanged_line_is_sent_again_as_a_linked_order_without_a_second_charge(
    stack: Stack,
) -> None:
    exchanged, refunded = (
        await new_sku(stack.pool, 5, prefix="EXX"),
        await new_sku(stack.pool, 5, prefix="EXR"),
    )
    body = await delivered(stack, [(exchanged, 1), (refunded, 2)])
    order_id = body["order_id"]

    response = await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        json={
            "lines": [
                {"sku": exchanged, "quantity": 1, "resolution": "exchange"},
                {"sku": refunded, "quantity": 1},
            ],
            "reason": "wrong colour",
        },
    )
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]
    replacement_id = f"{return_id}-EX"
    assert response.json()["replacement_order_id"] == replacement_id

    # Placed on approval, before the parcel is even labelled, and run through every step.
    assert await wait_for_status(stack.pool, replacement_id, "COMPLETED", timeout=60) == (
        "COMPLETED"
    )
    replacement = await stack.pool.fetchrow(
        "SELECT customer_id, total, payload FROM orders WHERE order_id = $1", replacement_id
    )
    assert replacement["customer_id"] == body["customer"]["id"]
    assert replacement["payload"]["exchange_of"] == {"order_id": order_id, "return_id": return_id}
    assert [(i["sku"], i["quantity"]) for i in replacement["payload"]["items"]] == [(exchanged, 1)]
    # No charge: nothing asked of the PSP for the replacement, nothing more of the original.
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM payment_operations WHERE order_id = $1", replacement_id
        )
        == 0
    )
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        await stack.psp.payment(replacement["payload"]["payment"]["transaction_id"])
    assert unknown.value.response.status_code == 404

    row = await return_row(stack, return_id, "LABEL_SENT")
    assert row["replacement_order_id"] == replacement_id
    await hand_in(stack, row)
    await return_row(stack, return_id, "ARRIVED")
    answer = await inspect(stack, return_id, [(exchanged, "restock"), (refunded, "restock")])
    assert answer.status_code == 200, answer.text
    row = await return_row(stack, return_id, "REFUNDED")
    # Only the refunded line comes back as money, without the shipping share.
    assert row["refund_amount"] == Decimal("10.00")
    assert await psp_refunds(stack, body) == [("10.00", f"return {return_id}")]
    operations = await stack.pool.fetch(
        "SELECT kind, amount FROM payment_operations WHERE order_id = $1", order_id
    )
    assert [(r["kind"], r["amount"]) for r in operations] == [("refund", Decimal("10.00"))]

    events = [
        (r["kind"], r["details"].get("replacement_order_id"))
        for r in await stack.pool.fetch(
            "SELECT kind, details FROM order_events WHERE order_id = $1 ORDER BY id", order_id
        )
    ]
    assert events.count(("return_exchange_placed", replacement_id)) == 1
    kinds = [
        r["kind"]
        for r in await stack.pool.fetch(
            "SELECT kind FROM notifications WHERE order_id = ANY($1::text[]) ORDER BY id",
            [order_id, replacement_id],
        )
    ]
    assert kinds.count("return_exchange") == 1
    listed = (await stack.http("GET", f"/orders/{order_id}/returns")).json()
    assert listed[0]["replacement_order_id"] == replacement_id
    assert {line["sku"]: line["resolution"] for line in listed[0]["lines"]} == {
        exchanged: "exchange",
        refunded: "refund",
    }


async def test_a_return_of_exchanges_only_ends_exchanged_with_nothing_refunded(
    stack: Stack,
) -> None:
    sku = await new_sku(stack.pool, 5, prefix="EXO")
    body = await delivered(stack, [(sku, 1)])
    order_id = body["order_id"]
    response = await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        json={"lines": [{"sku": sku, "quantity": 1}], "reason": "broken", "resolution": "exchange"},
    )
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]
    row = await return_row(stack, return_id, "LABEL_SENT")
    # Exchanging everything is no full return: the shipping charge is not owed back.
    assert row["shipping_share"] == Decimal("0.00")
    await hand_in(stack, row)
    await return_row(stack, return_id, "ARRIVED")
    assert (await inspect(stack, return_id, [(sku, "dispose")])).status_code == 200
    row = await return_row(stack, return_id, "EXCHANGED")
    assert row["refund_amount"] == Decimal("0.00")
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM payment_operations WHERE order_id = $1", order_id
        )
        == 0
    )
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM orders WHERE payload -> 'exchange_of' ->> 'return_id' = $1",
            return_id,
        )
        == 1
    )


async def test_a_storefront_cannot_place_an_order_as_an_exchange(stack: Stack) -> None:
    body = order_json()
    body["exchange_of"] = {"order_id": "T-anything", "return_id": "T-anything-1"}
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 422
    assert "exchange_of" in response.json()["detail"]
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM orders WHERE order_id = $1", body["order_id"]
        )
        == 0
    )
