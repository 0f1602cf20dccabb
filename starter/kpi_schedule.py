"""The Temporal Schedule that takes the weekly KPI snapshot (`kpi-weekly`), created or
brought up to date idempotently: call `ensure_kpi_schedule` at every start of the stack."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from orderflow.settings import Settings
from policies.kpi import KpiSnapshotRequest
from starter.schedules import ensure_schedule
from workflows.kpi_snapshot import KpiSnapshotWorkflow

SNAPSHOT_WORKFLOW_ID = "kpi-snapshot"


def kpi_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            KpiSnapshotWorkflow.run,
            KpiSnapshotRequest(),
            id=SNAPSHOT_WORKFLOW_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[settings.kpi_schedule_cron]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
    )


async def ensure_kpi_schedule(client: Client, settings: Settings) -> bool:
    """Create the schedule, or update an existing one to the settings; True when created."""
    return await ensure_schedule(client, settings.kpi_schedule_id, kpi_schedule(settings))
