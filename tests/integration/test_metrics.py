"""Prometheus metrics on the real stack: the API's `/metrics` counts a placed order and its
requests; a worker's metrics port serves the gauges read from PostgreSQL and the Temporal
SDK's own series; production keeps the API's metrics behind the admin token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.metrics import sample
from db.pool import create_pool
from orderflow.demo_carriers import DEMO_CARRIERS
from orderflow.models import OrderPolicy
from orderflow.settings import ROLES, Settings
from stack.supervisor import free_port
from tests.helpers import CONVERTER, order_json
from tests.servers import Stack, running_stack
from workers.metrics import temporal_runtime, worker_metrics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env, database_url, policy=OrderPolicy.instant(auto_warehouse=True)
    ) as running:
        yield running


async def _scrape_api(stack: Stack) -> str:
    response = await stack.http("GET", "/metrics", role=None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_api_metrics_count_a_placed_order_and_its_requests(stack: Stack) -> None:
    before = await _scrape_api(stack)
    placed_before = sample(before, "orderflow_orders_placed_total") or 0.0
    posts_before = (
        sample(before, "orderflow_http_requests_total", method="POST", route="/orders", status=202)
        or 0.0
    )

    body = order_json()
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    # The same order again is answered 200 and is no second placement.
    again = await stack.http("POST", "/orders", json=body)
    assert again.status_code == 200, again.text
    read = await stack.http("GET", f"/orders/{body['order_id']}")
    assert read.status_code == 200

    after = await _scrape_api(stack)
    assert sample(after, "orderflow_orders_placed_total") == placed_before + 1
    assert (
        sample(after, "orderflow_http_requests_total", method="POST", route="/orders", status=202)
        == posts_before + 1
    )
    # Labelled by the route template, not by the order id in the path.
    assert (
        sample(
            after,
            "orderflow_http_requests_total",
            method="GET",
            route="/orders/{order_id}",
            status=200,
        )
        or 0
    ) >= 1
    assert body["order_id"] not in after
    count = sample(
        after, "orderflow_http_request_duration_seconds_count", method="POST", route="/orders"
    )
    assert count is not None and count >= 2


async def test_production_metrics_need_the_admin_or_the_metrics_token(database_url: str) -> None:
    from api.app import create_app
    from tests.servers import serve

    settings = Settings(
        mode="production",
        database_url=database_url,
        api_tokens={role: f"prod-token-{role}-0123456789abcdef" for role in ROLES},
        customer_token_secret="c" * 40,
        psp_api_key="p" * 40,
        psp_webhook_secret="w" * 40,
        carrier_webhook_secrets={carrier.code: "s" * 40 for carrier in DEMO_CARRIERS},
        payload_keys={"k1": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
        payload_key_id="k1",
        metrics_token="prometheus-reads-metrics-0123456789",
    )
    problems = settings.production_problems()
    assert not problems, problems
    # A development value is refused for it as for every secret.
    weak = settings.model_copy(update={"metrics_token": "dev-metrics"})
    assert any("ORDERFLOW_METRICS_TOKEN" in p for p in weak.production_problems())
    port = free_port()
    # A real pool: the API records its process settings at start.
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        app = create_app(settings, pool=pool, storefront=object())  # type: ignore[arg-type]
        async with (
            serve(app, port),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            assert (await http.get("/metrics")).status_code == 401
            storefront = {"Authorization": f"Bearer {settings.api_tokens['storefront']}"}
            assert (await http.get("/metrics", headers=storefront)).status_code == 403
            admin = {"Authorization": f"Bearer {settings.api_tokens['admin']}"}
            answer = await http.get("/metrics", headers=admin)
            assert answer.status_code == 200
            assert "orderflow_http_requests_total" in answer.text
            # Prometheus' token reads the metrics, and nothing else.
            reader = {"Authorization": f"Bearer {settings.metrics_token}"}
            assert (await http.get("/metrics", headers=reader)).status_code == 200
            assert (await http.get("/orders/stuck", headers=reader)).status_code == 401
    finally:
        await pool.close()


async def _db_truth(stack: Stack) -> tuple[dict[str, int], int]:
    rows = await stack.pool.fetch("SELECT status, count(*) AS n FROM orders GROUP BY status")
    due = await stack.pool.fetchval(
        "SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending') "
        "AND next_attempt_at <= now()"
    )
    return {r["status"]: int(r["n"]) for r in rows}, int(due)


async def test_worker_metrics_port_serves_gauges_and_temporal_sdk_series(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    # An order in the database, so the status gauge has something to show.
    body = order_json()
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    for _ in range(200):
        if await stack.pool.fetchval("SELECT 1 FROM orders WHERE order_id = $1", body["order_id"]):
            break
        await asyncio.sleep(0.05)

    runtime, sdk_port = temporal_runtime()
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=CONVERTER,
        runtime=runtime,
    )
    # A few calls through the runtime, so the SDK has request counts to export.
    async for _ in client.list_workflows(limit=1):
        break
    await client.count_workflows()

    settings = stack.settings.model_copy(
        update={"worker_metrics_port": free_port(), "metrics_refresh_seconds": 0.2}
    )
    async with worker_metrics(settings, stack.pool, temporal_metrics_port=sdk_port) as server:
        assert server is not None
        url = f"http://127.0.0.1:{server.port}/metrics"
        async with httpx.AsyncClient() as http:
            text = ""
            for _ in range(100):
                text = (await http.get(url, timeout=10)).text
                if (
                    sample(text, "orderflow_metrics_refresh_failures") == 0
                    and "orderflow_orders{" in text
                ):
                    break
                await asyncio.sleep(0.1)
        statuses, due = await _db_truth(stack)

    # Orders by status as PostgreSQL has them. Orders move on between the two reads, but no
    # order is added or removed meanwhile, so the totals agree.
    gauge = {
        s.labels["status"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "orderflow_orders"
    }
    assert sum(gauge.values()) == sum(statuses.values()) > 0, (gauge, statuses)
    departments = [
        line for line in text.splitlines() if line.startswith("orderflow_department_queue_items{")
    ]
    assert departments, text[:2000]
    assert sample(text, "orderflow_outbox_due_rows") is not None
    assert abs((sample(text, "orderflow_outbox_due_rows") or 0) - due) <= 5
    assert (sample(text, "orderflow_outbox_oldest_due_seconds") or 0) >= 0
    # Step latencies: the order reached RECEIVED (at least) within the window, and its
    # receipt-to-status times are real durations, the p95 no shorter than the p50.
    assert (sample(text, "orderflow_status_reached_orders", status="RECEIVED") or 0) >= 1
    p50 = sample(text, "orderflow_status_reached_seconds", status="RECEIVED", quantile="0.5")
    p95 = sample(text, "orderflow_status_reached_seconds", status="RECEIVED", quantile="0.95")
    assert p50 is not None and p95 is not None and 0 <= p50 <= p95 < 600
    # The Temporal SDK's own series come through the same port.
    assert "temporal_request" in text, text[:2000]
