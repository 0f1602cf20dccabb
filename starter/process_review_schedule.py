"""The Temporal Schedule that builds the weekly process review pack
(`process-review-weekly`), created or brought up to date idempotently at every start of the
stack; and a run on demand for one week (`orderflow process-review --week`)."""

from __future__ import annotations

from datetime import date, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import WorkflowIDReusePolicy

from orderflow.models.process_review import ProcessReviewRequest, ProcessReviewResult
from orderflow.settings import Settings
from starter.schedules import ensure_schedule
from workflows.process_review import ProcessReviewWorkflow

REVIEW_WORKFLOW_ID = "process-review"


def process_review_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ProcessReviewWorkflow.run,
            ProcessReviewRequest(),
            id=REVIEW_WORKFLOW_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[settings.process_review_schedule_cron]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
    )


async def ensure_process_review_schedule(client: Client, settings: Settings) -> bool:
    """Create the schedule, or update an existing one to the settings; True when created."""
    return await ensure_schedule(
        client, settings.process_review_schedule_id, process_review_schedule(settings)
    )


async def build_review_now(client: Client, settings: Settings, week: date) -> ProcessReviewResult:
    """Build (or rebuild) the pack of the week starting on `week`, and wait for it."""
    return await client.execute_workflow(
        ProcessReviewWorkflow.run,
        ProcessReviewRequest(week_start=week),
        id=f"{REVIEW_WORKFLOW_ID}-{week.isoformat()}",
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
