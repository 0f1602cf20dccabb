"""The weekly process review on real servers: a seeded week's pack has every step, the
issues and the changes of that week, is stored with the week's KPI snapshot, readable over
HTTP (JSON and an HTML page with its chart) and mailed to each department's lead once; the
command line builds it on demand; the Schedule is created once and starts real runs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from app.cli import app
from db.repositories import kpi as kpi_sql
from orderflow.models import OrderPolicy
from orderflow.models.process_review import (
    ProcessReviewRequest,
    ProcessReviewResult,
    review_week,
)
from orderflow.process import DEPARTMENTS
from orderflow.settings import get_settings
from starter.process_review_schedule import ensure_process_review_schedule
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, fresh_database, prepare, running_stack
from workflows.process_review import ProcessReviewWorkflow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> AsyncIterator[Stack]:
    # A database of its own: the week's orders, issues and changes are only this module's.
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    async with running_stack(temporal_env, url, policy=OrderPolicy.instant()) as running:
        yield running


async def _seed_issue(
    stack: Stack, step: int, raised_at: datetime, resolved_at: datetime | None = None
) -> str:
    ticket = f"PI-{uuid.uuid4().hex[:8].upper()}"
    await stack.pool.execute(
        """INSERT INTO process_issues (ticket_id, step, department, description, severity,
               status, raised_by, raised_at, resolved_at, resolved_by, resolution)
           VALUES ($1, $2, 'warehouse', 'Labels swapped', 'medium', $3, 'warehouse', $4, $5,
                   $6, $7)""",
        ticket,
        step,
        "open" if resolved_at is None else "resolved",
        raised_at,
        resolved_at,
        None if resolved_at is None else "warehouse",
        None if resolved_at is None else "Relabelled",
    )
    return ticket


async def _change(stack: Stack, at: datetime) -> dict[str, Any]:
    response = await stack.http(
        "POST",
        "/process-changes",
        role="admin",
        json={
            "setting": "order_policy.review_sla",
            "old_value": "PT4H",
            "new_value": "PT2H",
            "reason": "Flagged orders wait too long",
            "changed_at": at.isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _build(stack: Stack, week: date) -> ProcessReviewResult:
    return await stack.client.execute_workflow(
        ProcessReviewWorkflow.run,
        ProcessReviewRequest(week_start=week),
        id=f"process-review-test-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
    )


async def test_the_pack_of_a_seeded_week(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    today = (await stack.pool.fetchval("SELECT now()")).astimezone(UTC).date()
    week = today - timedelta(days=10)
    start = datetime.combine(week, time(0), tzinfo=UTC)
    end = start + timedelta(days=7)

    orders = [order_json(placed_at=(start + timedelta(days=1)).isoformat()) for _ in range(3)]
    for body in orders:
        placed = await stack.http("POST", "/orders", json=body)
        assert placed.status_code == 202, placed.text
    for body in orders:
        await wait_for_status(stack.pool, body["order_id"], "COMPLETED")
    resolved = await _seed_issue(stack, 5, start + timedelta(days=2), start + timedelta(days=3))
    still_open = await _seed_issue(stack, 5, start + timedelta(days=2))
    older = await _seed_issue(stack, 5, start - timedelta(days=3))
    await _seed_issue(stack, 5, end + timedelta(hours=1))  # after the week
    change = await _change(stack, start + timedelta(days=4))
    await _change(stack, end + timedelta(hours=2))  # after the week

    result = await _build(stack, week)
    assert (result.week_start, result.week_end) == (start, end)
    assert (result.steps, result.issues, result.changes) == (8, 2, 1)
    assert result.notified == len(DEPARTMENTS)

    read = await stack.http("GET", f"/process-reviews/{week.isoformat()}", role="warehouse")
    assert read.status_code == 200, read.text
    pack = read.json()["pack"]
    assert pack["orders_this_week"] == 3
    steps = {s["step"]: s for s in pack["steps"]}
    assert sorted(steps) == list(range(1, 9))
    picking = steps[5]
    assert {i["ticket_id"] for i in picking["issues_raised"]} == {resolved, still_open}
    assert [i["ticket_id"] for i in picking["issues_resolved"]] == [resolved]
    assert picking["open_issues"] == 2, f"{still_open} and {older} were open at the week's end"
    assert [c["id"] for c in steps[3]["changes"]] == [change["id"]]
    assert all(not s["changes"] for n, s in steps.items() if n != 3)
    review_p50 = next(f for f in steps[3]["figures"] if f["key"] == "step_3_p50")
    assert review_p50["this_week"] is not None and review_p50["last_week"] is None
    assert steps[5]["sla_breaches"] == 0 and steps[1]["sla_breaches"] is None

    page = await stack.http("GET", f"/process-reviews/{week.isoformat()}/page", role="admin")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64," in page.text and resolved in page.text
    listed = await stack.http("GET", "/process-reviews", role="logistics")
    assert week.isoformat() in [p["week_start"][:10] for p in listed.json()]
    snapshot = await kpi_sql.snapshot(stack.pool, start, end)
    assert snapshot is not None and snapshot["orders"] == 3, "stored with the KPI snapshot"

    async def notices() -> list[str]:
        rows = await stack.pool.fetch(
            "SELECT recipient FROM notifications WHERE kind = 'process_review_ready' "
            "AND notification_key LIKE $1",
            f"process-review:{week.isoformat()}:%",
        )
        return sorted(r["recipient"] for r in rows)

    leads = await notices()
    assert len(leads) == len(DEPARTMENTS) and "warehouse-lead@shop.example" in leads

    # Built again on demand from the command line: replaced, and no lead is mailed twice.
    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", stack.client.service_client.config.target_host)
    monkeypatch.setenv("ORDERFLOW_TASK_QUEUE", stack.settings.task_queue)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        built = await asyncio.to_thread(
            runner.invoke, app, ["process-review", "--week", week.isoformat(), "--json"]
        )
        table = await asyncio.to_thread(
            runner.invoke, app, ["process-review", "--week", week.isoformat()]
        )
    finally:
        get_settings.cache_clear()
    assert built.exit_code == 0, built.output
    assert [s["step"] for s in json.loads(built.output)["steps"]] == list(range(1, 9))
    assert table.exit_code == 0, table.output
    assert f"process review {week.isoformat()}" in table.output and "3 orders" in table.output
    assert "Picking" in table.output
    assert await notices() == leads
    missing = await stack.http("GET", "/process-reviews/2001-01-01", role="admin")
    assert missing.status_code == 404


async def test_the_schedule_is_created_once_and_starts_real_runs(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"process_review_schedule_id": f"process-review-test-{uuid.uuid4().hex[:8]}"}
    )
    assert await ensure_process_review_schedule(stack.client, settings) is True
    handle = stack.client.get_schedule_handle(settings.process_review_schedule_id)
    try:
        assert await ensure_process_review_schedule(stack.client, settings) is False
        described = await handle.describe()
        assert described.schedule.action.workflow == "ProcessReviewWorkflow"  # type: ignore[attr-defined]
        await handle.trigger()
        week = review_week(datetime.now(UTC), ProcessReviewRequest())
        stored = None
        for _ in range(150):
            stored = await stack.pool.fetchval(
                "SELECT built_at FROM process_review_packs WHERE week_start = $1",
                week.week_start,
            )
            if stored is not None:
                break
            await asyncio.sleep(0.2)
        assert stored is not None, "the scheduled run built last week's pack"
        runs = (await handle.describe()).info.recent_actions
        assert len(runs) == 1
    finally:
        await handle.delete()
