"""The weekly KPI snapshot's one effect: compute a period's KPIs from the event data and
store them in `kpi_snapshots` (replacing an earlier snapshot of the same period)."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from db.repositories import kpi as kpi_sql
from orderflow.models.activity_names import ActivityName
from policies.kpi import KpiPeriod, KpiSnapshotResult, compute_kpis


class KpiActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=ActivityName.STORE_KPI_SNAPSHOT)
    async def store_kpi_snapshot(self, period: KpiPeriod) -> KpiSnapshotResult:
        async with self._pool.acquire() as conn:
            inputs = await kpi_sql.load_inputs(conn, period.period_start, period.period_end)
            report = compute_kpis(period.period_start, period.period_end, inputs)
            taken_at = await kpi_sql.store_snapshot(
                conn, period.period_start, period.period_end, report.model_dump(mode="json")
            )
        return KpiSnapshotResult(
            period_start=period.period_start,
            period_end=period.period_end,
            orders=report.orders,
            taken_at=taken_at,
        )
