"""Stuck orders: running order workflows that have stayed in one status longer than its
service level (`orderflow.process.STATUS_SLA`).

Temporal visibility says which workflows still run and in which status (the `OrderStatus`
search attribute); the event table says since when. Only orders on which both agree are
judged, so an order caught between two steps is never reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client

from db.repositories import queues
from orderflow import search_attributes as sa
from orderflow.models import OrderPolicy, OrderStatus
from orderflow.process import STATUS_SLA, status_sla

WORKFLOW_ID_PREFIX = "order-"


class StuckOrder(BaseModel):
    order_id: str
    status: OrderStatus
    since: datetime
    # When the status's SLA ran out (from `since`, or from the expected delivery).
    due_at: datetime
    waited_seconds: float
    overdue_seconds: float
    sla: str
    order_type: str | None
    department: str | None
    customer_id: str
    expected_delivery: datetime | None


def visibility_query(statuses: list[OrderStatus]) -> str:
    """The visibility query of running order workflows in the given statuses."""
    listed = ", ".join(f"'{s.value}'" for s in statuses)
    return (
        f"WorkflowType = 'OrderWorkflow' AND ExecutionStatus = 'Running' "
        f"AND OrderStatus IN ({listed})"
    )


async def running_in_status(client: Client, *, limit: int) -> dict[str, OrderStatus]:
    """order id -> status of running order workflows, as Temporal visibility sees them."""
    found: dict[str, OrderStatus] = {}
    async for execution in client.list_workflows(visibility_query(list(STATUS_SLA)), limit=limit):
        if not execution.id.startswith(WORKFLOW_ID_PREFIX):
            continue
        status = execution.typed_search_attributes.get(sa.ORDER_STATUS)
        if status is not None and status in OrderStatus.__members__:
            found[execution.id.removeprefix(WORKFLOW_ID_PREFIX)] = OrderStatus(status)
    return found


async def stuck_orders(
    client: Client,
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    policy: OrderPolicy,
    automatic: timedelta,
    limit: int = 5000,
) -> list[StuckOrder]:
    """Stuck orders, the longest overdue first."""
    running = await running_in_status(client, limit=limit)
    if not running:
        return []
    result = []
    for row in await queues.current_statuses(conn, sorted(running)):
        status = running[row["order_id"]]
        if row["status"] != status:
            continue  # moving on right now: visibility lags the event table
        sla = STATUS_SLA[status]
        start = row["since"]
        if sla.after_expected_delivery:
            if row["expected_delivery"] is None:
                continue
            start = row["expected_delivery"]
        due_at = start + status_sla(status, policy, automatic)
        now = row["now"]
        if now <= due_at:
            continue
        result.append(
            StuckOrder(
                order_id=row["order_id"],
                status=status,
                since=row["since"],
                due_at=due_at,
                waited_seconds=(now - row["since"]).total_seconds(),
                overdue_seconds=(now - due_at).total_seconds(),
                sla=sla.describe(),
                order_type=row["order_type"],
                department=row["department"],
                customer_id=row["customer_id"],
                expected_delivery=row["expected_delivery"],
            )
        )
    result.sort(key=lambda s: (-s.overdue_seconds, s.order_id))
    return result
