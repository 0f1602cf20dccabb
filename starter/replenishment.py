"""Starting replenishment: the daily Temporal Schedule (created idempotently, as `orderflow
up` does) and a run started now."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from orderflow.models.replenishment import ReplenishmentInput, ReplenishmentReport
from orderflow.settings import Settings
from workflows.replenishment import ReplenishmentWorkflow


def scheduled_input(settings: Settings) -> ReplenishmentInput:
    return ReplenishmentInput(
        parameters=settings.replenishment.parameters(),
        batch_size=settings.replenishment.batch_size,
    )


async def ensure_replenishment_schedule(
    client: Client,
    settings: Settings,
    *,
    schedule_id: str | None = None,
    workflow_input: ReplenishmentInput | None = None,
) -> bool:
    """Create the replenishment schedule unless it exists; True when this call created it."""
    schedule_id = schedule_id or settings.replenishment.schedule_id
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    ReplenishmentWorkflow.run,
                    workflow_input or scheduled_input(settings),
                    id=f"{schedule_id}-run",
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(cron_expressions=[settings.replenishment.schedule_cron]),
                # A run still going when the next is due finishes first; none piles up.
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True


async def run_replenishment(
    client: Client, settings: Settings, workflow_input: ReplenishmentInput
) -> ReplenishmentReport:
    """One replenishment run now, waited for."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return await client.execute_workflow(
        ReplenishmentWorkflow.run,
        workflow_input,
        id=f"replenishment-manual-{stamp}",
        task_queue=settings.task_queue,
    )
