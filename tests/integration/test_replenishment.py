"""The replenishment run on the dev server against sales history in PostgreSQL: it sets
reorder points from the forecast, raises exactly one purchase request per short SKU (added
to an open shortage request where there is one) and none for ample stock, raises nothing
more when run again, and its Temporal Schedule is created once and starts real runs."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities.inventory import InventoryActivities
from app.cli import app
from db.repositories import sales
from orderflow.models import OrderPolicy
from orderflow.models.replenishment import (
    ReplenishmentInput,
    ReplenishmentParameters,
    ReplenishmentReport,
)
from orderflow.settings import get_settings
from starter.replenishment import ensure_replenishment_schedule, run_replenishment
from tests.integration.inventory_support import new_sku, open_requests, record_orders, stock
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

PARAMETERS = ReplenishmentParameters(
    service_level=0.95, lead_time_days=7, review_period_days=1, history_days=120
)
# Monday-first weekday shape of the seeded demand; a whole week sums to 7 (averages 1).
WEEK = (0.8, 0.9, 0.9, 1.0, 1.1, 1.4, 0.9)
# One planning day of each weekday: the forecast's horizon starts on a different day in each.
PLANNING_DAYS = [date(2026, 6, 1) + timedelta(days=d) for d in range(7)]


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


def _demand(per_day: float, day: date) -> float:
    return per_day * WEEK[day.weekday()]


def _seeded_demand(per_day: float, first: date, days: int) -> float:
    """What the seeded shape sells over `days` days from `first`."""
    return sum(_demand(per_day, first + timedelta(days=d)) for d in range(days))


async def _seed_sales(
    pool: asyncpg.Pool, sku: str, per_day: float, *, as_of: date, days: int = 120
) -> None:
    """`days` days of sales ending the day before `as_of`, in the weekly shape."""
    rows = []
    for back in range(1, days + 1):
        day = as_of - timedelta(days=back)
        rows.append((sku, day, round(_demand(per_day, day))))
    async with pool.acquire() as conn, conn.transaction():
        await sales.record_history(conn, rows)


def _plan(report: ReplenishmentReport, sku: str):  # type: ignore[no-untyped-def]
    (plan,) = [p for p in report.planned if p.sku == sku]
    return plan


@pytest.mark.parametrize("as_of", PLANNING_DAYS, ids=lambda d: d.strftime("%A"))
async def test_forecast_sets_levels_and_raises_one_request_per_short_sku_and_only_once(
    stack: Stack, as_of: date
) -> None:
    short = await new_sku(stack.pool, on_hand=20, prefix="RPL")
    ample = await new_sku(stack.pool, on_hand=1000, prefix="RPL")
    queued = await new_sku(stack.pool, on_hand=0, prefix="RPL")
    unsold = await new_sku(stack.pool, on_hand=3, reorder_point=7, order_up_to=9, prefix="RPL")
    per_day = {short: 10, ample: 2, queued: 10}
    for sku, demand in per_day.items():
        await _seed_sales(stack.pool, sku, demand, as_of=as_of)
    # A waiting order already opened a shortage request for the queued SKU.
    (waiting,) = await record_orders(stack.pool, [[(queued, 4)]])
    reservation = await InventoryActivities(stack.pool, stack.settings).reserve_stock(waiting)
    assert not reservation.reserved
    assert [(r["quantity"], r["reason"]) for r in await open_requests(stack.pool, queued)] == [
        (4, "shortage")
    ]

    workflow_input = ReplenishmentInput(
        parameters=PARAMETERS, skus=[short, ample, queued, unsold], as_of=as_of
    )
    report = await run_replenishment(stack.client, stack.settings, workflow_input)

    assert report.as_of == as_of
    assert [p.sku for p in report.skipped] == [unsold]
    short_plan, ample_plan, queued_plan = (_plan(report, s) for s in (short, ample, queued))
    # The forecast learned the demand level: about 10 a day (the weekly shape averages 1).
    assert 9.0 < short_plan.mean_daily_demand < 11.5
    assert 1.5 < ample_plan.mean_daily_demand < 2.6
    for plan in (short_plan, ample_plan, queued_plan):
        # s covers the seven days of lead time, S also the review day after them, whichever
        # weekday the horizon starts on (a unit's slack for the forecast's rounding).
        lead_time = _seeded_demand(per_day[plan.sku], as_of, 7)
        protection = _seeded_demand(per_day[plan.sku], as_of, 8)
        assert plan.reorder_point >= lead_time - 1
        assert plan.order_up_to >= protection - 1
        assert plan.order_up_to > plan.reorder_point
        level = await stock(stack.pool, plan.sku)
        assert (level["reorder_point"], level["order_up_to"]) == (
            plan.reorder_point,
            plan.order_up_to,
        )
    unsold_level = await stock(stack.pool, unsold)
    assert (unsold_level["reorder_point"], unsold_level["order_up_to"]) == (7, 9)

    # Short: 20 on hand against about 80 needed over lead time: one forecast request up to S.
    assert short_plan.inventory_position == 20
    raised = {r.sku: r.quantity for r in report.raised}
    assert raised == {
        short: short_plan.order_up_to - 20,
        queued: queued_plan.order_up_to,  # position 0 - 4 waiting + 4 on order
    }
    assert [(r["quantity"], r["reason"]) for r in await open_requests(stack.pool, short)] == [
        (short_plan.order_up_to - 20, "forecast")
    ]
    assert await open_requests(stack.pool, ample) == []
    assert await open_requests(stack.pool, unsold) == []
    # Queued: still the one open request, now covering the waiting order and the forecast.
    assert [(r["quantity"], r["reason"]) for r in await open_requests(stack.pool, queued)] == [
        (4 + queued_plan.order_up_to, "shortage")
    ]
    recorded = await stack.pool.fetchval(
        "SELECT count(*) FROM replenishment_plans WHERE sku = ANY($1::text[])",
        [short, ample, queued, unsold],
    )
    assert recorded == 3

    again = await run_replenishment(stack.client, stack.settings, workflow_input)
    assert again.raised == []
    assert [r["quantity"] for r in await open_requests(stack.pool, short)] == [
        short_plan.order_up_to - 20
    ]
    assert [r["quantity"] for r in await open_requests(stack.pool, queued)] == [
        4 + queued_plan.order_up_to
    ]
    assert await open_requests(stack.pool, ample) == []


async def test_the_schedule_is_created_once_and_starts_real_runs(stack: Stack) -> None:
    sku = await new_sku(stack.pool, on_hand=0, prefix="RPL")
    # The scheduled run plans for its own day: the history ends the day before it.
    await _seed_sales(stack.pool, sku, 5, as_of=datetime.now(UTC).date())
    schedule_id = f"replenishment-test-{uuid.uuid4().hex[:8]}"
    workflow_input = ReplenishmentInput(parameters=PARAMETERS, skus=[sku])

    created = await ensure_replenishment_schedule(
        stack.client, stack.settings, schedule_id=schedule_id, workflow_input=workflow_input
    )
    again = await ensure_replenishment_schedule(
        stack.client, stack.settings, schedule_id=schedule_id, workflow_input=workflow_input
    )
    assert (created, again) == (True, False)
    handle = stack.client.get_schedule_handle(schedule_id)
    try:
        description = await handle.describe()
        # The server keeps the cron "0 5 * * *" as a calendar: daily at 05:00.
        (calendar,) = description.schedule.spec.calendars
        assert [(r.start, r.end) for r in calendar.hour] == [(5, 5)]
        assert [(r.start, r.end) for r in calendar.minute] == [(0, 0)]
        assert isinstance(description.schedule.action, ScheduleActionStartWorkflow)
        assert description.schedule.action.workflow == "ReplenishmentWorkflow"
        await handle.trigger()
        deadline = time.monotonic() + 60
        while not (description := await handle.describe()).info.recent_actions:
            assert time.monotonic() < deadline, "the schedule started no run"
            await asyncio.sleep(0.2)
        action = description.info.recent_actions[0].action
        assert isinstance(action, ScheduleActionExecutionStartWorkflow)
        report = await stack.client.get_workflow_handle(
            action.workflow_id, result_type=ReplenishmentReport
        ).result()
        assert [r.sku for r in report.raised] == [sku]
        assert len(await open_requests(stack.pool, sku)) == 1
    finally:
        await handle.delete()


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_seed_sales_loads_a_demo_history_for_the_catalogue(
    stack: Stack, cli: CliRunner
) -> None:
    result = await asyncio.to_thread(cli.invoke, app, ["replenish", "seed-sales", "--days", "60"])
    assert result.exit_code == 0, result.output
    today = datetime.now(UTC).date()
    skus = await sales.replenishable_skus(stack.pool)
    rows = await stack.pool.fetch(
        """SELECT sku, min(day) AS first, max(day) AS last, count(*) AS days
           FROM sales_history WHERE sku = ANY($1::text[]) AND day >= $2 GROUP BY sku""",
        skus,
        today - timedelta(days=60),
    )
    written = re.search(r"(\d+) days of sales recorded", result.output)
    assert written is not None and 0 < int(written.group(1)) <= sum(r["days"] for r in rows)
    # Three in four generated SKUs are regular sellers, selling on most days.
    regular = [r for r in rows if r["days"] > 30]
    assert len(regular) >= len(skus) * 3 // 4 - 1
    mug = next(r for r in rows if r["sku"] == "SKU-RED-MUG")
    assert today - timedelta(days=60) <= mug["first"] and mug["last"] < today
