"""Throughput and latency of the fully automatic order path against eight no-op activities.

    python -m bench.throughput -n 300 --concurrency 50 --serial 20

One Temporal server (its own dev server and PostgreSQL unless `TEMPORAL_ADDRESS` /
`DATABASE_URL` are set). Two kinds of workflow: orders on `OrderPolicy.instant()` through
the real worker, the carrier simulator in `instant` mode and the real API receiving its
tracking webhooks; and a baseline of eight no-op regular activities on a task queue of its
own. As deployed, the worker(s), the API, the carrier simulator, the mail server and the
baseline's worker are processes of their own (`--in-process`: all in this one). After a
few warm-up runs of each, S of each run one at a time (serial latency), alternating, then N
of each with C in flight (rate and latency under load), in rounds that alternate the kinds
so that other load on the machine hits both alike. `--variant KEY=VALUE` adds a third kind:
orders on a second set of workers started with that setting, to compare two worker
configurations in one run. Prints a table and, last, one JSON line with every figure.

Order latencies come from the order event table: placement (the `placed_at` this benchmark
sets) to the APPROVED and COMPLETED events. Baseline latency is start to result, as the
client sees it. CPU per workflow is measured for every process (this one is the load
generator), for the Temporal server and PostgreSQL when this run started them, and for the
whole machine (what other processes took shows how far the figures are disturbed).
`--profile S` records S seconds of the first worker under load with py-spy and prints its
costliest functions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol, TypeVar

import typer
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from bench.baseline import STEPS, BaselineWorkflow, build_baseline_worker
from bench.measure import (
    CpuMeter,
    HistoryShape,
    capture_core_warnings,
    cpu_delta,
    history_shape,
    own_cpu,
    percentile,
    status_times,
    summarise_profile,
)
from bench.orders import bench_order, provision_stock
from bench.servers import (
    OrderSide,
    Servers,
    baseline_worker_process,
    deployed_order_side,
    embedded_servers,
    order_side,
    prepare,
)
from db.pool import create_pool
from db.repositories import outbox
from db.repositories.orders import order_summary
from orderflow.models import OrderPolicy
from orderflow.settings import Settings
from orderflow.temporal_client import connect_temporal
from stack.supervisor import free_port

_T = TypeVar("_T")
# Histories fetched per phase to count round trips (one is enough: every run is alike).
PROFILED_RUNS = 3


class BenchOptions(BaseModel):
    orders: int = Field(default=300, ge=1)
    concurrency: int = Field(default=50, ge=1)
    serial: int = Field(default=20, ge=0)
    warmup: int = Field(default=10, ge=0)
    rounds: int = Field(default=3, ge=1)
    timeout_seconds: float = Field(default=120.0, gt=0)
    # Worker, API and simulators as processes of their own (as deployed), or all in this one.
    deployed: bool = True
    # Worker processes of each kind (orders, baseline) when deployed.
    workers: int = Field(default=1, ge=1)
    # The order worker's workflow runner; None: what the settings say.
    runner: Literal["sandbox", "passthrough", "off"] | None = None
    # Seconds of py-spy on the first order worker in the first loaded chunk (0: none).
    profile_seconds: float = Field(default=0.0, ge=0)
    # Deployed: environment variables of a second set of order workers ("variant"), whose
    # orders take turns with the others' and the baseline's in the same run.
    variant_env: dict[str, str] | None = None


class BenchError(RuntimeError):
    """The run could not be measured (an order stuck, a server missing)."""


class BenchReport(BaseModel):
    """Every figure of one run; `model_dump_json()` is the final JSON line."""

    orders: int
    concurrency: int
    serial: int
    orders_per_s: float
    baseline_per_s: float
    ratio: float
    readback_p50_ms: float | None
    readback_p95_ms: float | None
    approved_p50_ms: float | None
    approved_p95_ms: float | None
    completed_p50_ms: float | None
    completed_p95_ms: float | None
    serial_approved_p50_ms: float | None
    serial_approved_p95_ms: float | None
    serial_completed_p50_ms: float | None
    serial_completed_p95_ms: float | None
    baseline_p50_ms: float | None
    baseline_p95_ms: float | None
    serial_baseline_p50_ms: float | None
    serial_baseline_p95_ms: float | None
    order_seconds: float
    baseline_seconds: float
    # Per workflow run, from its history.
    order_workflow_tasks: float | None
    order_activity_tasks: float | None
    order_local_activities: float | None
    order_signals: float | None
    order_history_events: float | None
    order_round_trips: float | None
    baseline_workflow_tasks: float | None
    baseline_activity_tasks: float | None
    baseline_history_events: float | None
    baseline_round_trips: float | None
    # CPU milliseconds per workflow in the loaded phase (None: process not ours to measure).
    server_cpu_ms_per_order: float | None
    server_cpu_ms_per_baseline: float | None
    postgres_cpu_ms_per_order: float | None
    python_cpu_ms_per_order: float | None
    python_cpu_ms_per_baseline: float | None
    sdk_core_cpu_ms_per_order: float | None
    sdk_core_cpu_ms_per_baseline: float | None
    # Python threads' CPU over wall time in the loaded phase: near 1.0, the GIL is the limit.
    python_busy_orders: float | None
    python_busy_baseline: float | None
    # How the run was set up.
    deployed: bool = False
    workers: int = 1
    runner: str = "sandbox"
    cores: int = 1
    # Deployed: CPU milliseconds per workflow of each process in the loaded phase
    # (worker-1.., api, carrier, mail, load; server, postgres; *.core: its SDK core threads).
    process_cpu_ms_per_order: dict[str, float] = Field(default_factory=dict)
    process_cpu_ms_per_baseline: dict[str, float] = Field(default_factory=dict)
    # CPU seconds per wall second in the loaded order phase, per process.
    process_busy_orders: dict[str, float] = Field(default_factory=dict)
    # Every measured process's CPU per workflow, and the rate it allows on `cores` cores.
    total_cpu_ms_per_order: float | None = None
    total_cpu_ms_per_baseline: float | None = None
    # The variant's orders, measured like the orders (keys as in this report's fields).
    variant_env: dict[str, str] | None = None
    variant: dict[str, Any] | None = None
    # The profile's costliest functions: (function, self %, inclusive %).
    profile: list[tuple[str, float, float]] = Field(default_factory=list)
    # Workflow tasks the SDK core reported as taking over 5 seconds (both kinds, whole run).
    slow_workflow_tasks: int = 0
    # E-mails the run's outbox sent to the mail server, and their delivery lag.
    mails_sent: int = 0
    mail_lag_p50_ms: float | None = None
    mail_lag_p95_ms: float | None = None


@dataclass
class Phase:
    """One loaded or serial run of a workflow kind."""

    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    count: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    shape: HistoryShape | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def p(self, name: str, q: float) -> float | None:
        value = percentile(self.latencies_ms.get(name, []), q)
        return None if value is None else round(value, 1)

    def busy(self, process: str) -> float | None:
        """CPU seconds of `process` per wall second (1.0 = one core all the time)."""
        if process not in self.cpu_seconds or self.seconds <= 0:
            return None
        return round(self.cpu_seconds[process] / self.seconds, 2)

    def cpu_ms_per_run(self, process: str) -> float | None:
        if process not in self.cpu_seconds or self.count == 0:
            return None
        return round(self.cpu_seconds[process] * 1000 / self.count, 2)


async def run_lanes(
    count: int, concurrency: int, one: Callable[[int], Awaitable[_T]]
) -> tuple[list[_T], float]:
    """Call `one(0..count-1)` with at most `concurrency` in flight; results and wall seconds."""
    indices = iter(range(count))
    results: dict[int, _T] = {}

    async def lane() -> None:
        for index in indices:  # one shared iterator: each index goes to exactly one lane
            results[index] = await one(index)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(lane())
    return [results[i] for i in range(count)], time.perf_counter() - started


class Kind(Protocol):
    """A workflow kind the benchmark starts and waits for."""

    async def one(self) -> Any:
        """Start one workflow and wait for its result; a sample for `latencies`."""

    async def latencies(self, samples: Sequence[Any]) -> dict[str, list[float]]: ...

    async def shape(self, samples: Sequence[Any]) -> HistoryShape | None: ...


def each(kind: Kind) -> Callable[[int], Awaitable[Any]]:
    """`kind.one` as `run_lanes` calls it (every call starts a new workflow)."""

    async def one(_: int) -> Any:
        return await kind.one()

    return one


class BaselineKind:
    def __init__(self, client: Client, task_queue: str, run_id: str, timeout: float) -> None:
        self.client = client
        self.task_queue = task_queue
        self.run_id = run_id
        self.timeout = timeout
        self._started = 0

    async def one(self) -> tuple[str, float]:
        workflow_id = f"bench-baseline-{self.run_id}-{self._started}"
        self._started += 1
        started = time.perf_counter()
        handle = await self.client.start_workflow(
            BaselineWorkflow.run, STEPS, id=workflow_id, task_queue=self.task_queue
        )
        async with asyncio.timeout(self.timeout):
            await handle.result()
        return workflow_id, (time.perf_counter() - started) * 1000

    async def latencies(self, samples: Sequence[tuple[str, float]]) -> dict[str, list[float]]:
        return {"total": [ms for _, ms in samples]}

    async def shape(self, samples: Sequence[tuple[str, float]]) -> HistoryShape | None:
        return await history_shape(
            self.client.get_workflow_handle(w) for w, _ in samples[-PROFILED_RUNS:]
        )


class OrderKind:
    def __init__(self, side: OrderSide, run_id: str, timeout: float) -> None:
        self.side = side
        self.run_id = run_id
        self.timeout = timeout
        self._placed = 0

    async def one(self) -> tuple[str, datetime, float]:
        index = self._placed
        self._placed += 1
        placed_at = datetime.now(UTC)
        started = time.perf_counter()
        order = bench_order(self.run_id, index, placed_at=placed_at)
        storefront = self.side.storefront
        await storefront.place_order(order)
        readback_ms = await self._read_back(order.order_id, started)
        try:
            async with asyncio.timeout(self.timeout):
                await storefront.handle(order.order_id).result()
        except TimeoutError:
            row = await order_summary(self.side.pool, order.order_id)
            status = row["status"] if row else "not recorded"
            raise BenchError(
                f"order {order.order_id} did not complete within {self.timeout:.0f}s "
                f"(status {status}); a benchmark order must take the fully automatic path"
            ) from None
        return order.order_id, placed_at, readback_ms

    async def _read_back(self, order_id: str, started: float) -> float:
        """As a storefront does after placing: GET the order until it answers 200 (at once,
        when placement reads its own writes); milliseconds from the start of placement."""
        async with asyncio.timeout(self.timeout):
            while True:
                if (await self.side.api.get(f"/orders/{order_id}")).status_code == 200:
                    return (time.perf_counter() - started) * 1000
                await asyncio.sleep(0.01)

    async def latencies(
        self, samples: Sequence[tuple[str, datetime, float]]
    ) -> dict[str, list[float]]:
        """Placement to the first successful read-back, and to the APPROVED and COMPLETED
        events (from the order event table)."""
        times = await status_times(
            self.side.pool, [o for o, _, _ in samples], ["APPROVED", "COMPLETED"]
        )
        latencies: dict[str, list[float]] = {
            "readback": [ms for _, _, ms in samples],
            "approved": [],
            "completed": [],
        }
        for order_id, placed_at, _ in samples:
            for status, name in (("APPROVED", "approved"), ("COMPLETED", "completed")):
                at = times.get((order_id, status))
                if at is None:
                    raise BenchError(f"order {order_id} has no {status} event")
                latencies[name].append((at - placed_at).total_seconds() * 1000)
        return latencies

    async def shape(self, samples: Sequence[tuple[str, datetime, float]]) -> HistoryShape | None:
        return await history_shape(
            self.side.storefront.handle(o) for o, _, _ in samples[-PROFILED_RUNS:]
        )


class Bench:
    """One benchmark run against already running servers.

    The two kinds take turns: serial runs alternate one by one, loaded runs in `rounds`
    chunks each, so a change in the machine's load (other processes) hits both alike.
    """

    def __init__(
        self, options: BenchOptions, settings: Settings, servers: Servers, console: Console
    ) -> None:
        self.options = options
        self.settings = settings
        self.servers = servers
        self.console = console
        self.run_id = uuid.uuid4().hex[:8]
        self.cpu = CpuMeter({"server": servers.temporal_pid, "postgres": servers.postgres_pid})
        # The worker py-spy records, once, and where it writes.
        self.profile_pid: int | None = None
        self.profile_file: Path | None = None
        self._profiler: subprocess.Popen[bytes] | None = None

    def _cpu_now(self) -> dict[str, float]:
        return {**self.cpu.sample(), **own_cpu()}

    def _start_profile(self) -> None:
        if self.profile_pid is None or self.profile_file is None or self._profiler is not None:
            return
        py_spy = Path(sys.executable).with_name("py-spy")
        self._profiler = subprocess.Popen(
            [
                str(py_spy), "record", "--pid", str(self.profile_pid),
                "--duration", str(int(self.options.profile_seconds)),
                "--rate", "100", "--format", "raw", "--nonblocking",
                "--output", str(self.profile_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _profile_summary(self) -> list[tuple[str, float, float]]:
        if self._profiler is None or self.profile_file is None:
            return []
        self._profiler.wait(timeout=self.options.profile_seconds + 30)
        if not self.profile_file.exists():
            return []
        return summarise_profile(self.profile_file.read_text())

    async def _loaded_chunk(self, kind: Kind, count: int, phase: Phase, samples: list[Any]) -> None:
        if isinstance(kind, OrderKind):
            self._start_profile()
        before = self._cpu_now()
        results, seconds = await run_lanes(count, self.options.concurrency, lambda _: kind.one())
        spent = cpu_delta(before, self._cpu_now())
        phase.seconds += seconds
        phase.count += count
        for name, value in spent.items():
            phase.cpu_seconds[name] = phase.cpu_seconds.get(name, 0.0) + value
        samples.extend(results)

    async def measure(self, kinds: dict[str, Kind]) -> dict[str, tuple[Phase, Phase]]:
        """Per kind: (serial phase, loaded phase)."""
        opts = self.options
        self.console.print(f"warm-up: {opts.warmup} of each kind …")
        for kind in kinds.values():
            await run_lanes(opts.warmup, opts.concurrency, each(kind))

        self.console.print(f"serial: {opts.serial} of each kind, alternating …")
        serial_samples: dict[str, list[Any]] = {name: [] for name in kinds}
        for _ in range(opts.serial):
            for name, kind in kinds.items():
                serial_samples[name].append(await kind.one())

        loaded = {name: Phase() for name in kinds}
        loaded_samples: dict[str, list[Any]] = {name: [] for name in kinds}
        rounds = min(opts.rounds, opts.orders)
        for round_no in range(rounds):
            count = opts.orders // rounds + (1 if round_no < opts.orders % rounds else 0)
            self.console.print(
                f"round {round_no + 1}/{rounds}: {count} of each kind, "
                f"{opts.concurrency} in flight …"
            )
            for name, kind in kinds.items():
                await self._loaded_chunk(kind, count, loaded[name], loaded_samples[name])

        phases: dict[str, tuple[Phase, Phase]] = {}
        for name, kind in kinds.items():
            serial = Phase(
                await kind.latencies(serial_samples[name]), count=len(serial_samples[name])
            )
            loaded[name].latencies_ms = await kind.latencies(loaded_samples[name])
            loaded[name].shape = await kind.shape(loaded_samples[name])
            phases[name] = (serial, loaded[name])
        return phases

    async def run(self) -> BenchReport:
        opts = self.options
        client = await prepare(self.settings, self.servers)
        pool = await create_pool(self.servers.database_url, min_size=1, max_size=2)
        try:
            kinds = 2 if opts.variant_env is not None else 1
            await provision_stock(
                pool, kinds * (opts.warmup + opts.serial + opts.orders), self.run_id
            )
        finally:
            await pool.close()

        api_port, sim_port = free_port(), free_port()
        settings = self.settings.model_copy(
            update={
                "database_url": self.servers.database_url,
                "temporal_address": self.servers.temporal_address,
                "task_queue": f"bench-orders-{self.run_id}",
                "api_port": api_port,
                "carrier_api_url": f"http://127.0.0.1:{sim_port}",
                "carrier_simulator_port": sim_port,
                "carrier_webhook_base_url": f"http://127.0.0.1:{api_port}",
                "carrier_simulator_mode": "instant",
                "order_policy": OrderPolicy.instant(),
                "smtp_host": "127.0.0.1",
                "smtp_port": free_port(),
                "mail_simulator_http_port": free_port(),
                "outbox_interval_seconds": 0.2,
            }
        )
        if opts.runner:
            settings = settings.model_copy(update={"worker_workflow_runner": opts.runner})
        started = datetime.now(UTC)
        baseline_queue = f"bench-baseline-{self.run_id}"
        load_client = await connect_temporal(settings, self.servers.temporal_address)
        if opts.deployed:
            return await self._run_deployed(settings, load_client, baseline_queue, started)
        async with (
            order_side(settings, client, load_client) as side,
            build_baseline_worker(client, baseline_queue),
        ):
            phases = await self.measure(
                {
                    "baseline": BaselineKind(
                        load_client, baseline_queue, self.run_id, opts.timeout_seconds
                    ),
                    "orders": OrderKind(side, self.run_id, opts.timeout_seconds),
                }
            )
            mail = await _mail_lag(side, started, opts.timeout_seconds)
        return report(opts, *phases["orders"], *phases["baseline"]).model_copy(update=mail)

    async def _run_deployed(
        self, settings: Settings, load_client: Client, baseline_queue: str, started: datetime
    ) -> BenchReport:
        """Each part a process of its own; every process's CPU measured per phase."""
        opts = self.options
        with tempfile.TemporaryDirectory(prefix="orderflow-bench-logs-") as logs:
            baseline_workers = [
                baseline_worker_process(settings, baseline_queue, Path(logs) / f"baseline-{i}.log")
                for i in range(1, opts.workers + 1)
            ]
            try:
                for process in baseline_workers:
                    process.start()
                async with deployed_order_side(
                    settings, load_client, workers=opts.workers, variant_env=opts.variant_env
                ) as side:
                    self.cpu = CpuMeter(
                        {
                            "server": self.servers.temporal_pid,
                            "postgres": self.servers.postgres_pid,
                            **side.pids,
                            **{f"baseline-{i}": p.pid for i, p in enumerate(baseline_workers, 1)},
                        },
                        core_threads=True,
                    )
                    if opts.profile_seconds:
                        self.profile_pid = side.pids.get("worker-1")
                        self.profile_file = Path(logs) / "worker-1.pyspy"
                    kinds: dict[str, Kind] = {
                        "baseline": BaselineKind(
                            load_client, baseline_queue, self.run_id, opts.timeout_seconds
                        ),
                        "orders": OrderKind(side, self.run_id, opts.timeout_seconds),
                    }
                    if side.variant_storefront is not None:
                        kinds["variant"] = OrderKind(
                            dataclasses.replace(side, storefront=side.variant_storefront),
                            f"{self.run_id}v",
                            opts.timeout_seconds,
                        )
                    phases = await self.measure(kinds)
                    mail = await _mail_lag(side, started, opts.timeout_seconds)
                    profile = self._profile_summary()
            finally:
                for process in baseline_workers:
                    process.stop()
        result = deployed_report(opts, settings, phases)
        if "variant" in phases:
            variant = deployed_report(
                opts, settings, {"orders": phases["variant"], "baseline": phases["baseline"]}
            )
            result = result.model_copy(
                update={"variant_env": opts.variant_env, "variant": variant.model_dump()}
            )
        return result.model_copy(update={**mail, "profile": profile})


