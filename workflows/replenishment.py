"""The replenishment run: forecast demand per SKU from its sales history, set its reorder point
and order-up-to level, and raise purchase requests where the stock position falls short.

Started by the Temporal Schedule `replenishment-daily` (see `orderflow replenish schedule`)
or by hand (`orderflow replenish run`). Deterministic orchestration only: the SKUs are
planned in batches by activities (history read and forecast fitting, which is CPU work that
does not belong in a workflow task) and applied by activities keyed by this run, so a retry
never raises a request twice and a second run finds the positions already covered.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from orderflow.models.activity_names import ActivityName
    from orderflow.models.replenishment import (
        ApplyPlansInput,
        PlanBatchInput,
        RaisedRequest,
        ReplenishmentInput,
        ReplenishmentReport,
        SkuPlan,
    )

_TIMEOUT = timedelta(minutes=5)
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=20,
)


@workflow.defn
class ReplenishmentWorkflow:
    @workflow.run
    async def run(self, data: ReplenishmentInput) -> ReplenishmentReport:
        as_of = data.as_of or workflow.now().date()
        info = workflow.info()
        run_key = f"{info.workflow_id}/{info.run_id}"
        skus: list[str] = (
            sorted(set(data.skus))
            if data.skus is not None
            else await workflow.execute_activity(
                ActivityName.LIST_REPLENISHMENT_SKUS,
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_RETRY,
                result_type=list[str],
            )
        )
        planned: list[SkuPlan] = []
        skipped: list[SkuPlan] = []
        raised: list[RaisedRequest] = []
        for start in range(0, len(skus), data.batch_size):
            batch = skus[start : start + data.batch_size]
            plans: list[SkuPlan] = await workflow.execute_activity(
                ActivityName.PLAN_REPLENISHMENT,
                PlanBatchInput(skus=batch, as_of=as_of, parameters=data.parameters),
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_RETRY,
                result_type=list[SkuPlan],
            )
            planned.extend(p for p in plans if not p.skipped)
            skipped.extend(p for p in plans if p.skipped)
            raised.extend(
                await workflow.execute_activity(
                    ActivityName.APPLY_REPLENISHMENT,
                    ApplyPlansInput(run_key=run_key, as_of=as_of, plans=plans),
                    start_to_close_timeout=_TIMEOUT,
                    retry_policy=_RETRY,
                    result_type=list[RaisedRequest],
                )
            )
        return ReplenishmentReport(as_of=as_of, planned=planned, skipped=skipped, raised=raised)
