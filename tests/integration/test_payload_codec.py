"""Personal data stays out of Temporal: after an order ran through every step, no byte of
its customer's e-mail, name or street is anywhere in its history as the server keeps it;
an operator reads it through the codec endpoint, nobody else does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

WEB_UI = "http://localhost:8233"


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env, database_url, policy=OrderPolicy.instant(), codec_cors_origins=[WEB_UI]
    ) as running:
        yield running


async def test_history_holds_no_personal_data_and_operators_decode_it(stack: Stack) -> None:
    name = f"Zelda Quux {uuid.uuid4().hex[:6]}"
    body = order_json()
    body["customer"]["name"] = name
    body["shipping_address"]["name"] = name
    email, street = body["customer"]["email"], body["shipping_address"]["line1"]
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    customer_token = placed.json()["access_token"]
    await wait_for_status(stack.pool, body["order_id"], "COMPLETED")

    history = await stack.storefront.handle(body["order_id"]).fetch_history()
    assert len(history.events) > 20
    raw = b"".join(event.SerializeToString() for event in history.events)
    for secret in (email, name, street):
        assert secret.encode() not in raw, f"{secret!r} is in the history in clear"
    # The history is whole: our own client still reads every payload back.
    started = history.events[0].workflow_execution_started_event_attributes
    (payload,) = started.input.payloads
    assert payload.metadata["encoding"] == b"binary/encrypted"

    wire = json_format.MessageToDict(Payloads(payloads=[payload]))
    admin = await stack.http("POST", "/codec/decode", role="admin", json=wire)
    assert admin.status_code == 200, admin.text
    (decoded,) = json_format.ParseDict(admin.json(), Payloads()).payloads
    assert decoded.metadata["encoding"] == b"json/plain"
    assert email.encode() in decoded.data and street.encode() in decoded.data
    reviewer = await stack.http("POST", "/codec/decode", role="reviewer", json=wire)
    assert reviewer.status_code == 200

    anonymous = await stack.http("POST", "/codec/decode", role=None, json=wire)
    assert anonymous.status_code == 401
    customer = await stack.http(
        "POST",
        "/codec/decode",
        role=None,
        json=wire,
        headers={"Authorization": f"Bearer {customer_token}"},
    )
    assert customer.status_code == 403

    # Encoding round-trips through the same keys.
    encoded = await stack.http("POST", "/codec/encode", role="admin", json=admin.json())
    assert encoded.status_code == 200
    again = await stack.http("POST", "/codec/decode", role="admin", json=encoded.json())
    assert again.json() == admin.json()


async def test_the_browser_may_call_the_codec_from_the_web_ui_only(stack: Stack) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await stack.http(
        "OPTIONS", "/codec/decode", role=None, headers={**preflight, "Origin": WEB_UI}
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == WEB_UI
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = await stack.http(
        "OPTIONS",
        "/codec/decode",
        role=None,
        headers={**preflight, "Origin": "https://evil.example"},
    )
    assert other.status_code == 403
    assert "access-control-allow-origin" not in other.headers


async def test_a_payload_under_an_unknown_key_is_a_clear_422(stack: Stack) -> None:
    wire = {
        "payloads": [
            {
                "metadata": {"encoding": "YmluYXJ5L2VuY3J5cHRlZA==", "encryption-key-id": "b2xk"},
                "data": "AAAA",
            }
        ]
    }
    refused = await stack.http("POST", "/codec/decode", role="admin", json=wire)
    assert refused.status_code == 422
    assert "'old'" in refused.json()["detail"]
