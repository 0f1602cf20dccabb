"""Thousands of orders in flight waiting on people, with bounded worker memory.

    python -m bench.scale -n 2000 --cache 300

One process, one Temporal server (its own dev server and PostgreSQL unless
`TEMPORAL_ADDRESS` / `DATABASE_URL` are set). The order side (carrier simulator in `instant`
mode, API, worker) runs in this process, the worker keeping at most `--cache` workflows in
its sticky cache. N orders of distinct customers, on a manual-warehouse policy with a
four-hour pick SLA, are placed C at a time; each runs to PICKING and then waits on a timer
and a person. Measured: the time until all N are PICKING (from the `orders` table), this
process's RSS before, at half, at all and after an idle spell, and how many runs Temporal's
visibility sees waiting in PICKING. Then a sample of them is picked and packed through the
storefront's Updates and must reach COMPLETED: workflows the worker evicted come back from
their history on demand. Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
import uuid
from collections.abc import Iterable

import asyncpg
import psutil
import typer
from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client

from bench.measure import capture_core_warnings
from bench.orders import bench_order, provision_stock
from bench.servers import OrderSide, Servers, embedded_servers, order_side, prepare
from db.pool import create_pool
from orderflow.models import OrderPolicy
from orderflow.models.messages import PackedReport, PickedReport
from orderflow.settings import Settings
from orderflow.temporal_client import connect_temporal
from stack.supervisor import free_port

# Every benchmark SKU weighs 0.5 kg; the automatic warehouse adds 0.3 kg of packaging.
PACKED_WEIGHT_KG = 0.8
PICKING = "PICKING"
COMPLETED = "COMPLETED"
# The SDK core's warning when the server no longer knows a task it completes: it timed out.
TASK_NOT_FOUND = "Task not found when completing"


class ScaleOptions(BaseModel):
    orders: int = Field(default=2000, ge=1)
    cache: int = Field(default=300, ge=1)
    concurrency: int = Field(default=50, ge=1)
    sample: int = Field(default=20, ge=0)
    idle_seconds: float = Field(default=20.0, ge=0)
    timeout_seconds: float = Field(default=900.0, gt=0)


class ScaleError(RuntimeError):
    """The run could not be measured (orders stuck, visibility never caught up)."""


class ScaleReport(BaseModel):
    """Every figure of one run; `model_dump_json()` is the final JSON line."""

    orders: int
    cache: int
    seconds_to_picking: float
    rss_mb_start: float
    rss_mb_half: float
    rss_mb_all: float
    rss_mb_idle: float
    running_in_visibility: int
    sample_completed: int
    sample_size: int = 0
    sample_seconds: float = 0.0
    seconds_placing: float = 0.0
    # Workflow tasks the SDK core reported as taking over 5 seconds, and task completions the
    # server refused because the task had already timed out (and was handed out again).
    slow_workflow_tasks: int = 0
    timed_out_workflow_tasks: int = 0
    gc_objects_start: int = 0
    gc_objects_half: int = 0
    gc_objects_all: int = 0
    gc_objects_idle: int = 0


def manual_warehouse_policy() -> OrderPolicy:
    """Nothing waits but the warehouse: a person picks and packs, within four hours."""
    return OrderPolicy.instant(auto_warehouse=False)


def _rss_mb() -> float:
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _gc_objects() -> int:
    return len(gc.get_objects())


async def _status_counts(pool: asyncpg.Pool, order_ids: list[str]) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM orders WHERE order_id = ANY($1::text[]) GROUP BY status",
        order_ids,
    )
    return {r["status"]: r["n"] for r in rows}


async def _in_status(pool: asyncpg.Pool, order_ids: list[str], status: str) -> int:
    return (await _status_counts(pool, order_ids)).get(status, 0)


async def _place_all(
    side: OrderSide, run_id: str, count: int, concurrency: int, progress: Progress
) -> None:
    """Place orders 0..count-1 of `run_id`, at most `concurrency` starts in flight."""
    task = progress.add_task("placing", total=count)
    indices = iter(range(count))

    async def lane() -> None:
        for index in indices:  # one shared iterator: each index goes to exactly one lane
            await side.storefront.place_order(bench_order(run_id, index))
            progress.advance(task)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(lane())


class Scale:
    """One run against already running servers."""

    def __init__(
        self, options: ScaleOptions, settings: Settings, servers: Servers, console: Console
    ) -> None:
        self.options = options
        self.settings = settings
        self.servers = servers
        self.console = console
        self.run_id = uuid.uuid4().hex[:8]

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )

    async def _to_picking(
        self, side: OrderSide, order_ids: list[str]
    ) -> tuple[float, float, float, int]:
        """Place every order. Seconds until all are placed and until all are PICKING; RSS
        and gc objects when half are PICKING."""
        opts = self.options
        half: tuple[float, int] | None = None
        placed_after: float | None = None
        started = time.perf_counter()
        with self._progress() as progress:
            placing = asyncio.create_task(
                _place_all(side, self.run_id, opts.orders, opts.concurrency, progress)
            )
            waiting = progress.add_task(PICKING, total=opts.orders)
            deadline = time.monotonic() + opts.timeout_seconds
            while True:
                picking = await _in_status(side.pool, order_ids, PICKING)
                progress.update(waiting, completed=picking)
                if half is None and picking * 2 >= opts.orders:
                    half = (_rss_mb(), _gc_objects())
                if picking == opts.orders:
                    break
                if placing.done():
                    placing.result()
                    if placed_after is None:
                        placed_after = time.perf_counter() - started
                if time.monotonic() > deadline:
                    counts = await _status_counts(side.pool, order_ids)
                    raise ScaleError(
                        f"only {picking}/{opts.orders} orders PICKING after "
                        f"{opts.timeout_seconds:.0f}s; statuses {counts}"
                    )
                await asyncio.sleep(0.25)
            seconds = time.perf_counter() - started
            await placing
        assert half is not None
        return (placed_after or seconds), seconds, *half

    async def _running_in_visibility(self, client: Client) -> int:
        """Runs visibility lists as running in PICKING on this run's queue, once it settles."""
        query = (
            f'ExecutionStatus="Running" AND OrderStatus="{PICKING}" '
            f'AND TaskQueue="{self.settings.task_queue}"'
        )
        count = -1
        for _ in range(30):
            count = (await client.count_workflows(query)).count
            if count >= self.options.orders:
                break
            await asyncio.sleep(1.0)
        return count

    async def _drive_sample(self, side: OrderSide, sample: Iterable[str]) -> None:
        """Pick and pack each order of `sample` as the warehouse staff would."""

        async def one(order_id: str) -> None:
            await side.storefront.report_picked(order_id, PickedReport())
            await side.storefront.report_packed(order_id, PackedReport(weight_kg=PACKED_WEIGHT_KG))

        async with asyncio.TaskGroup() as group:
            for order_id in sample:
                group.create_task(one(order_id))

    async def _complete_sample(self, side: OrderSide, sample: list[str]) -> tuple[int, float]:
        started = time.perf_counter()
        await self._drive_sample(side, sample)
        deadline = time.monotonic() + 120.0
        completed = 0
        with self._progress() as progress:
            task = progress.add_task(COMPLETED, total=len(sample))
            while time.monotonic() < deadline:
                completed = await _in_status(side.pool, sample, COMPLETED)
                progress.update(task, completed=completed)
                if completed == len(sample):
                    break
                await asyncio.sleep(0.25)
        return completed, time.perf_counter() - started

    async def run(self) -> ScaleReport:
        opts = self.options
        client = await prepare(self.settings, self.servers)
        pool = await create_pool(self.servers.database_url, min_size=1, max_size=2)
        try:
            await provision_stock(pool, opts.orders, self.run_id)
        finally:
            await pool.close()

        api_port, sim_port = free_port(), free_port()
        settings = self.settings.model_copy(
            update={
                "database_url": self.servers.database_url,
                "temporal_address": self.servers.temporal_address,
                "task_queue": f"bench-scale-{self.run_id}",
                "api_port": api_port,
                "carrier_api_url": f"http://127.0.0.1:{sim_port}",
                "carrier_simulator_port": sim_port,
                "carrier_webhook_base_url": f"http://127.0.0.1:{api_port}",
                "carrier_simulator_mode": "instant",
                "order_policy": manual_warehouse_policy(),
                "worker_max_cached_workflows": opts.cache,
            }
        )
        self.settings = settings
        load_client = await connect_temporal(settings, self.servers.temporal_address)
        order_ids = [bench_order(self.run_id, i).order_id for i in range(opts.orders)]
        async with order_side(settings, client, load_client) as side:
            gc.collect()
            rss_start, gc_start = _rss_mb(), _gc_objects()
            self.console.print(
                f"placing {opts.orders} orders, {opts.concurrency} at a time, "
                f"worker cache {opts.cache} (RSS {rss_start} MB)"
            )
            placing, seconds, rss_half, gc_half = await self._to_picking(side, order_ids)
            rss_all, gc_all = _rss_mb(), _gc_objects()
            self.console.print(
                f"all {opts.orders} PICKING after {seconds:.1f}s (RSS {rss_all} MB); "
                f"idle {opts.idle_seconds:.0f}s …"
            )
            await asyncio.sleep(opts.idle_seconds)
            rss_idle, gc_idle = _rss_mb(), _gc_objects()
            running = await self._running_in_visibility(load_client)
            sample = random.Random(self.run_id).sample(order_ids, min(opts.sample, opts.orders))
            self.console.print(f"picking and packing a sample of {len(sample)} …")
            completed, sample_seconds = await self._complete_sample(side, sample)
        return ScaleReport(
            orders=opts.orders,
            cache=opts.cache,
            seconds_to_picking=round(seconds, 2),
            seconds_placing=round(placing, 2),
            rss_mb_start=rss_start,
            rss_mb_half=rss_half,
            rss_mb_all=rss_all,
            rss_mb_idle=rss_idle,
            running_in_visibility=running,
            sample_completed=completed,
            sample_size=len(sample),
            sample_seconds=round(sample_seconds, 2),
            gc_objects_start=gc_start,
            gc_objects_half=gc_half,
            gc_objects_all=gc_all,
            gc_objects_idle=gc_idle,
        )


