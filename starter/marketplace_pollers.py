"""Starts the poller of every configured marketplace (workflows/marketplace_poller.py).

Every worker calls this at start; a poller that runs already is left as it is (one per
marketplace, by its workflow id), so the cursor in its history is never reset. A poller of
a marketplace no longer configured keeps failing its fetch until an operator terminates it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from orderflow.models.marketplace import MarketplacePollerInput
from orderflow.settings import Settings
from workflows.marketplace_poller import MarketplacePollerWorkflow, poller_id


async def start_marketplace_pollers(client: Client, settings: Settings) -> list[str]:
    """The ids of the pollers of `settings.marketplaces`, started where none runs."""
    started = []
    for marketplace in settings.marketplaces:
        handle = await client.start_workflow(
            MarketplacePollerWorkflow.run,
            MarketplacePollerInput(
                code=marketplace.code,
                poll_interval=timedelta(seconds=marketplace.poll_seconds),
                page_size=settings.marketplace_page_size,
                policy=settings.order_policy,
            ),
            id=poller_id(marketplace.code),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        started.append(handle.id)
    return started
