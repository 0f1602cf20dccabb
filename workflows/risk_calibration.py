"""The risk calibration: started by the Temporal Schedule `risk-calibration-daily`
(starter/risk_calibration_schedule.py), it fits the flag threshold on the labelled outcomes
so far and lets the new version go live only if it is not worse on the holdout.
Deterministic orchestration only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from orderflow.models.activity_names import ActivityName
    from orderflow.models.risk import (
        RiskCalibrationInput,
        RiskCalibrationRequest,
        RiskCalibrationResult,
    )


@workflow.defn
class RiskCalibrationWorkflow:
    @workflow.run
    async def run(self, request: RiskCalibrationRequest) -> RiskCalibrationResult:
        # A scheduled run's workflow id carries its scheduled time: one version per run.
        data = RiskCalibrationInput(
            calibration_key=workflow.info().workflow_id, as_of=request.as_of or workflow.now()
        )
        result: RiskCalibrationResult = await workflow.execute_activity(
            ActivityName.CALIBRATE_RISK,
            data,
            # Months of labelled orders are read and scored in seconds; leave room.
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)
            ),
            result_type=RiskCalibrationResult,
        )
        return result
