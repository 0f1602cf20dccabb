"""Dated process changes on real servers: the API started twice with a different review SLA
records one change with the old and new values; admin records other changes with their
reason over HTTP and the command line; staff read them back, filtered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from api.app import create_app
from app.cli import app
from app.report_around import build_around
from db.pool import create_pool
from db.repositories.process_changes import record_configuration
from orderflow.models import OrderPolicy
from orderflow.settings import Settings, get_settings
from stack.supervisor import free_port
from starter.order_client import OrderClient
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, fresh_database, prepare, running_stack, serve

pytestmark = pytest.mark.integration


async def _start_api(env: WorkflowEnvironment, url: str, policy: OrderPolicy) -> list[Any]:
    """Start the API as `orderflow api` does (its own pool) and read the changes it lists."""
    port = free_port()
    settings = Settings(database_url=url, api_port=port, order_policy=policy)
    storefront = OrderClient(env.client, task_queue="process-changes", policy=policy)
    async with (
        serve(create_app(settings, storefront=storefront), port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        response = await http.get(
            "/process-changes", headers={"Authorization": "Bearer dev-reviewer"}
        )
        assert response.status_code == 200, response.text
        return list(response.json())


async def test_a_start_with_another_review_sla_records_one_change(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> None:
    url = await fresh_database(postgres_server_url)
    await prepare(url)

    first = await _start_api(temporal_env, url, OrderPolicy(review_sla=timedelta(hours=4)))
    assert first == [], "the first start only notes its settings"
    again = await _start_api(temporal_env, url, OrderPolicy(review_sla=timedelta(hours=4)))
    assert again == [], "the same settings again change nothing"

    changed = await _start_api(temporal_env, url, OrderPolicy(review_sla=timedelta(hours=2)))
    assert len(changed) == 1
    change = changed[0]
    assert change["setting"] == "order_policy.review_sla"
    assert (change["old_value"], change["new_value"]) == ("PT4H", "PT2H")
    assert change["steps"] == [3]
    assert change["source"] == "configuration" and change["changed_by"] == "configuration (api)"
    assert change["reason"]

    # A worker starting beside it with the same settings records nothing more.
    settings = Settings(database_url=url, order_policy=OrderPolicy(review_sla=timedelta(hours=2)))
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            assert await record_configuration(conn, settings, by="worker") == []
            # Just made: the windows around it are as short as the time since, and empty.
            around = await build_around(
                conn, change["id"], window=timedelta(days=7), minimum_orders=30
            )
    finally:
        await pool.close()
    assert around.windows.shortened
    assert [r.key for r in around.rows][:2] == ["step_3_p50", "step_3_p95"]
    assert (around.before_orders, around.after_orders) == (0, 0)
    assert len(around.warnings) == 2
    assert len(await _start_api(temporal_env, url, settings.order_policy)) == 1


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> AsyncIterator[Stack]:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    async with running_stack(temporal_env, url, policy=OrderPolicy.instant()) as running:
        yield running


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_admin_records_a_change_with_its_reason(stack: Stack) -> None:
    body = {
        "setting": "order_policy.pick_sla",
        "old_value": "PT4H",
        "new_value": "PT2H",
        "reason": "Orders wait at the pick bench over lunch",
    }
    made = await stack.http("POST", "/process-changes", role="admin", json=body)
    assert made.status_code == 201, made.text
    change = made.json()
    assert change["steps"] == [5], "from the setting's name"
    assert change["changed_by"] == "admin" and change["source"] == "operator"

    outside = await stack.http(
        "POST",
        "/process-changes",
        role="admin",
        json={
            "setting": "warehouse.packing_bench",
            "new_value": "beside the dock",
            "reason": "Shorter walk to the carrier's cage",
            "steps": [5, 6],
            "changed_at": "2026-11-02T08:00:00Z",
        },
    )
    assert outside.status_code == 201, outside.text
    assert outside.json()["changed_at"].startswith("2026-11-02T08:00:00")

    refusals: list[tuple[str, dict[str, Any], int]] = [
        ("warehouse", body, 403),
        ("admin", {**body, "reason": ""}, 422),
        ("admin", {"setting": "warehouse.bench", "reason": "no steps"}, 422),
        ("admin", {**body, "steps": [9]}, 422),
        ("admin", {**body, "changed_at": "2999-01-01T00:00:00Z"}, 422),
        ("admin", {**body, "changed_at": "2026-11-02T08:00:00"}, 422),
        ("admin", {**body, "setting": "bad name with spaces"}, 422),
    ]
    for role, sent, code in refusals:
        response = await stack.http("POST", "/process-changes", role=role, json=sent)
        assert response.status_code == code, (sent, response.text)
        assert isinstance(response.json()["detail"], str)

    step5 = await stack.http("GET", "/process-changes", role="warehouse", params={"step": 5})
    assert {c["id"] for c in step5.json()} >= {change["id"], outside.json()["id"]}
    by_name = await stack.http(
        "GET", "/process-changes", role="logistics", params={"setting": "warehouse"}
    )
    assert [c["id"] for c in by_name.json()] == [outside.json()["id"]]
    dated = await stack.http(
        "GET",
        "/process-changes",
        role="admin",
        params={"from": "2026-11-01T00:00:00Z", "to": "2026-11-03T00:00:00Z"},
    )
    assert [c["id"] for c in dated.json()] == [outside.json()["id"]]
    one = await stack.http("GET", f"/process-changes/{change['id']}", role="reviewer")
    assert one.status_code == 200 and one.json()["reason"] == body["reason"]
    assert (await stack.http("GET", "/process-changes/999999", role="admin")).status_code == 404
    assert (await stack.http("GET", "/process-changes", role="storefront")).status_code == 403


async def test_a_change_recorded_by_admin_is_not_recorded_again_at_the_next_start(
    stack: Stack,
) -> None:
    async with stack.pool.acquire() as conn:
        await record_configuration(conn, stack.settings, by="api")
    new_threshold = stack.settings.risk_flag_threshold + 5
    made = await stack.http(
        "POST",
        "/process-changes",
        role="admin",
        json={
            "setting": "risk_flag_threshold",
            "old_value": stack.settings.risk_flag_threshold,
            "new_value": new_threshold,
            "reason": "Too many good customers flagged",
        },
    )
    assert made.status_code == 201, made.text
    restarted = stack.settings.model_copy(update={"risk_flag_threshold": new_threshold})
    async with stack.pool.acquire() as conn:
        assert await record_configuration(conn, restarted, by="worker") == []
        lowered = restarted.model_copy(update={"risk_flag_threshold": 40.0})
        [recorded] = await record_configuration(conn, lowered, by="worker")
    assert recorded["setting"] == "risk_flag_threshold"
    assert (recorded["old_value"], recorded["new_value"]) == (new_threshold, 40.0)


async def test_the_command_line_lists_and_adds(stack: Stack, cli: CliRunner) -> None:
    async def run(*args: str) -> Any:
        return await asyncio.to_thread(cli.invoke, app, ["process-changes", *args])

    added = await run(
        "add",
        "--setting",
        "order_policy.delivery_grace",
        "--old",
        "P1D",
        "--new",
        "PT12H",
        "--reason",
        "Carriers are on time; chase late parcels sooner",
    )
    assert added.exit_code == 0, added.output
    change = json.loads(added.output)
    assert change["new_value"] == "PT12H" and change["steps"] == [7]

    listed = await run("list", "--step", "7", "--json")
    assert listed.exit_code == 0, listed.output
    assert change["id"] in {c["id"] for c in json.loads(listed.output)}
    table = await run("list", "--setting", "order_policy.delivery_grace")
    assert table.exit_code == 0, table.output
    assert "PT12H" in table.output and str(change["id"]) in table.output
    refused = await run("add", "--setting", "x.y", "--reason", "no steps")
    assert refused.exit_code == 1 and "422" in refused.output


async def test_report_around_a_change_compares_equal_windows(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    now: datetime = await stack.pool.fetchval("SELECT now()")
    changed_at = now - timedelta(hours=1)
    # Placed 30 minutes before the change, and 30 minutes after it; one of each flagged.
    before = [
        order_json(placed_at=(changed_at - timedelta(minutes=30)).isoformat()) for _ in range(2)
    ]
    before.append(
        order_json(
            placed_at=(changed_at - timedelta(minutes=30)).isoformat(), payment_status="failed"
        )
    )
    after = [
        order_json(placed_at=(changed_at + timedelta(minutes=30)).isoformat()) for _ in range(4)
    ]
    for body in before + after:
        placed = await stack.http("POST", "/orders", json=body)
        assert placed.status_code == 202, placed.text
    for body in before[:2] + after:
        await wait_for_status(stack.pool, body["order_id"], "COMPLETED")
    await wait_for_status(stack.pool, before[2]["order_id"], "PENDING_REVIEW")

    made = await stack.http(
        "POST",
        "/process-changes",
        role="admin",
        json={
            "setting": "order_policy.review_sla",
            "old_value": "PT4H",
            "new_value": "PT2H",
            "reason": "Flagged orders wait too long",
            "changed_at": changed_at.isoformat(),
        },
    )
    assert made.status_code == 201, made.text
    change_id = made.json()["id"]

    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        args = ["report", "--around", str(change_id), "--window-hours", "1"]
        as_json = await asyncio.to_thread(runner.invoke, app, [*args, "--json"])
        table = await asyncio.to_thread(runner.invoke, app, args)
        missing = await asyncio.to_thread(runner.invoke, app, ["report", "--around", "999999"])
    finally:
        get_settings.cache_clear()
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    windows = report["windows"]
    start, at, end = (
        datetime.fromisoformat(windows[k]) for k in ("before_start", "change_at", "after_end")
    )
    assert at - start == end - at == timedelta(hours=1)
    assert (report["before_orders"], report["after_orders"]) == (3, 4)
    rows = {r["key"]: r for r in report["rows"]}
    assert {"step_3_p50", "step_3_p95", "flag_rate", "auto_approval_rate"} <= set(rows)
    assert rows["flag_rate"]["before"] == pytest.approx(1 / 3)
    assert rows["flag_rate"]["after"] == 0.0
    # Only the two automatically approved orders before the change passed the review step.
    assert (rows["step_3_p50"]["before_orders"], rows["step_3_p50"]["after_orders"]) == (2, 4)
    assert rows["step_3_p50"]["before"] is not None and rows["step_3_p50"]["after"] is not None
    warnings = report["warnings"]
    assert any("window before the change has 3 orders" in w for w in warnings)
    assert any("window after the change has 4 orders" in w for w in warnings)

    assert table.exit_code == 0, table.output
    printed = " ".join(table.output.split())  # as read, whatever the terminal's width
    assert "order_policy.review_sla" in printed and "3 Review" in printed
    assert "(3 orders)" in printed and "(4 orders)" in printed
    assert "warning: the window before the change has 3 orders" in printed
    assert "too few to conclude" in printed
    assert missing.exit_code == 1 and "not found" in missing.output
    await stack.http(
        "POST",
        f"/orders/{before[2]['order_id']}/cancel",
        role="admin",
        json={"reason": "test over"},
    )
