"""`orderflow replenish`: the scheduled replenishment run (forecast, reorder points, purchase
requests): create its Temporal Schedule, run it now, or load a demo sales history.

Starting the runs is `starter/replenishment.py`'s job; `orderflow up` creates the same
schedule through it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import (
    Client,
)

from orderflow.models.replenishment import ReplenishmentReport
from orderflow.settings import Settings, get_settings
from starter.replenishment import ensure_replenishment_schedule, run_replenishment, scheduled_input

app = typer.Typer(
    help="Demand forecast and replenishment: schedule, run now, demo sales history.",
    no_args_is_help=True,
)
console = Console()


async def _client(settings: Settings) -> Client:
    from orderflow.temporal_client import connect_temporal

    return await connect_temporal(settings)


@app.command("schedule")
def schedule_command() -> None:
    """Create the daily replenishment schedule (idempotent)."""
    settings = get_settings()

    async def create() -> bool:
        return await ensure_replenishment_schedule(await _client(settings), settings)

    created = asyncio.run(create())
    state = "created" if created else "exists already"
    console.print(
        f"schedule {settings.replenishment.schedule_id} {state} "
        f"(cron {settings.replenishment.schedule_cron!r} UTC)"
    )


@app.command("run")
def run_command(
    sku: Annotated[
        list[str] | None, typer.Option("--sku", help="Only this SKU (repeatable).")
    ] = None,
) -> None:
    """Run the replenishment now and print what it decided."""
    settings = get_settings()
    base = scheduled_input(settings)
    workflow_input = base.model_copy(update={"skus": sku}) if sku else base

    async def run() -> ReplenishmentReport:
        return await run_replenishment(await _client(settings), settings, workflow_input)

    report = asyncio.run(run())
    table = Table(title=f"replenishment as of {report.as_of}")
    for column in (
        "sku",
        "method",
        "mean/day",
        "reorder point",
        "order-up-to",
        "position",
        "ordered",
    ):
        table.add_column(column)
    raised = {r.sku: r.quantity for r in report.raised}
    for plan in report.planned:
        table.add_row(
            plan.sku,
            plan.method,
            f"{plan.mean_daily_demand:.1f}",
            str(plan.reorder_point),
            str(plan.order_up_to),
            str(plan.inventory_position),
            str(raised.get(plan.sku, "")),
        )
    console.print(table)
    for plan in report.skipped:
        console.print(f"skipped {plan.sku}: {plan.skipped}")


@app.command("seed-sales")
def seed_sales_command(
    days: Annotated[int, typer.Option(help="Days of history, ending yesterday.")] = 365,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 7,
) -> None:
    """Load a generated demo sales history (trend, weekly season, promotions, intermittent
    sellers) for the catalogue's SKUs, so the forecast has something to learn from."""
    from app.datagen.sales import generate_sales
    from db.pool import connect
    from db.repositories import sales

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")

    async def load() -> int:
        conn = await connect(settings.database_url or "")
        try:
            skus = await sales.replenishable_skus(conn)
            if not skus:
                return 0
            start = datetime.now(UTC).date() - timedelta(days=days)
            histories = generate_sales(days=days, skus=len(skus), seed=seed, start=start)
            rows = [
                (sku, day, quantity)
                for sku, history in zip(skus, histories, strict=True)
                for day, _, quantity in history.rows()
            ]
            async with conn.transaction():
                return await sales.record_history(conn, rows)
        finally:
            await conn.close()

    count = asyncio.run(load())
    console.print(f"{count} days of sales recorded")
