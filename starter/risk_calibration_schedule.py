"""The Temporal Schedule that calibrates the risk threshold (`risk-calibration-daily`),
created or brought up to date idempotently: call `ensure_risk_calibration_schedule` at every
start of the stack."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from orderflow.models.risk import RiskCalibrationRequest
from orderflow.settings import Settings
from starter.schedules import ensure_schedule
from workflows.risk_calibration import RiskCalibrationWorkflow

CALIBRATION_WORKFLOW_ID = "risk-calibration"


def risk_calibration_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RiskCalibrationWorkflow.run,
            RiskCalibrationRequest(),
            id=CALIBRATION_WORKFLOW_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.risk_calibration_every)]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=1)
        ),
    )


async def ensure_risk_calibration_schedule(client: Client, settings: Settings) -> bool:
    """Create the schedule, or update an existing one to the settings; True when created."""
    return await ensure_schedule(
        client, settings.risk_calibration_schedule_id, risk_calibration_schedule(settings)
    )
