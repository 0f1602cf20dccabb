"""Starts and messages return workflows (`workflows/returns.py`), one per return, beside
the order's own workflow."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from orderflow.models.messages import TrackingUpdate
from orderflow.models.returns import (
    InspectionReport,
    ReturnDecision,
    ReturnView,
    ReturnWorkflowInput,
)
from workflows.returns import ReturnWorkflow, workflow_id_for


class ReturnClient:
    def __init__(self, client: Client, *, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    def handle(self, return_id: str) -> WorkflowHandle[ReturnWorkflow, ReturnView]:
        return self._client.get_workflow_handle_for(ReturnWorkflow.run, workflow_id_for(return_id))

    async def start(self, data: ReturnWorkflowInput) -> None:
        await self._client.start_workflow(
            ReturnWorkflow.run,
            data,
            id=workflow_id_for(data.return_id),
            task_queue=self._task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # The request's row is written once; a repeated start finds its workflow running.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def view(self, return_id: str) -> ReturnView:
        return await self.handle(return_id).query(ReturnWorkflow.view)

    async def parcel_tracking(self, return_id: str, update: TrackingUpdate) -> None:
        await self.handle(return_id).signal(ReturnWorkflow.parcel_tracking, update)

    async def decide(self, return_id: str, decision: ReturnDecision) -> ReturnView:
        return await self.handle(return_id).execute_update(ReturnWorkflow.decide, decision)

    async def inspect(self, return_id: str, report: InspectionReport) -> ReturnView:
        return await self.handle(return_id).execute_update(ReturnWorkflow.inspect, report)
