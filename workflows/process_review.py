"""The weekly process review: started by the Temporal Schedule `process-review-weekly`
(starter/process_review_schedule.py) or on demand (`orderflow process-review --week`), it
has the week's review pack built, stored and mailed to the department leads.
Deterministic orchestration only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from orderflow.models.activity_names import ActivityName
    from orderflow.models.process_review import (
        ProcessReviewRequest,
        ProcessReviewResult,
        review_week,
    )


@workflow.defn
class ProcessReviewWorkflow:
    @workflow.run
    async def run(self, request: ProcessReviewRequest) -> ProcessReviewResult:
        week = review_week(workflow.now(), request)
        result: ProcessReviewResult = await workflow.execute_activity(
            ActivityName.BUILD_PROCESS_REVIEW,
            week,
            # Five weeks of KPIs and a chart: seconds for thousands of orders a week.
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)
            ),
            result_type=ProcessReviewResult,
        )
        return result
