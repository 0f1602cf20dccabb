"""The weekly KPI snapshot: started by the Temporal Schedule `kpi-weekly`
(starter/kpi_schedule.py), it stores the KPIs of the past week so a change to the process
can later be judged before and after. Deterministic orchestration only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from orderflow.models.activity_names import ActivityName
    from policies.kpi import KpiSnapshotRequest, KpiSnapshotResult, snapshot_period


@workflow.defn
class KpiSnapshotWorkflow:
    @workflow.run
    async def run(self, request: KpiSnapshotRequest) -> KpiSnapshotResult:
        period = snapshot_period(workflow.now(), request)
        result: KpiSnapshotResult = await workflow.execute_activity(
            ActivityName.STORE_KPI_SNAPSHOT,
            period,
            # A week of thousands of orders is read in seconds; leave room for far more.
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)
            ),
            result_type=KpiSnapshotResult,
        )
        return result
