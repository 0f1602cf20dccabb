"""The customer's view of an order on the real stack: the order's own access token reads the
order and its event stream without the shop's risk review (score, reasons, flag, reviewers'
notes), which operators still see; the order's lines, address and open actions for the page;
and the page itself, served as HTML that holds no order data, with strict headers."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.integration.test_stream import sse
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

NOTE = "called her bank: the card is hers"


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


async def _place(stack: Stack, body: dict[str, Any]) -> str:
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    return str(placed.json()["access_token"])


async def _as_customer(stack: Stack, path: str, token: str) -> dict[str, Any]:
    seen = await stack.http("GET", path, role=None, headers={"Authorization": f"Bearer {token}"})
    assert seen.status_code == 200, seen.text
    return dict(seen.json())


def _risk_free(view_or_event: Any) -> None:
    """Nothing of the risk review anywhere in it."""
    text = json.dumps(view_or_event)
    assert NOTE not in text
    for key in ('"score"', '"reasons"', '"points"'):
        assert key not in text, key


async def _decide(stack: Stack, order_id: str, decision: str) -> None:
    decided = await stack.http(
        "POST",
        f"/reviews/{order_id}/decision",
        role="reviewer",
        json={"decision": decision, "note": NOTE},
    )
    assert decided.status_code == 200, decided.text


async def test_customer_sees_no_risk_review_operators_do(stack: Stack) -> None:
    body = order_json(payment_status="failed")  # a failed payment flags the order
    order_id = body["order_id"]
    token = await _place(stack, body)
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")

    waiting = await _as_customer(stack, f"/orders/{order_id}", token)
    assert waiting["status"] == "PENDING_REVIEW"
    assert (waiting["risk_score"], waiting["risk_reasons"], waiting["flagged"]) == (None, [], False)
    _risk_free(waiting)
    # While the review waits the order takes a cancel and feedback, nothing else.
    assert waiting["actions"] == {
        "cancel": True,
        "feedback": True,
        "confirm_receipt": False,
        "review": False,
        "return_items": False,
    }

    await _decide(stack, order_id, "approve")
    await wait_for_status(stack.pool, order_id, "COMPLETED")

    seen = await _as_customer(stack, f"/orders/{order_id}", token)
    _risk_free(seen)
    assert (seen["risk_score"], seen["risk_reasons"], seen["flagged"]) == (None, [], False)
    approval = next(t for t in seen["timeline"] if t["kind"] == "review_approved")
    assert approval["details"] == {"decision": "approve", "timed_out": False}
    assert next(t for t in seen["timeline"] if t["kind"] == "review_flagged")["details"] == {}

    for role in ("reviewer", "admin", "storefront"):
        operator = (await stack.http("GET", f"/orders/{order_id}", role=role)).json()
        assert operator["risk_score"] is not None and operator["risk_reasons"], role
        assert operator["flagged"] is True
        notes = [t["details"].get("note") for t in operator["timeline"]]
        assert NOTE in notes
        # The same story for both: the same events, in the same order.
        assert [t["kind"] for t in operator["timeline"]] == [t["kind"] for t in seen["timeline"]]

    # The event stream too: the customer's without, the operator's with.
    path = f"/orders/{order_id}/events/stream"
    async with sse(stack, path, token=token) as customer:
        events = await customer.events_until("order_completed")
    _risk_free(events)
    async with sse(stack, path, token=stack.settings.token_for("reviewer")) as reviewer:
        operator_events = await reviewer.events_until("order_completed")
    assert [e["id"] for e in operator_events] == [e["id"] for e in events]
    assert NOTE in json.dumps(operator_events) and '"reasons"' in json.dumps(operator_events)


async def test_a_rejected_order_tells_its_customer_no_reviewer_note(stack: Stack) -> None:
    body = order_json(payment_status="failed")
    order_id = body["order_id"]
    token = await _place(stack, body)
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    await _decide(stack, order_id, "reject")
    await wait_for_status(stack.pool, order_id, "REJECTED")

    seen = await _as_customer(stack, f"/orders/{order_id}", token)
    assert seen["status"] == "REJECTED"
    _risk_free(seen)
    assert not any(seen["actions"].values()), "a rejected order takes nothing more"
    operator = (await stack.http("GET", f"/orders/{order_id}", role="admin")).json()
    assert NOTE in json.dumps(operator["timeline"])


async def test_the_order_as_placed_for_its_page(stack: Stack) -> None:
    body = order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)])
    body["customer"]["locale"] = "zh-CN"
    order_id = body["order_id"]
    token = await _place(stack, body)
    await wait_for_status(stack.pool, order_id, "COMPLETED")

    seen = await _as_customer(stack, f"/orders/{order_id}", token)
    assert [(i["sku"], i["quantity"], i["unit_price"], i["line_total"]) for i in seen["items"]] == [
        ("SKU-RED-MUG", 2, "12.50", "25.00"),
        ("SKU-TEA-TIN", 1, "8.90", "8.90"),
    ]
    assert all(i["name"] for i in seen["items"]), "the catalogue's names"
    assert seen["total"] == "33.90"
    assert seen["shipping_address"] == {**body["shipping_address"], "line2": None}
    assert seen["locale"] == "zh-CN"
    assert seen["carrier"] and seen["tracking_number"] and seen["expected_delivery"]
    # Completed at once with no review window (the instant policy): only a return is open,
    # within the return window after delivery.
    assert [name for name, open_ in seen["actions"].items() if open_] == ["return_items"]

    default = order_json()
    default_token = await _place(stack, default)
    await wait_for_status(stack.pool, default["order_id"], "COMPLETED")
    view = await _as_customer(stack, f"/orders/{default['order_id']}", default_token)
    assert view["locale"] == stack.settings.default_locale

    # One order's token opens that order only.
    other = await stack.http(
        "GET",
        f"/orders/{order_id}",
        role=None,
        headers={"Authorization": f"Bearer {default_token}"},
    )
    assert other.status_code == 403


async def test_the_page_is_html_without_order_data_and_with_strict_headers(stack: Stack) -> None:
    body = order_json()
    order_id = body["order_id"]
    await _place(stack, body)
    await wait_for_status(stack.pool, order_id, "COMPLETED")

    page = await stack.http("GET", f"/orders/{order_id}/page", role=None)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    for rule in ("default-src 'none'", "script-src 'self'", "connect-src 'self'"):
        assert rule in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # No order data in it: the script asks the API for that, with the token.
    for secret in (
        order_id,
        "SKU-RED-MUG",
        body["shipping_address"]["line1"],
        body["customer"]["email"],
        "25.00",
    ):
        assert secret not in page.text
    # Every script is a file of this origin (the CSP would block an inline one anyway).
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert scripts == [' src="/order-page/order.js"']
    # The same page for any id, known or not: it tells nobody which orders exist.
    unknown = await stack.http("GET", "/orders/NO-SUCH-ORDER/page", role=None)
    assert (unknown.status_code, unknown.text) == (200, page.text)

    script = await stack.http("GET", "/order-page/order.js", role=None)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "location.hash" in script.text and "Authorization" in script.text
    style = await stack.http("GET", "/order-page/order.css", role=None)
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]
    assert (await stack.http("GET", "/ui/style.css", role=None)).status_code == 200
    for missing in ("/order-page/secrets.txt", "/order-page/order.html", "/order-page/app.js"):
        assert (await stack.http("GET", missing, role=None)).status_code == 404, missing
