"""The Temporal Schedule that takes the weekly KPI snapshot (`kpi-weekly`), created or
brought up to date idempotently: call `ensure_kpi_schedule` at every start of the stack."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from orderflow.settings import Settings
from policies.kpi import KpiSnapshotRequest
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
    schedule = kpi_schedule(settings)
    try:
        await client.create_schedule(settings.kpi_schedule_id, schedule)
        return True
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(settings.kpi_schedule_id).update(update)
        return False
