"""Abuse limits on the real stack: the cap on feedback tickets per order, per-principal rate
limits on placement, feedback and cancel (429 with Retry-After), and caps on open event
streams per principal and in all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.access import customer_token
from orderflow.models import OrderPolicy
from tests.helpers import order_json
from tests.integration.fulfilment_support import add_product, place, wait_awaiting
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

# Orders wait for the warehouse, so they take feedback and a cancel for as long as a test needs.
POLICY = OrderPolicy.instant(auto_warehouse=False)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env,
        database_url,
        policy=POLICY,
        feedback_tickets_per_order=3,
        rate_limit_feedback_burst=100,
        rate_limit_cancel_burst=2,
        rate_limit_cancel_per_minute=1,
        stream_max_per_principal=2,
        stream_max_total=3,
        stream_keepalive_seconds=0.2,
    ) as running:
        yield running


def _as_customer(stack: Stack, order_id: str) -> dict[str, Any]:
    token = customer_token(stack.settings.customer_token_secret, order_id)
    return {"role": None, "headers": {"Authorization": f"Bearer {token}"}}


def _assert_too_many(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


async def _waiting_order(stack: Stack) -> str:
    sku = await add_product(stack)
    order, _ = await place(stack, POLICY, [(sku, 1)])
    await wait_awaiting(stack, order.order_id, "picked")
    return order.order_id


async def test_an_order_opens_at_most_its_cap_of_feedback_tickets(stack: Stack) -> None:
    order_id = await _waiting_order(stack)
    customer = _as_customer(stack, order_id)

    async def feedback(key: str) -> httpx.Response:
        return await stack.http(
            "POST",
            f"/orders/{order_id}/feedback",
            json={"category": "other", "message": f"question {key}", "request_key": key},
            **customer,
        )

    tickets = []
    for n in range(3):
        opened = await feedback(f"k{n}")
        assert opened.status_code == 201, opened.text
        tickets.append(opened.json()["ticket_id"])
    beyond = await feedback("k3")
    assert beyond.status_code == 409, beyond.text
    assert "feedback tickets" in beyond.json()["detail"]
    # A retry of a ticket it has still answers with that ticket.
    retry = await feedback("k0")
    assert retry.status_code in (200, 201), retry.text
    assert retry.json()["ticket_id"] == tickets[0]
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM feedback_tickets WHERE order_id = $1", order_id
    )
    assert count == 3


async def test_cancel_is_rate_limited_per_customer_order(stack: Stack) -> None:
    first, second = await _waiting_order(stack), await _waiting_order(stack)
    path = f"/orders/{first}/cancel"
    for _ in range(2):  # the cancel, then its retry: the same answer
        response = await stack.http(
            "POST", path, json={"reason": "oops"}, **_as_customer(stack, first)
        )
        assert response.status_code == 200, response.text
    _assert_too_many(
        await stack.http("POST", path, json={"reason": "oops"}, **_as_customer(stack, first))
    )
    # Another order's customer is another principal.
    other = await stack.http(
        "POST", f"/orders/{second}/cancel", json={"reason": "oops"}, **_as_customer(stack, second)
    )
    assert other.status_code == 200, other.text


async def test_placement_is_rate_limited_per_token(
    temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    async with running_stack(
        temporal_env,
        database_url,
        policy=POLICY,
        with_worker=False,
        rate_limit_place_burst=2,
        rate_limit_place_per_minute=1,
    ) as small:
        for _ in range(2):
            placed = await small.http("POST", "/orders", json=order_json())
            assert placed.status_code == 202, placed.text
        _assert_too_many(await small.http("POST", "/orders", json=order_json()))
        # The admin's token has a bucket of its own.
        by_admin = await small.http("POST", "/orders", json=order_json(), role="admin")
        assert by_admin.status_code == 202, by_admin.text


@contextlib.asynccontextmanager
async def _stream(stack: Stack, role: str) -> AsyncIterator[httpx.Response]:
    async with stack.api.stream(
        "GET",
        "/events/stream",
        headers={"Authorization": f"Bearer {stack.settings.token_for(role)}"},
        timeout=httpx.Timeout(30, read=60),
    ) as response:
        yield response


_readers: list[AsyncIterator[str]] = []


async def _open(stack: Stack, role: str, streams: contextlib.AsyncExitStack) -> httpx.Response:
    response = await streams.enter_async_context(_stream(stack, role))
    if response.status_code == 200:
        # Read the first line (the server has subscribed); the iterator is kept, since
        # dropping it would close the stream.
        lines = response.aiter_lines()
        _readers.append(lines)
        await anext(lines)
    else:
        await response.aread()
    return response


async def test_event_streams_are_capped_per_principal_and_in_all(stack: Stack) -> None:
    async with contextlib.AsyncExitStack() as held:
        admin_streams = [await _open(stack, "admin", held) for _ in range(2)]
        assert [r.status_code for r in admin_streams] == [200, 200]
        _assert_too_many(await _open(stack, "admin", held))
        assert (await _open(stack, "reviewer", held)).status_code == 200
        # Three open in all: the global cap refuses even a caller with none open.
        _assert_too_many(await _open(stack, "warehouse", held))

        # Closing one frees its slot (once the server notices the client has gone).
        await admin_streams[0].aclose()
        async with asyncio.timeout(10):
            while True:
                async with _stream(stack, "admin") as again:
                    if again.status_code == 200:
                        break
                    assert again.status_code == 429
                await asyncio.sleep(0.1)