def render(r: ScaleReport) -> Table:
    table = Table(title=f"orderflow scale: {r.orders} orders waiting in PICKING, cache {r.cache}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("seconds until all PICKING", f"{r.seconds_to_picking:,.1f} s")
    table.add_row("orders/s to PICKING", f"{r.orders / r.seconds_to_picking:,.1f}")
    table.add_row("seconds to place all", f"{r.seconds_placing:,.1f} s")
    table.add_row("workflow tasks over 5 s", f"{r.slow_workflow_tasks:,}")
    table.add_row("workflow tasks timed out (handed out again)", f"{r.timed_out_workflow_tasks:,}")
    table.add_section()
    table.add_row("worker process RSS before placing", f"{r.rss_mb_start:,.1f} MB")
    table.add_row("… at half PICKING", f"{r.rss_mb_half:,.1f} MB")
    table.add_row("… all PICKING", f"{r.rss_mb_all:,.1f} MB")
    table.add_row("… after idling", f"{r.rss_mb_idle:,.1f} MB")
    table.add_row(
        "Python objects (start / half / all / idle)",
        f"{r.gc_objects_start:,} / {r.gc_objects_half:,} / {r.gc_objects_all:,} / "
        f"{r.gc_objects_idle:,}",
    )
    table.add_section()
    table.add_row("running in PICKING per visibility", f"{r.running_in_visibility:,}")
    table.add_row(
        "sample picked, packed and COMPLETED",
        f"{r.sample_completed}/{r.sample_size} in {r.sample_seconds:,.1f} s",
    )
    return table


def run_scale(options: ScaleOptions, settings: Settings, console: Console) -> ScaleReport:
    """Start the servers `settings` does not name, run the benchmark, stop them again."""
    warnings = capture_core_warnings()
    with embedded_servers(settings) as servers:
        console.print(
            f"servers: Temporal {servers.temporal_address}, PostgreSQL {servers.database_url}"
        )
        result = asyncio.run(Scale(options, settings, servers, console).run())
    timed_out = sum(n for m, n in warnings.others.items() if TASK_NOT_FOUND in m)
    for message, count in warnings.others.most_common(5):
        if TASK_NOT_FOUND not in message:
            console.print(f"SDK core warning ({count}x): {message}")
    return result.model_copy(
        update={
            "slow_workflow_tasks": warnings.slow_workflow_tasks,
            "timed_out_workflow_tasks": timed_out,
        }
    )


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    orders: int = typer.Option(2000, "-n", "--orders", min=1, help="Orders left waiting."),
    cache: int = typer.Option(300, "--cache", min=1, help="Worker's max cached workflows."),
    concurrency: int = typer.Option(50, "-c", "--concurrency", min=1, help="Starts in flight."),
    sample: int = typer.Option(20, "--sample", min=0, help="Orders then driven to COMPLETED."),
    idle: float = typer.Option(20.0, "--idle", min=0, help="Seconds idle before the last RSS."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds to reach PICKING."),
) -> None:
    """Measure, print a table, then one JSON line with every figure."""
    options = ScaleOptions(
        orders=orders,
        cache=cache,
        concurrency=concurrency,
        sample=sample,
        idle_seconds=idle,
        timeout_seconds=timeout,
    )
    progress = Console(stderr=True)
    try:
        result = run_scale(options, Settings(), progress)
    except ScaleError as err:
        progress.print(f"[red]benchmark failed:[/] {err}")
        raise typer.Exit(1) from err
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)
    out.print(render(result))
    print(result.model_dump_json(), flush=True)


if __name__ == "__main__":
    app()
