"""The yardstick of the throughput target: a workflow of eight no-op regular activities in sequence.

Its rate on a given server is what "as fast as eight plain activities" means; the order
workflow is measured against it in the same run, on the same server.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

STEPS = 8


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BenchBaseline")
class BaselineWorkflow:
    """Eight regular activities that do nothing, one after another."""

    @workflow.run
    async def run(self, steps: int = STEPS) -> int:
        for step in range(steps):
            await workflow.execute_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        return steps


def build_baseline_worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[BaselineWorkflow], activities=[noop])
