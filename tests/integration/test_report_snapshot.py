"""The weekly KPI snapshot: the Temporal Schedule is created idempotently, and the snapshot
workflow stores the KPIs of real orders (run on a database of this module's own)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import ScheduleActionStartWorkflow, ScheduleSpec
from temporalio.testing import WorkflowEnvironment

from db.repositories import kpi as kpi_sql
from orderflow.models import OrderPolicy
from policies.kpi import KpiReport, KpiSnapshotRequest, KpiSnapshotResult, snapshot_period
from starter.kpi_schedule import ensure_kpi_schedule
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, fresh_database, prepare, running_stack
from workflows.kpi_snapshot import KpiSnapshotWorkflow

pytestmark = pytest.mark.integration


def _when(spec: ScheduleSpec) -> tuple[list[int], list[int], list[int]]:
    """(days of week, hours, minutes) of the schedule's one calendar."""
    (calendar,) = spec.calendars
    return (
        [r.start for r in calendar.day_of_week],
        [r.start for r in calendar.hour],
        [r.start for r in calendar.minute],
    )


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> AsyncIterator[Stack]:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    async with running_stack(temporal_env, url, policy=OrderPolicy.instant()) as running:
        yield running


async def test_snapshot_workflow_stores_the_period_kpis(stack: Stack) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    flagged = order_json(payment_status="failed")
    normal = order_json()
    for body in (flagged, normal):
        assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, flagged["order_id"], "PENDING_REVIEW")
    decided = await stack.http(
        "POST",
        f"/reviews/{flagged['order_id']}/decision",
        role="reviewer",
        json={"decision": "approve", "note": "ok"},
    )
    assert decided.status_code == 200
    for body in (flagged, normal):
        await wait_for_status(stack.pool, body["order_id"], "COMPLETED")
    end = datetime.now(UTC) + timedelta(seconds=1)

    result: KpiSnapshotResult = await stack.client.execute_workflow(
        KpiSnapshotWorkflow.run,
        KpiSnapshotRequest(period_start=start, period_end=end),
        id=f"kpi-snapshot-test-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
    )
    assert result.orders == 2
    stored = await kpi_sql.snapshot(stack.pool, start, end)
    assert stored is not None
    report = KpiReport.model_validate(stored)
    assert (report.orders, report.flagged, report.overturned) == (2, 1, 1)
    assert report.lead_time_seconds.count == 2

    # Taking it again replaces the period's snapshot: one row per period.
    await stack.client.execute_workflow(
        KpiSnapshotWorkflow.run,
        KpiSnapshotRequest(period_start=start, period_end=end),
        id=f"kpi-snapshot-test-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
    )
    rows = await kpi_sql.latest_snapshots(stack.pool, 10)
    assert [(r["period_start"], r["period_end"]) for r in rows].count((start, end)) == 1


async def test_weekly_schedule_is_created_once_and_takes_the_last_week(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"kpi_schedule_id": f"kpi-weekly-test-{uuid.uuid4().hex[:8]}"}
    )
    assert await ensure_kpi_schedule(stack.client, settings) is True
    handle = stack.client.get_schedule_handle(settings.kpi_schedule_id)
    try:
        assert await ensure_kpi_schedule(stack.client, settings) is False
        described = await handle.describe()
        # The server keeps the cron "5 0 * * 1" as a calendar: Mondays at 00:05 UTC.
        assert _when(described.schedule.spec) == ([1], [0], [5])
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "KpiSnapshotWorkflow"
        assert action.task_queue == settings.task_queue

        # A changed setting reaches the existing schedule.
        changed = settings.model_copy(update={"kpi_schedule_cron": "0 3 * * 1"})
        assert await ensure_kpi_schedule(stack.client, changed) is False
        assert _when((await handle.describe()).schedule.spec) == ([1], [3], [0])

        # Run it now, as the weekly trigger would: the past seven whole days are stored.
        await handle.trigger()
        period = snapshot_period(datetime.now(UTC), KpiSnapshotRequest())
        stored = None
        for _ in range(150):
            stored = await kpi_sql.snapshot(stack.pool, period.period_start, period.period_end)
            if stored is not None:
                break
            await asyncio.sleep(0.2)
        assert stored is not None, "the scheduled snapshot was stored"
        assert KpiReport.model_validate(stored).period_end == period.period_end
    finally:
        await handle.delete()
