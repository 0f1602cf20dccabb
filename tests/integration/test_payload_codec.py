"""Personal data stays out of Temporal: after an order ran through every step, no byte of
its customer's e-mail, name or street is anywhere in its history as the server keeps it;
an operator reads it through the codec endpoint, nobody else does."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
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

    # What anyone with access to the server sees: a client without our codec.
    outsider = await Client.connect(
        stack.client.service_client.config.target_host,
        namespace=stack.settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
    handle = outsider.get_workflow_handle(f"order-{body['order_id']}")
    history = await handle.fetch_history()
    assert len(history.events) > 20
    payloads = [p for event in history.events for p in _payloads_in(event)]
    assert len(payloads) > 10
    secrets = [s.encode() for s in (email, name, street)]
    for found in payloads:
        raw = found.SerializeToString()
        assert not any(s in raw for s in secrets), "personal data in a payload in clear"
    # Every payload of ours is encrypted; markers' other details are the SDK's bookkeeping
    # (patch ids, a local activity's ids, attempt and times).
    ours = [
        p
        for event in history.events
        for p in (
            event.marker_recorded_event_attributes.details["result"].payloads
            if event.HasField("marker_recorded_event_attributes")
            else _payloads_in(event)
        )
    ]
    assert len(ours) > 10
    assert {p.metadata["encoding"] for p in ours} == {b"binary/encrypted"}
    assert {p.metadata["encryption-key-id"] for p in ours} == {b"dev"}
    raw_history = b"".join(event.SerializeToString() for event in history.events)
    assert not any(s in raw_history for s in secrets), "personal data in the history"
    described = await handle.describe()
    shown = repr(described.raw_description.workflow_execution_info.search_attributes).encode()
    assert body["customer"]["id"].encode() in shown
    assert not any(s in shown for s in secrets), "personal data in a search attribute"

    # The Web UI posts what it shows to the codec endpoint: an operator reads it all.
    wire = json_format.MessageToDict(Payloads(payloads=ours))
    admin = await stack.http("POST", "/codec/decode", role="admin", json=wire)
    assert admin.status_code == 200, admin.text
    decoded = json_format.ParseDict(admin.json(), Payloads()).payloads
    assert len(decoded) == len(ours)
    assert {p.metadata["encoding"] for p in decoded} <= {b"json/plain", b"binary/null"}
    clear = b"".join(p.data for p in decoded)
    assert all(s in clear for s in secrets)
    reviewer = await stack.http("POST", "/codec/decode", role="reviewer", json=wire)
    assert reviewer.status_code == 200
    # The storefront's machine token places orders; it does not read customers' histories.
    storefront = await stack.http("POST", "/codec/decode", role="storefront", json=wire)
    assert storefront.status_code == 403

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


async def test_the_temporal_cli_reads_history_through_the_codec_endpoint(stack: Stack) -> None:
    body = order_json()
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, body["order_id"], "COMPLETED")
    temporal = str(Path(sys.executable).parent / "temporal")
    show = [
        temporal,
        "workflow",
        "show",
        "--address",
        stack.client.service_client.config.target_host,
        "-w",
        f"order-{body['order_id']}",
        "-o",
        "json",
        "--codec-endpoint",
        f"http://127.0.0.1:{stack.settings.api_port}/codec",
    ]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*show, *extra], capture_output=True, text=True, timeout=60)

    operator = await asyncio.to_thread(run, "--codec-auth", "Bearer dev-admin")
    assert operator.returncode == 0, operator.stderr
    assert body["customer"]["email"].encode() in _started_input(operator.stdout)
    # Without an operator's token the codec endpoint refuses, and the CLI shows nothing.
    anonymous = await asyncio.to_thread(run)
    assert anonymous.returncode != 0
    assert body["customer"]["email"] not in anonymous.stdout + anonymous.stderr


def _payloads_in(message: Message) -> Iterator[Payload]:
    """Every `Payload` anywhere inside `message` (inputs, results, failures, headers, ...)
    but search attributes, which the server must read and which are checked on their own."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE or field.name == "search_attributes":
            continue
        if isinstance(value, Message):
            values = [value]
        elif hasattr(value, "values"):  # a map of messages
            values = list(value.values())
        else:  # a repeated field
            values = list(value)
        for item in values:
            if isinstance(item, Message):
                yield from _payloads_in(item)


def _started_input(shown: str) -> bytes:
    """The bytes of the first event's input payloads as `temporal workflow show` printed them."""
    first = json.loads(shown)["events"][0]
    payloads = first["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    return b"".join(base64.b64decode(p.get("data", "")) for p in payloads)


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