async def _mail_lag(side: OrderSide, since: datetime, timeout: float) -> dict[str, Any]:
    """Once the outbox has drained: e-mails sent, and their delivery lag (row created →
    accepted by the SMTP server) p50/p95, over the whole run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await outbox.unsent_since(side.pool, since):
            break
        await asyncio.sleep(0.2)
    lag = await outbox.delivery_lag(side.pool, since=since, created_since=since)
    return {
        "mails_sent": lag["n"],
        "mail_lag_p50_ms": None if lag["p50"] is None else round(lag["p50"] * 1000, 1),
        "mail_lag_p95_ms": None if lag["p95"] is None else round(lag["p95"] * 1000, 1),
    }


def report(
    opts: BenchOptions,
    orders_serial: Phase,
    orders: Phase,
    baseline_serial: Phase,
    baseline: Phase,
) -> BenchReport:
    order_shape, base_shape = orders.shape, baseline.shape
    return BenchReport(
        orders=opts.orders,
        concurrency=opts.concurrency,
        serial=opts.serial,
        orders_per_s=round(orders.rate, 2),
        baseline_per_s=round(baseline.rate, 2),
        ratio=round(orders.rate / baseline.rate, 3) if baseline.rate else 0.0,
        readback_p50_ms=orders.p("readback", 50),
        readback_p95_ms=orders.p("readback", 95),
        approved_p50_ms=orders.p("approved", 50),
        approved_p95_ms=orders.p("approved", 95),
        completed_p50_ms=orders.p("completed", 50),
        completed_p95_ms=orders.p("completed", 95),
        serial_approved_p50_ms=orders_serial.p("approved", 50),
        serial_approved_p95_ms=orders_serial.p("approved", 95),
        serial_completed_p50_ms=orders_serial.p("completed", 50),
        serial_completed_p95_ms=orders_serial.p("completed", 95),
        baseline_p50_ms=baseline.p("total", 50),
        baseline_p95_ms=baseline.p("total", 95),
        serial_baseline_p50_ms=baseline_serial.p("total", 50),
        serial_baseline_p95_ms=baseline_serial.p("total", 95),
        order_seconds=round(orders.seconds, 2),
        baseline_seconds=round(baseline.seconds, 2),
        order_workflow_tasks=order_shape.workflow_tasks if order_shape else None,
        order_activity_tasks=order_shape.activity_tasks if order_shape else None,
        order_local_activities=order_shape.local_activities if order_shape else None,
        order_signals=order_shape.signals if order_shape else None,
        order_history_events=order_shape.events if order_shape else None,
        order_round_trips=order_shape.round_trips if order_shape else None,
        baseline_workflow_tasks=base_shape.workflow_tasks if base_shape else None,
        baseline_activity_tasks=base_shape.activity_tasks if base_shape else None,
        baseline_history_events=base_shape.events if base_shape else None,
        baseline_round_trips=base_shape.round_trips if base_shape else None,
        server_cpu_ms_per_order=orders.cpu_ms_per_run("server"),
        server_cpu_ms_per_baseline=baseline.cpu_ms_per_run("server"),
        postgres_cpu_ms_per_order=orders.cpu_ms_per_run("postgres"),
        python_cpu_ms_per_order=orders.cpu_ms_per_run("python"),
        python_cpu_ms_per_baseline=baseline.cpu_ms_per_run("python"),
        sdk_core_cpu_ms_per_order=orders.cpu_ms_per_run("native"),
        sdk_core_cpu_ms_per_baseline=baseline.cpu_ms_per_run("native"),
        python_busy_orders=orders.busy("python"),
        python_busy_baseline=baseline.busy("python"),
    )


# Order of the per-process rows; anything else (worker-2, baseline-2, ...) sorts among them.
_PROCESS_ORDER = ("worker", "api", "carrier", "mail", "baseline", "load", "server", "postgres")
_PROCESS_LABEL = {
    "api": "API",
    "carrier": "carrier simulator",
    "mail": "mail server",
    "load": "load generator (this process)",
    "server": "Temporal server",
    "postgres": "PostgreSQL",
}


def _per_run(phase: Phase) -> dict[str, float]:
    if phase.count == 0:
        return {}
    cpu = dict(phase.cpu_seconds)
    cpu["load"] = cpu.pop("python", 0.0) + cpu.pop("native", 0.0)
    # A thread that exits takes its CPU out of a `.core` sum: never below zero.
    return {name: round(max(value, 0.0) * 1000 / phase.count, 1) for name, value in cpu.items()}


def _total(per_run: dict[str, float]) -> float | None:
    # `x.core` is part of process x, not a process of its own; `machine` is everything.
    parts = [v for name, v in per_run.items() if not name.endswith(".core") and name != "machine"]
    return round(sum(parts), 1) if parts else None


def deployed_report(
    opts: BenchOptions, settings: Settings, phases: dict[str, tuple[Phase, Phase]]
) -> BenchReport:
    orders_serial, orders = phases["orders"]
    baseline_serial, baseline = phases["baseline"]
    per_order, per_baseline = _per_run(orders), _per_run(baseline)
    busy = {
        name: round(value / orders.seconds, 2)
        for name, value in orders.cpu_seconds.items()
        if orders.seconds > 0 and name not in ("python", "native")
    }
    return report(opts, orders_serial, orders, baseline_serial, baseline).model_copy(
        update={
            "deployed": True,
            "workers": opts.workers,
            "runner": settings.worker_workflow_runner,
            "cores": os.cpu_count() or 1,
            "process_cpu_ms_per_order": per_order,
            "process_cpu_ms_per_baseline": per_baseline,
            "process_busy_orders": busy,
            "total_cpu_ms_per_order": _total(per_order),
            "total_cpu_ms_per_baseline": _total(per_baseline),
            # Those are this process's, the load generator's, here: in the rows above.
            "python_cpu_ms_per_order": None,
            "python_cpu_ms_per_baseline": None,
            "sdk_core_cpu_ms_per_order": None,
            "sdk_core_cpu_ms_per_baseline": None,
            "python_busy_orders": None,
            "python_busy_baseline": None,
        }
    )


def _process_key(name: str) -> tuple[int, str]:
    base = name.split(".")[0].split("-")[0]
    rank = _PROCESS_ORDER.index(base) if base in _PROCESS_ORDER else len(_PROCESS_ORDER)
    return rank, name


def _process_rows(table: Table, r: BenchReport) -> None:
    names = sorted({*r.process_cpu_ms_per_order, *r.process_cpu_ms_per_baseline}, key=_process_key)
    for name in names:
        if name == "machine":
            continue
        process, _, part = name.partition(".")
        label = _PROCESS_LABEL.get(process, process)
        if part:
            # Only the workers' SDK core is worth a row; the others' is near nothing.
            if not process.startswith(("worker", "baseline")):
                continue
            label = "  of which SDK core (Rust threads)"
        busy = r.process_busy_orders.get(name)
        table.add_row(
            f"CPU per run: {label}" + (f" ({busy:.2f} busy)" if busy is not None else ""),
            _fmt(r.process_cpu_ms_per_order.get(name), " ms"),
            _fmt(r.process_cpu_ms_per_baseline.get(name), " ms"),
        )
    table.add_row(
        "[bold]CPU per run, all processes[/]",
        _fmt(r.total_cpu_ms_per_order, " ms"),
        _fmt(r.total_cpu_ms_per_baseline, " ms"),
    )
    table.add_row(
        "CPU per run taken by other processes on the machine",
        _fmt(_outside(r.process_cpu_ms_per_order, r.total_cpu_ms_per_order), " ms"),
        _fmt(_outside(r.process_cpu_ms_per_baseline, r.total_cpu_ms_per_baseline), " ms"),
    )
    busy = r.process_busy_orders.get("machine")
    if busy is not None:
        table.add_row("machine busy, loaded orders (cores of all processes)", f"{busy:.2f}", "")
    table.add_row(
        f"CPU-bound ceiling on {r.cores} cores (workflows/s)",
        _fmt(_ceiling(r.total_cpu_ms_per_order, r.cores)),
        _fmt(_ceiling(r.total_cpu_ms_per_baseline, r.cores)),
    )


def _outside(per_run: dict[str, float], ours: float | None) -> float | None:
    machine = per_run.get("machine")
    return None if machine is None or ours is None else round(max(machine - ours, 0.0), 1)


def _ceiling(cpu_ms: float | None, cores: int) -> float | None:
    return None if not cpu_ms else cores * 1000 / cpu_ms


def render_profile(result: BenchReport) -> Table:
    table = Table(title="first order worker under load (py-spy, % of its samples)")
    table.add_column("function")
    table.add_column("self %", justify="right")
    table.add_column("inclusive %", justify="right")
    for function, own, inclusive in result.profile:
        table.add_row(function, f"{own:.1f}", f"{inclusive:.1f}")
    return table


def _workers_cpu(per_run: dict[str, float], prefix: str, part: str = "") -> float | None:
    values = [
        v
        for name, v in per_run.items()
        if name.startswith(prefix) and name.partition(".")[2] == part
    ]
    return round(sum(values), 1) if values else None


def render_variant(result: BenchReport) -> Table:
    """The orders of the two worker configurations, side by side (same run)."""
    r, v = result, BenchReport.model_validate(result.variant)
    env = " ".join(f"{k}={val}" for k, val in (r.variant_env or {}).items())
    table = Table(title=f"orders: this configuration against the variant ({env}), same run")
    table.add_column("figure")
    table.add_column("orders", justify="right")
    table.add_column("variant", justify="right")
    rows = [
        ("workflows/s", _fmt(r.orders_per_s, digits=2), _fmt(v.orders_per_s, digits=2)),
        ("ratio to the baseline", f"{r.ratio:.2f}", f"{v.ratio:.2f}"),
        (
            "placement→approved p50 / p95, loaded",
            f"{_fmt(r.approved_p50_ms)} / {_fmt(r.approved_p95_ms)} ms",
            f"{_fmt(v.approved_p50_ms)} / {_fmt(v.approved_p95_ms)} ms",
        ),
        (
            "placement→completed p50 / p95, loaded",
            f"{_fmt(r.completed_p50_ms)} / {_fmt(r.completed_p95_ms)} ms",
            f"{_fmt(v.completed_p50_ms)} / {_fmt(v.completed_p95_ms)} ms",
        ),
        (
            "placement→approved p50 / p95, serial",
            f"{_fmt(r.serial_approved_p50_ms)} / {_fmt(r.serial_approved_p95_ms)} ms",
            f"{_fmt(v.serial_approved_p50_ms)} / {_fmt(v.serial_approved_p95_ms)} ms",
        ),
        (
            "worker CPU per order",
            _fmt(_workers_cpu(r.process_cpu_ms_per_order, "worker"), " ms"),
            _fmt(_workers_cpu(v.process_cpu_ms_per_order, "variant"), " ms"),
        ),
        (
            "  of which SDK core",
            _fmt(_workers_cpu(r.process_cpu_ms_per_order, "worker", "core"), " ms"),
            _fmt(_workers_cpu(v.process_cpu_ms_per_order, "variant", "core"), " ms"),
        ),
    ]
    for name in ("api", "carrier", "mail", "load", "server", "postgres"):
        rows.append(
            (
                _PROCESS_LABEL.get(name, name) + " CPU per order",
                _fmt(r.process_cpu_ms_per_order.get(name), " ms"),
                _fmt(v.process_cpu_ms_per_order.get(name), " ms"),
            )
        )
    rows.append(
        (
            "CPU per order, all processes",
            _fmt(r.total_cpu_ms_per_order, " ms"),
            _fmt(v.total_cpu_ms_per_order, " ms"),
        )
    )
    rows.append(
        (
            "CPU per order taken by other processes on the machine",
            _fmt(_outside(r.process_cpu_ms_per_order, r.total_cpu_ms_per_order), " ms"),
            _fmt(_outside(v.process_cpu_ms_per_order, v.total_cpu_ms_per_order), " ms"),
        )
    )
    for row in rows:
        table.add_row(*row)
    return table


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def render(result: BenchReport) -> Table:
    r = result
    setup = (
        f"deployed: {r.workers} worker process(es) per kind, API, simulators apart; "
        f"workflow runner {r.runner}"
        if r.deployed
        else "everything in one process"
    )
    table = Table(
        title=f"orderflow throughput: {r.orders} per kind, {r.concurrency} in flight, "
        f"{r.serial} serial ({setup})"
    )
    table.add_column("figure")
    table.add_column("orders (automatic path)", justify="right")
    table.add_column(f"baseline ({STEPS} no-op activities)", justify="right")
    table.add_row(
        f"workflows/s at {r.concurrency} in flight",
        _fmt(r.orders_per_s),
        _fmt(r.baseline_per_s),
    )
    table.add_row("ratio orders/baseline", f"[bold]{r.ratio:.2f}[/]", "")
    table.add_row(
        "placement→first successful GET p50 / p95, loaded",
        f"{_fmt(r.readback_p50_ms)} / {_fmt(r.readback_p95_ms)} ms",
        "",
    )
    table.add_row(
        "placement→approved p50 / p95, loaded",
        f"{_fmt(r.approved_p50_ms)} / {_fmt(r.approved_p95_ms)} ms",
        "",
    )
    table.add_row(
        "placement→completed p50 / p95, loaded",
        f"{_fmt(r.completed_p50_ms)} / {_fmt(r.completed_p95_ms)} ms",
        f"{_fmt(r.baseline_p50_ms)} / {_fmt(r.baseline_p95_ms)} ms",
    )
    table.add_row(
        "placement→approved p50 / p95, serial",
        f"{_fmt(r.serial_approved_p50_ms)} / {_fmt(r.serial_approved_p95_ms)} ms",
        "",
    )
    table.add_row(
        "placement→completed p50 / p95, serial",
        f"{_fmt(r.serial_completed_p50_ms)} / {_fmt(r.serial_completed_p95_ms)} ms",
        f"{_fmt(r.serial_baseline_p50_ms)} / {_fmt(r.serial_baseline_p95_ms)} ms",
    )
    table.add_section()
    table.add_row(
        "workflow tasks per run", _fmt(r.order_workflow_tasks), _fmt(r.baseline_workflow_tasks)
    )
    table.add_row(
        "activity tasks per run", _fmt(r.order_activity_tasks), _fmt(r.baseline_activity_tasks)
    )
    table.add_row("local activities per run", _fmt(r.order_local_activities), "0")
    table.add_row("signals per run", _fmt(r.order_signals), "0")
    table.add_row(
        "history events per run", _fmt(r.order_history_events), _fmt(r.baseline_history_events)
    )
    table.add_row(
        "server round trips per run", _fmt(r.order_round_trips), _fmt(r.baseline_round_trips)
    )
    if r.deployed:
        _process_rows(table, r)
        table.add_row(
            f"e-mail delivery lag p50 / p95 ({r.mails_sent} sent)",
            f"{_fmt(r.mail_lag_p50_ms)} / {_fmt(r.mail_lag_p95_ms)} ms",
            "",
        )
        table.add_row(
            "workflow tasks over 5 s (whole run, both kinds)", str(r.slow_workflow_tasks), ""
        )
        return table
    table.add_row(
        "Temporal server CPU per run",
        _fmt(r.server_cpu_ms_per_order, " ms"),
        _fmt(r.server_cpu_ms_per_baseline, " ms"),
    )
    table.add_row("PostgreSQL CPU per run", _fmt(r.postgres_cpu_ms_per_order, " ms"), "")
    table.add_row(
        "Python threads' CPU per run (one GIL)",
        _fmt(r.python_cpu_ms_per_order, " ms"),
        _fmt(r.python_cpu_ms_per_baseline, " ms"),
    )
    table.add_row(
        "SDK core (Rust) CPU per run",
        _fmt(r.sdk_core_cpu_ms_per_order, " ms"),
        _fmt(r.sdk_core_cpu_ms_per_baseline, " ms"),
    )
    table.add_row(
        f"e-mail delivery lag p50 / p95 ({r.mails_sent} sent)",
        f"{_fmt(r.mail_lag_p50_ms)} / {_fmt(r.mail_lag_p95_ms)} ms",
        "",
    )
    table.add_row("workflow tasks over 5 s (whole run, both kinds)", str(r.slow_workflow_tasks), "")
    table.add_row(
        "Python CPU / wall time, loaded (1.0 = GIL-bound)",
        _fmt(r.python_busy_orders, digits=2),
        _fmt(r.python_busy_baseline, digits=2),
    )
    return table


def run_benchmark(options: BenchOptions, settings: Settings, console: Console) -> BenchReport:
    """Start the servers `settings` does not name, run the benchmark, stop them again."""
    warnings = capture_core_warnings()
    with embedded_servers(settings) as servers:
        console.print(
            f"servers: Temporal {servers.temporal_address}, PostgreSQL {servers.database_url}"
        )
        result = asyncio.run(Bench(options, settings, servers, console).run())
    for message, count in warnings.others.most_common(5):
        console.print(f"SDK core warning ({count}x): {message}")
    return result.model_copy(update={"slow_workflow_tasks": warnings.slow_workflow_tasks})


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    orders: int = typer.Option(300, "-n", "--orders", min=1, help="Workflows of each kind."),
    concurrency: int = typer.Option(50, "-c", "--concurrency", min=1, help="In flight."),
    serial: int = typer.Option(20, "--serial", min=0, help="Runs one at a time, per kind."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Unmeasured runs first, per kind."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Loaded chunks per kind, alternating."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds one workflow may take."),
    in_process: bool = typer.Option(
        False, "--in-process", help="Worker, API and simulators inside this process."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes per kind."),
    runner: str | None = typer.Option(
        None,
        "--runner",
        help="Order worker's workflow runner: sandbox | passthrough | off (default: settings).",
    ),
    profile: float = typer.Option(
        0.0, "--profile", min=0, help="Seconds of py-spy on the first worker under load."
    ),
    variant: list[str] = typer.Option(
        [],
        "--variant",
        help="KEY=VALUE for a second set of order workers measured in the same run "
        "(e.g. ORDERFLOW_WORKER_WORKFLOW_RUNNER=off); repeatable.",
    ),
) -> None:
    """Measure, print a table, then one JSON line with every figure."""
    options = BenchOptions(
        orders=orders,
        concurrency=concurrency,
        serial=serial,
        warmup=warmup,
        rounds=rounds,
        timeout_seconds=timeout,
        deployed=not in_process,
        workers=workers,
        runner=runner,
        profile_seconds=profile,
        variant_env=dict(v.split("=", 1) for v in variant) if variant else None,
    )
    progress = Console(stderr=True)
    # Stopped (e.g. by `timeout`): unwind as on Ctrl-C, so the servers and parts it started
    # stop too instead of outliving it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_benchmark(options, Settings(), progress)
    except BenchError as err:
        progress.print(f"[red]benchmark failed:[/] {err}")
        raise typer.Exit(1) from err
    out = Console()
    if not out.is_terminal:
        # Piped or captured: keep the table's rows on one line each.
        out = Console(width=120)
    out.print(render(result))
    if result.variant:
        out.print(render_variant(result))
    if result.profile:
        out.print(render_profile(result))
    print(result.model_dump_json(), flush=True)


if __name__ == "__main__":
    app()
