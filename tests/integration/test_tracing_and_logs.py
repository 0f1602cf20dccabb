"""One order's API call, workflow and activities form one trace across the API and worker
processes (OpenTelemetry, printed by the console exporter), continuing the storefront's own
trace; with `ORDERFLOW_LOG_FORMAT=json` the worker's log lines are JSON carrying the order id.
Real processes, as deployed: `orderflow api` and `orderflow worker` on the dev server and
PostgreSQL."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from stack.supervisor import ManagedProcess, free_port
from tests.helpers import order_json, wait_for_status
from tests.integration.test_marketplace_intake import eventually
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def parts(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    # The simulators and the database of a test stack; its API and worker are not used.
    async with running_stack(
        temporal_env, database_url, policy=OrderPolicy.instant(), with_worker=False
    ) as stack:
        yield stack


def _environment(stack: Stack, api_port: int) -> dict[str, str]:
    s = stack.settings
    return {
        "DATABASE_URL": stack.database_url,
        "TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "ORDERFLOW_TASK_QUEUE": f"traced-{secrets.token_hex(4)}",
        "ORDERFLOW_API_PORT": str(api_port),
        "ORDERFLOW_CARRIER_API_URL": s.carrier_api_url,
        "ORDERFLOW_CARRIER_WEBHOOK_BASE_URL": f"http://127.0.0.1:{api_port}",
        "ORDERFLOW_PSP_API_URL": s.psp_api_url,
        "ORDERFLOW_ORDER_POLICY": OrderPolicy.instant().model_dump_json(),
        "ORDERFLOW_RISK_FLAG_THRESHOLD": str(s.risk_flag_threshold),
        "ORDERFLOW_WORKER_METRICS_PORT": "0",
        "ORDERFLOW_MARKETPLACES": "[]",
        "ORDERFLOW_TRACING_EXPORTER": "console",
        "ORDERFLOW_LOG_FORMAT": "json",
        # Spans leave every 100 ms, not at the 5 s default, so the test need not wait.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects in a process's output (pretty-printed spans, one-line logs), in
    order; other lines (the process runner's own) are skipped."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    at = 0
    while (at := text.find("{", at)) != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("\n", at) + 1 or len(text)
            continue
        if isinstance(value, dict):
            found.append(value)
        at = end
    return found


async def test_one_order_is_one_trace_across_processes_and_its_log_lines_name_it(
    parts: Stack, tmp_path: Path
) -> None:
    stack = parts
    api_port = free_port()
    env = _environment(stack, api_port)
    processes = [
        ManagedProcess(name, [sys.executable, "-m", "app.cli", name], tmp_path / f"{name}.log", env)
        for name in ("api", "worker")
    ]
    trace_id = secrets.token_hex(16)
    body = order_json()
    order_id = body["order_id"]
    try:
        for process in processes:
            process.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api:

            async def api_up() -> bool:
                try:
                    return (await api.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(api_up, "the API process", timeout=60)
            response = await api.post(
                "/orders",
                json=body,
                headers={
                    "Authorization": "Bearer dev-storefront",
                    # The storefront's own trace: the order's spans continue it.
                    "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
                },
            )
            assert response.status_code == 202, response.text
        await wait_for_status(stack.pool, order_id, "COMPLETED", timeout=90)

        def spans() -> list[dict[str, Any]]:
            found = []
            for process in processes:
                for obj in _json_objects(process.log_file.read_text(errors="replace")):
                    if "context" in obj and "name" in obj:
                        found.append({**obj, "process": process.name})
            return found

        async def booked_span_exported() -> bool:
            return any(s["name"] == "RunActivity:book_shipment" for s in spans())

        await eventually(booked_span_exported, "the booking's span", timeout=30)
    finally:
        for process in processes:
            process.stop()

    ours = [s for s in spans() if s["context"]["trace_id"] == f"0x{trace_id}"]
    names = {(s["process"], s["name"]) for s in ours}
    assert ("api", "POST /orders") in names, names
    assert ("api", "StartWorkflow:OrderWorkflow") in names, names
    assert ("worker", "RunWorkflow:OrderWorkflow") in names, names
    assert ("worker", "RunActivity:book_shipment") in names, names
    server_span = next(s for s in ours if s["name"] == "POST /orders")
    assert server_span["attributes"]["http.response.status_code"] == 202
    # Nothing of the order was traced apart from the storefront's trace.
    strays = {
        s["name"]
        for s in spans()
        if s["context"]["trace_id"] != f"0x{trace_id}" and "OrderWorkflow" in s["name"]
    }
    assert not strays, strays

    worker_lines = [
        obj
        for obj in _json_objects((tmp_path / "worker.log").read_text(errors="replace"))
        if "message" in obj and "level" in obj
    ]
    about_order = [line for line in worker_lines if line.get("order_id") == order_id]
    # The workflow's details are fields of the line, not text in its message.
    assert "order status COMPLETED (by system)" in [line["message"] for line in about_order], (
        worker_lines[-20:]
    )
    assert all(line["workflow"]["workflow_id"] == f"order-{order_id}" for line in about_order)
