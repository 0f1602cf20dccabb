"""The worker process: hosts the order workflow and its activities on one task queue.

Start as many as you like (`orderflow worker`); they share the task queue and PostgreSQL,
and nothing here assumes a single process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.worker import (
    PollerBehaviorSimpleMaximum,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.cancellation import CancellationActivities
from activities.fulfilment import FulfilmentActivities
from activities.intake import IntakeActivities
from activities.inventory import InventoryActivities
from activities.kpi import KpiActivities
from activities.marketplace import MarketplaceActivities
from activities.payments import PaymentActivities
from activities.pre_orders import PreOrderActivities
from activities.process_review import ProcessReviewActivities
from activities.psp_client import PspClient
from activities.registry import defined_activities
from activities.replenishment import ReplenishmentActivities
from activities.returns import ReturnActivities
from activities.review import ReviewActivities
from activities.risk_calibration import RiskCalibrationActivities
from activities.shipping import ShippingActivities
from db.migrate import apply_migrations
from db.pool import create_pool
from db.repositories.process_changes import record_configuration_at_start
from orderflow.settings import Settings
from orderflow.temporal_client import connect_temporal
from starter.marketplace_pollers import start_marketplace_pollers
from workers.metrics import temporal_runtime, worker_metrics
from workers.outbox import run_dispatcher
from workers.webhooks import run_webhook_dispatcher
from workflows.kpi_snapshot import KpiSnapshotWorkflow
from workflows.marketplace_poller import MarketplacePollerWorkflow
from workflows.order import OrderWorkflow
from workflows.process_review import ProcessReviewWorkflow
from workflows.replenishment import ReplenishmentWorkflow
from workflows.returns import ReturnWorkflow
from workflows.risk_calibration import RiskCalibrationWorkflow

log = logging.getLogger("orderflow.worker")

# The strict runner, which every workflow test (tests/fast, tests/replay) uses: it refuses a
# non-deterministic call (the clock, randomness, I/O) in workflow code. The models validate
# e-mail addresses; their helper libraries are deterministic and are shared with the sandbox
# instead of being re-imported for every workflow run.
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "pydantic", "pydantic_core", "email_validator", "idna", "annotated_types"
    )
)
# Every module shared with the sandbox: imported once per process, still checked per call.
PASSTHROUGH_SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The runner `worker_workflow_runner` names; by default none.

    The sandbox re-imports the workflow modules for every run and checks every call they
    make: about a third of the worker's CPU per order. Without it, what the sandbox checks
    at run time is checked before: the import contracts keep I/O libraries out of
    workflows/, the workflow tests run every path under `SANDBOX`, and the recorded
    histories also replay one after another on this runner, so state a run leaves in a
    module cannot steer the next.
    """
    if settings.worker_workflow_runner == "off":
        return UnsandboxedWorkflowRunner()
    if settings.worker_workflow_runner == "passthrough":
        return PASSTHROUGH_SANDBOX
    return SANDBOX


def activity_groups(
    pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    settings: Settings,
    psp: PspClient | None = None,
) -> tuple[object, ...]:
    """Every group of activities this worker hosts, each with what it needs (without `psp`,
    a client of the configured PSP of its own)."""
    psp = psp or PspClient(settings)
    return (
        IntakeActivities(pool, settings),
        ReviewActivities(pool, settings),
        InventoryActivities(pool, settings),
        PreOrderActivities(pool, settings),
        FulfilmentActivities(pool, settings),
        CancellationActivities(pool, settings),
        ShippingActivities(pool, settings, http),
        PaymentActivities(pool, settings, psp),
        ReplenishmentActivities(pool, settings),
        KpiActivities(pool),
        ProcessReviewActivities(pool, settings),
        RiskCalibrationActivities(pool, settings),
        MarketplaceActivities(pool, settings, http),
        ReturnActivities(pool, settings, http, psp),
    )


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    settings: Settings,
    psp: PspClient | None = None,
) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[
            OrderWorkflow,
            ReplenishmentWorkflow,
            KpiSnapshotWorkflow,
            ProcessReviewWorkflow,
            MarketplacePollerWorkflow,
            RiskCalibrationWorkflow,
            ReturnWorkflow,
        ],
        activities=defined_activities(*activity_groups(pool, http, settings, psp)),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=workflow_runner(settings),
        **workflow_task_polls(settings),
    )


def workflow_task_polls(settings: Settings) -> dict[str, Any]:
    """How the worker polls for workflow tasks: its polls in flight, and their share for the
    task queue (new orders' first tasks) against its sticky queue (orders under way)."""
    return {
        "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(
            maximum=settings.worker_workflow_task_polls
        ),
        "nonsticky_to_sticky_poll_ratio": settings.worker_nonsticky_to_sticky_poll_ratio,
    }


@contextlib.asynccontextmanager
async def worker_resources(
    settings: Settings, database_url: str
) -> AsyncIterator[tuple[asyncpg.Pool, httpx.AsyncClient]]:
    pool = await create_pool(
        database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        async with httpx.AsyncClient() as http:
            yield pool, http
    finally:
        await pool.close()


async def run_worker(
    settings: Settings, *, database_url: str, temporal_address: str | None = None
) -> None:
    settings.require_safe_for_production()
    runtime, sdk_metrics_port = temporal_runtime() if settings.worker_metrics_port else (None, 0)
    client = await connect_temporal(settings, temporal_address, runtime=runtime)
    async with (
        worker_resources(settings, database_url) as (pool, http),
        PspClient(settings) as psp,
        worker_metrics(settings, pool, temporal_metrics_port=sdk_metrics_port),
    ):
        # Its risk weights, carriers and replenishment parameters differing from the last
        # start's are dated process changes.
        await record_configuration_at_start(pool, settings, by="worker")
        worker = build_worker(client, pool, http, settings, psp)
        dispatcher = (
            asyncio.create_task(run_dispatcher(pool, settings))
            if settings.outbox_dispatch
            else None
        )
        webhook_dispatcher = (
            asyncio.create_task(run_webhook_dispatcher(pool, settings))
            if settings.webhook_dispatch
            else None
        )
        await start_marketplace_pollers(client, settings)
        log.info("worker listening on task queue %s", settings.task_queue)
        try:
            await worker.run()
        finally:
            for task in (dispatcher, webhook_dispatcher):
                if task:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
