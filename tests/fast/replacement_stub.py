"""A stand-in for the order workflow an exchange starts: it only says which order it was
given. In a module of its own, so the strict sandbox can import it cleanly."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from orderflow.models import OrderWorkflowInput


@workflow.defn(name="OrderWorkflow")
class ReplacementOrder:
    @workflow.run
    async def run(self, data: OrderWorkflowInput) -> str:
        return data.order.order_id
