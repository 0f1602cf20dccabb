"""Marketplace intake and outbound webhooks, measured on real parts.

    python -m bench.channels -n 200 --rate 20 --seconds 15

Its own Temporal dev server and PostgreSQL (unless `TEMPORAL_ADDRESS` / `DATABASE_URL` are
set); the marketplace simulator, one worker, the API and a webhook receiver each run as a
process of their own, started the way `orderflow up` starts them. Orders follow the default
policy (a person picks), so each runs to PICKING and waits there.

1. Intake, burst: N orders put into the simulator's feed at once (its `POST /<code>/orders`
   control endpoint, bench SKUs with stock, one buyer each); the poller places them.
   "Placed" means the order's row exists in PostgreSQL: `orders.created_at`, against the
   marketplace's `created_at` (the order's `placed_at`). Reported: orders/s from the first
   order created to the last placed, the rate while the poller drained the feed, and the
   created → placed and created → acknowledged lag.
2. Intake, paced: orders arrive at `--feed-rate` for `--feed-seconds`; the same lags when
   the poller keeps up (they include waiting for the next poll).
3. Webhooks, one healthy subscriber (all events): storefront orders placed through the API
   at `--rate` for `--seconds`; lag from the event's row (`order_events.occurred_at`, the
   `occurred_at` of the body) to the whole request arriving at the subscriber.
4. Webhooks, the same healthy subscriber plus a second one that answers 500 to everything:
   the same load and the healthy subscriber's lag again, beside what the failing one got.
   During 3 and 4 the search of the webhook dispatcher's claim is timed once a second, and
   the due deliveries waiting behind an earlier event of their order are counted.

`ORDERFLOW_*` settings in the environment reach every part (e.g.
`ORDERFLOW_WEBHOOK_BACKOFF_SECONDS=300` for a failing subscriber retried less often). Each
phase waits until its orders have settled (every row there, no new event for a few seconds,
every delivery to the healthy subscriber made) before the next. Prints tables and, last,
one JSON line with every figure. Numbers, not assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import typer
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from bench.measure import CpuMeter, cpu_delta, own_cpu, percentile
from bench.orders import UNIT_PRICE, bench_order, provision_stock, sku_for
from bench.servers import Servers, embedded_servers, prepare
from db.pool import create_pool
from orderflow.models import OrderPolicy
from orderflow.settings import Settings
from stack.supervisor import ManagedProcess, StackError, free_port, tail, wait_for_port

MARKETPLACE_KEY = "bench-marketplace-key"
# The search of the webhook dispatcher's claim (`claim_due` in db/repositories/webhooks.py),
# without its locks and its update: timed once a second during the webhook phases, to show
# what one dispatcher round costs while deliveries wait.
CLAIM_SEARCH = """
    SELECT d.id FROM webhook_deliveries d
    JOIN webhook_subscriptions s ON s.id = d.subscription_id
    WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()
      AND s.deleted_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries e
          WHERE e.subscription_id = d.subscription_id AND e.order_id = d.order_id
            AND e.event_id < d.event_id AND e.status IN ('pending', 'sending'))
    ORDER BY d.next_attempt_at, d.id
    LIMIT $1"""
# Deliveries due now, and of them those that wait behind an earlier event of their order.
DUE_BACKLOG = """
    SELECT count(*) AS due,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM webhook_deliveries e
               WHERE e.subscription_id = d.subscription_id AND e.order_id = d.order_id
                 AND e.event_id < d.event_id AND e.status IN ('pending', 'sending'))) AS blocked
    FROM webhook_deliveries d
    WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()"""
# A phase has settled when its orders wrote no event for this long.
QUIET_SECONDS = 3.0
POLL_DB_SECONDS = 0.25


class ChannelsOptions(BaseModel):
    orders: int = Field(default=200, ge=1)
    feed_rate: float = Field(default=3.0, gt=0)
    feed_seconds: float = Field(default=20.0, ge=0)
    rate: float = Field(default=20.0, gt=0)
    seconds: float = Field(default=15.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    marketplaces: int = Field(default=1, ge=1, le=9)
    timeout_seconds: float = Field(default=180.0, gt=0)


class BenchError(RuntimeError):
    """The run could not be measured (a process died, orders never settled)."""


class Lag(BaseModel):
    """Percentiles of a set of latencies, in milliseconds."""

    n: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Lag:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return cls(
            n=len(values_ms),
            p50_ms=rounded(percentile(values_ms, 50)),
            p95_ms=rounded(percentile(values_ms, 95)),
            max_ms=rounded(max(values_ms)) if values_ms else None,
        )

    def text(self) -> str:
        return f"{_ms(self.p50_ms)} / {_ms(self.p95_ms)}"


class IntakeResult(BaseModel):
    orders: int
    placed: int
    # Putting the orders into the feed (HTTP calls to the simulator's control endpoint).
    feed_seconds: float
    # Orders over (last placed - first created at the marketplace).
    orders_per_s: float
    # Orders after the first over (last placed - first placed): the poller's pace.
    drain_per_s: float | None
    placed_lag: Lag
    acknowledged_lag: Lag
    # Orders kept as channel exceptions (none expected: every bench order maps).
    exceptions: int
    # CPU seconds per wall second of each process during the phase (1.0 = one core).
    cpu_busy: dict[str, float]


class WebhookResult(BaseModel):
    orders: int
    target_rate: float
    # Orders over the seconds from the first placement call to the last answer.
    placed_per_s: float
    placement_errors: int
    # Events of the phase's orders queued for the healthy subscriber, and how many distinct
    # ones it received.
    events: int
    received: int
    invalid_signatures: int
    healthy_lag: Lag
    # Only with the failing subscriber: the requests it answered 500, and its deliveries.
    failing_requests: int | None = None
    failing_deliveries: dict[str, int] | None = None
    # The dispatcher's claim search, sampled once a second while the phase ran, and the
    # most deliveries that were due but waiting behind an earlier event of their order.
    claim_search: Lag
    due_blocked_max: int
    settle_seconds: float
    cpu_busy: dict[str, float]


class ChannelsReport(BaseModel):
    date: str
    marketplaces: int
    poll_seconds: float
    webhook_interval_seconds: float
    webhook_backoff_seconds: float
    burst: IntakeResult
    paced: IntakeResult
    webhooks: WebhookResult
    webhooks_with_failing: WebhookResult


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} ms" if value < 10 else f"{value:,.0f} ms"


# ------------------------------------------------------------------ the processes
@dataclass
class Parts:
    """The run's own processes and where they listen."""

    processes: dict[str, ManagedProcess]
    api_url: str
    marketplace_url: str
    healthy_url: str
    failing_url: str
    receiver_log: Path
    webhook_secret: str
    codes: list[str]


@contextlib.contextmanager
def started_parts(
    options: ChannelsOptions, servers: Servers, run_id: str, base: Path
) -> Iterator[Parts]:
    """Marketplace simulator, webhook receiver, API and worker, each its own process; stopped
    in reverse (the worker first) when the block ends."""
    api_port, sim_port, healthy_port, failing_port = (free_port() for _ in range(4))
    codes = [f"mkt-{n}" for n in range(1, options.marketplaces + 1)]
    sim_url = f"http://127.0.0.1:{sim_port}"
    secret = secrets.token_hex(16)
    receiver_log = base / "received.jsonl"
    logs = base / "logs"
    env = {
        "DATABASE_URL": servers.database_url,
        "TEMPORAL_ADDRESS": servers.temporal_address,
        "ORDERFLOW_STATE_DIR": str(base / "state"),
        "ORDERFLOW_TASK_QUEUE": f"bench-channels-{run_id}",
        "ORDERFLOW_API_PORT": str(api_port),
        "ORDERFLOW_API_URL": f"http://127.0.0.1:{api_port}",
        "ORDERFLOW_ORDER_POLICY": OrderPolicy().model_dump_json(),
        "ORDERFLOW_WORKER_METRICS_PORT": "0",
        "ORDERFLOW_MARKETPLACE_SIMULATOR_PORT": str(sim_port),
        "ORDERFLOW_MARKETPLACE_SIMULATOR_API_KEY": MARKETPLACE_KEY,
        "ORDERFLOW_MARKETPLACE_SIMULATOR_CODES": json.dumps(codes),
        "ORDERFLOW_MARKETPLACE_SIMULATOR_DEMO_SECONDS": "0",
        "ORDERFLOW_MARKETPLACES": json.dumps(
            [
                {
                    "code": code,
                    "base_url": f"{sim_url}/{code}",
                    "api_key": MARKETPLACE_KEY,
                    "poll_seconds": options.poll_seconds,
                }
                for code in codes
            ]
        ),
    }
    cli = [sys.executable, "-m", "app.cli"]
    receiver = [
        sys.executable,
        "-m",
        "bench.webhook_receiver",
        "--healthy-port",
        str(healthy_port),
        "--failing-port",
        str(failing_port),
        "--secret",
        secret,
        "--out",
        str(receiver_log),
    ]
    commands = {
        "marketplace": [*cli, "marketplace-simulator"],
        "receiver": receiver,
        "api": [*cli, "api"],
        "worker": [*cli, "worker"],
    }
    processes = {
        name: ManagedProcess(name, argv, logs / f"{name}.log", env, stop_timeout=5)
        for name, argv in commands.items()
    }
    with contextlib.ExitStack() as stack:
        for process in processes.values():
            stack.enter_context(process)
        for port, name in (
            (sim_port, "marketplace"),
            (healthy_port, "receiver"),
            (failing_port, "receiver"),
            (api_port, "api"),
        ):
            wait_for_port(port, timeout=90, alive=processes[name])
        yield Parts(
            processes=processes,
            api_url=f"http://127.0.0.1:{api_port}",
            marketplace_url=sim_url,
            healthy_url=f"http://127.0.0.1:{healthy_port}/",
            failing_url=f"http://127.0.0.1:{failing_port}/",
            receiver_log=receiver_log,
            webhook_secret=secret,
            codes=codes,
        )


# ------------------------------------------------------------------ helpers
async def open_loop(
    count: int, rate: float, one: Callable[[int], Coroutine[Any, Any, None]]
) -> float:
    """Call `one(i)` for i in 0..count-1 at `rate` per second, each on its own schedule
    whatever the earlier ones take; the seconds until the last returned."""
    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        due = started + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return time.monotonic() - started


async def run_lanes(count: int, lanes: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Call `one(i)` for i in 0..count-1 with `lanes` in flight; the seconds it took."""
    indices = iter(range(count))

    async def lane() -> None:
        for index in indices:  # one shared iterator: each index goes to exactly one lane
            await one(index)

    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(lanes, count)):
            group.create_task(lane())
    return time.monotonic() - started


def feed_order(run_id: str, index: int) -> dict[str, Any]:
    """A marketplace order as the feed lists it: one unit of a bench SKU, a buyer of its
    own (no risk signal fires), created now."""
    key = f"{run_id}-{index}"
    name = f"Bench Buyer {key}"
    return {
        "id": f"B{run_id}-{index:05d}",
        "created_at": datetime.now(UTC).isoformat(),
        "status": "new",
        "buyer": {"name": name, "email": f"buyer-{key}@bench.example"},
        "lines": [{"sku": sku_for(index), "quantity": 1, "unit_price": str(UNIT_PRICE)}],
        "currency": "EUR",
        "shipping_address": {
            "name": name,
            "line1": f"{index + 1} Marketplace Street {run_id}",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "total": str(UNIT_PRICE),
        "payment": {"reference": f"mkt-pay-{key}", "status": "paid"},
    }


def received(log: Path) -> list[dict[str, Any]]:
    """Every request the receiver has logged so far."""
    if not log.exists():
        return []
    records = []
    for line in log.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def healthy_lags(
    records: Sequence[dict[str, Any]], order_ids: set[str]
) -> tuple[list[float], int, int]:
    """For the healthy subscriber and the given orders: the lag of each distinct event
    (first arrival; delivery is at least once), how many distinct events, how many requests
    had a signature that did not verify."""
    first: dict[str, float] = {}
    invalid = 0
    for record in records:
        if record["subscriber"] != "healthy" or record["order_id"] not in order_ids:
            continue
        if not record["valid"]:
            invalid += 1
        event_id = record["event_id"]
        if event_id in first:
            continue
        occurred = datetime.fromisoformat(record["occurred_at"]).timestamp()
        first[event_id] = (record["received_at"] - occurred) * 1000
    return list(first.values()), len(first), invalid


async def probe_claims(
    pool: asyncpg.Pool, limit: int, stop: asyncio.Event
) -> tuple[list[float], int]:
    """Until `stop`: once a second, the claim search's time (ms) and the due backlog; the
    times and the largest number of due deliveries blocked behind an earlier event."""
    times: list[float] = []
    blocked = 0
    while not stop.is_set():
        started = time.perf_counter()
        await pool.fetch(CLAIM_SEARCH, limit)
        times.append((time.perf_counter() - started) * 1000)
        row = await pool.fetchrow(DUE_BACKLOG)
        assert row is not None
        blocked = max(blocked, int(row["blocked"]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    return times, blocked


# ------------------------------------------------------------------ the benchmark
class ChannelsBench:
    def __init__(
        self, options: ChannelsOptions, settings: Settings, servers: Servers, console: Console
    ) -> None:
        self.options = options
        self.settings = settings
        self.servers = servers
        self.console = console
        self.run_id = uuid.uuid4().hex[:8]

    # -------------------------------------------------------------- plumbing
    def _cpu_meter(self, parts: Parts) -> CpuMeter:
        return CpuMeter(
            {
                "temporal": self.servers.temporal_pid,
                "postgres": self.servers.postgres_pid,
                **{name: process.pid for name, process in parts.processes.items()},
            }
        )

    def _cpu_now(self, meter: CpuMeter) -> dict[str, float]:
        mine = own_cpu()
        return {**meter.sample(), "bench": mine["python"] + mine["native"]}

    def _check_alive(self, parts: Parts) -> None:
        for name, process in parts.processes.items():
            if not process.is_alive():
                raise BenchError(
                    f"{name} exited (code {process.returncode}); its log:\n{tail(process.log_file)}"
                )

    async def _wait(
        self, parts: Parts, what: str, done: Callable[[], Awaitable[bool]], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await done():
            self._check_alive(parts)
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(POLL_DB_SECONDS)

    async def _settle(
        self,
        parts: Parts,
        pool: asyncpg.Pool,
        order_ids: list[str],
        subscription_id: int | None,
    ) -> None:
        """Until every order's row exists, its orders wrote no event for `QUIET_SECONDS`,
        and (with a subscription) every delivery of their events to it was made."""
        state = {"events": -1, "since": time.monotonic()}

        async def settled() -> bool:
            row = await pool.fetchrow(
                """SELECT (SELECT count(*) FROM orders WHERE order_id = ANY($1::text[])) AS rows,
                          (SELECT count(*) FROM order_events
                            WHERE order_id = ANY($1::text[])) AS events,
                          (SELECT count(*) FROM webhook_deliveries
                            WHERE subscription_id = $2 AND order_id = ANY($1::text[])
                              AND status <> 'delivered') AS undelivered""",
                order_ids,
                subscription_id or 0,
            )
            assert row is not None
            now = time.monotonic()
            if row["events"] != state["events"]:
                state["events"], state["since"] = row["events"], now
            return bool(
                row["rows"] == len(order_ids)
                and row["undelivered"] == 0
                and now - state["since"] >= QUIET_SECONDS
            )

        await self._wait(parts, f"{len(order_ids)} orders to settle", settled, self._timeout)

    @property
    def _timeout(self) -> float:
        return self.options.timeout_seconds

    # -------------------------------------------------------------- intake
    async def intake(
        self,
        parts: Parts,
        pool: asyncpg.Pool,
        meter: CpuMeter,
        tag: str,
        count: int,
        rate: float | None,
    ) -> IntakeResult:
        """`count` orders into the feeds (round robin over the marketplaces): at once (four
        callers in flight) when `rate` is None, else at `rate` per second."""
        prefix = f"{self.run_id}{tag}"
        order_ids = []
        for index in range(count):
            code = parts.codes[index % len(parts.codes)]
            order_ids.append(f"{code}-B{prefix}-{index:05d}")
        before = self._cpu_now(meter)
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=parts.marketplace_url,
            headers={"Authorization": f"Bearer {MARKETPLACE_KEY}"},
            timeout=30,
        ) as http:

            async def add(index: int) -> None:
                code = parts.codes[index % len(parts.codes)]
                response = await http.post(
                    f"/{code}/orders", json={"order": feed_order(prefix, index)}
                )
                if response.status_code != 201:
                    raise BenchError(f"the simulator refused an order: {response.text[:300]}")

            if rate is None:
                feed_seconds = await run_lanes(count, 4, add)
            else:
                feed_seconds = await open_loop(count, rate, add)
        await self._settle(parts, pool, order_ids, None)
        spent = cpu_delta(before, self._cpu_now(meter))
        wall = time.monotonic() - started

        rows = await pool.fetch(
            """SELECT o.placed_at, o.created_at, m.acknowledged_at
                 FROM orders o
                 LEFT JOIN marketplace_orders m ON m.order_id = o.order_id
                WHERE o.order_id = ANY($1::text[])""",
            order_ids,
        )
        exceptions = await pool.fetchval(
            """SELECT count(*) FROM marketplace_orders
                WHERE status = 'exception' AND external_order_id LIKE $1""",
            f"B{prefix}-%",
        )
        created = [r["placed_at"] for r in rows]
        placed = [r["created_at"] for r in rows]
        span = (max(placed) - min(created)).total_seconds()
        drain = (max(placed) - min(placed)).total_seconds()
        return IntakeResult(
            orders=count,
            placed=len(rows),
            feed_seconds=round(feed_seconds, 2),
            orders_per_s=round(len(rows) / span, 2) if span > 0 else 0.0,
            drain_per_s=round((len(rows) - 1) / drain, 2) if drain > 0 else None,
            placed_lag=Lag.of(
                [(r["created_at"] - r["placed_at"]).total_seconds() * 1000 for r in rows]
            ),
            acknowledged_lag=Lag.of(
                [
                    (r["acknowledged_at"] - r["placed_at"]).total_seconds() * 1000
                    for r in rows
                    if r["acknowledged_at"] is not None
                ]
            ),
            exceptions=int(exceptions),
            cpu_busy={name: round(cpu / wall, 2) for name, cpu in spent.items()},
        )

    # -------------------------------------------------------------- webhooks
    async def subscribe(self, api: httpx.AsyncClient, url: str, secret: str) -> int:
        response = await api.post(
            "/webhooks/subscriptions",
            json={"url": url, "secret": secret, "events": ["*"]},
            headers={"Authorization": "Bearer dev-admin"},
        )
        if response.status_code not in (200, 201):
            raise BenchError(f"subscribing {url} failed: {response.text[:300]}")
        subscription_id: int = response.json()["id"]
        return subscription_id

    async def webhooks(
        self,
        parts: Parts,
        pool: asyncpg.Pool,
        meter: CpuMeter,
        api: httpx.AsyncClient,
        tag: str,
        healthy_id: int,
        failing_id: int | None,
    ) -> WebhookResult:
        """Storefront orders through the API at `--rate` for `--seconds`, then the healthy
        subscriber's lag over their events (and what the failing one got, if subscribed)."""
        opts = self.options
        count = max(1, round(opts.rate * opts.seconds))
        orders = [bench_order(f"{self.run_id}{tag}", index) for index in range(count)]
        order_ids = [order.order_id for order in orders]
        errors = 0

        async def place(index: int) -> None:
            nonlocal errors
            body = orders[index].model_dump(mode="json")
            # Placed now: the storefront's time of placement is the moment of the call.
            body["placed_at"] = datetime.now(UTC).isoformat()
            try:
                response = await api.post("/orders", json=body)
            except httpx.HTTPError:
                errors += 1
                return
            if response.status_code not in (200, 202):
                errors += 1

        before = self._cpu_now(meter)
        started = time.monotonic()
        stop_probe = asyncio.Event()
        probe = asyncio.create_task(
            probe_claims(pool, self.settings.webhook_concurrency, stop_probe)
        )
        try:
            place_seconds = await open_loop(count, opts.rate, place)
            placed_at = time.monotonic()
            await self._settle(parts, pool, order_ids, healthy_id)
            settle_seconds = time.monotonic() - placed_at
        finally:
            stop_probe.set()
            search_ms, blocked_max = await probe
        spent = cpu_delta(before, self._cpu_now(meter))
        wall = time.monotonic() - started

        wanted = set(order_ids)
        records = received(parts.receiver_log)
        lags, distinct, invalid = healthy_lags(records, wanted)
        events = await pool.fetchval(
            """SELECT count(*) FROM webhook_deliveries
                WHERE subscription_id = $1 AND order_id = ANY($2::text[])""",
            healthy_id,
            order_ids,
        )
        failing_requests = None
        failing_deliveries = None
        if failing_id is not None:
            failing_requests = sum(
                1 for r in records if r["subscriber"] == "failing" and r["order_id"] in wanted
            )
            rows = await pool.fetch(
                """SELECT status, count(*) AS n, sum(attempts) AS attempts
                     FROM webhook_deliveries
                    WHERE subscription_id = $1 AND order_id = ANY($2::text[])
                    GROUP BY status""",
                failing_id,
                order_ids,
            )
            failing_deliveries = {r["status"]: int(r["n"]) for r in rows}
            failing_deliveries["attempts"] = sum(int(r["attempts"] or 0) for r in rows)
        return WebhookResult(
            orders=count,
            target_rate=opts.rate,
            placed_per_s=round(count / place_seconds, 2) if place_seconds > 0 else 0.0,
            placement_errors=errors,
            events=int(events),
            received=distinct,
            invalid_signatures=invalid,
            healthy_lag=Lag.of(lags),
            failing_requests=failing_requests,
            failing_deliveries=failing_deliveries,
            claim_search=Lag.of(search_ms),
            due_blocked_max=blocked_max,
            settle_seconds=round(settle_seconds, 1),
            cpu_busy={name: round(cpu / wall, 2) for name, cpu in spent.items()},
        )

    # -------------------------------------------------------------- the run
    async def measure(self, parts: Parts) -> ChannelsReport:
        opts = self.options
        meter = self._cpu_meter(parts)
        pool = await create_pool(self.servers.database_url, min_size=1, max_size=4)
        try:
            paced = max(1, round(opts.feed_rate * opts.feed_seconds))
            webhook_orders = 2 * max(1, round(opts.rate * opts.seconds))
            await provision_stock(pool, opts.orders + paced + webhook_orders, self.run_id)

            async def polled() -> bool:
                count = await pool.fetchval(
                    """SELECT count(*) FROM marketplace_feeds
                        WHERE marketplace = ANY($1::text[]) AND read_at IS NOT NULL""",
                    parts.codes,
                )
                return bool(count == len(parts.codes))

            self.console.print("waiting for the worker's first poll of every feed …")
            await self._wait(parts, "the pollers' first read", polled, 120)

            self.console.print(f"intake, burst: {opts.orders} orders into the feed at once …")
            burst = await self.intake(parts, pool, meter, "b", opts.orders, None)
            self.console.print(
                f"intake, paced: {paced} orders at {opts.feed_rate:g}/s "
                f"for {opts.feed_seconds:g}s …"
            )
            paced_result = await self.intake(parts, pool, meter, "p", paced, opts.feed_rate)

            async with httpx.AsyncClient(
                base_url=parts.api_url,
                headers={"Authorization": "Bearer dev-storefront"},
                timeout=30,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            ) as api:
                healthy_id = await self.subscribe(api, parts.healthy_url, parts.webhook_secret)
                self.console.print(
                    f"webhooks, one healthy subscriber: {opts.rate:g} orders/s "
                    f"for {opts.seconds:g}s …"
                )
                alone = await self.webhooks(parts, pool, meter, api, "h", healthy_id, None)
                failing_id = await self.subscribe(api, parts.failing_url, parts.webhook_secret)
                self.console.print("webhooks, the healthy subscriber beside a failing one …")
                beside = await self.webhooks(parts, pool, meter, api, "f", healthy_id, failing_id)
        finally:
            await pool.close()
        return ChannelsReport(
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            marketplaces=opts.marketplaces,
            poll_seconds=opts.poll_seconds,
            webhook_interval_seconds=self.settings.webhook_interval_seconds,
            webhook_backoff_seconds=self.settings.webhook_backoff_seconds,
            burst=burst,
            paced=paced_result,
            webhooks=alone,
            webhooks_with_failing=beside,
        )

    async def run(self) -> ChannelsReport:
        client = await prepare(self.settings, self.servers)
        del client  # migrations, seed and search attributes are what was needed
        with tempfile.TemporaryDirectory(prefix="orderflow-channels-") as folder:
            with started_parts(self.options, self.servers, self.run_id, Path(folder)) as parts:
                try:
                    return await self.measure(parts)
                except BenchError:
                    for name, process in parts.processes.items():
                        self.console.print(f"--- {name} log ---\n{tail(process.log_file, 15)}")
                    raise


# ------------------------------------------------------------------ output
def _busy(cpu: dict[str, float]) -> str:
    names = ("worker", "temporal", "postgres", "api", "marketplace", "receiver", "bench")
    ours = ", ".join(f"{name} {cpu[name]:.2f}" for name in names if name in cpu)
    if "machine" in cpu:
        # Every process on the machine, this run's and everyone else's.
        ours += f"; whole machine {cpu['machine']:.2f} of 2"
    return ours


def render(r: ChannelsReport) -> list[Table]:
    intake = Table(
        title=f"marketplace intake: {r.marketplaces} marketplace(s), polled every "
        f"{r.poll_seconds:g}s; placed = the order's row in PostgreSQL"
    )
    intake.add_column("figure")
    intake.add_column(f"burst ({r.burst.orders} at once)", justify="right")
    intake.add_column(f"paced ({r.paced.orders} orders)", justify="right")
    for label, burst, paced in (
        ("orders placed", str(r.burst.placed), str(r.paced.placed)),
        ("seconds to fill the feed", f"{r.burst.feed_seconds:g}", f"{r.paced.feed_seconds:g}"),
        ("orders/s, first created → last placed", f"{r.burst.orders_per_s:g}", ""),
        ("orders/s while draining (first → last placed)", f"{r.burst.drain_per_s}", ""),
        ("created → placed p50 / p95", r.burst.placed_lag.text(), r.paced.placed_lag.text()),
        (
            "created → acknowledged p50 / p95",
            r.burst.acknowledged_lag.text(),
            r.paced.acknowledged_lag.text(),
        ),
        ("channel exceptions", str(r.burst.exceptions), str(r.paced.exceptions)),
        ("CPU busy (cores)", _busy(r.burst.cpu_busy), _busy(r.paced.cpu_busy)),
    ):
        intake.add_row(label, burst, paced)

    hooks = Table(
        title=f"outbound webhooks: event row → received by the subscriber "
        f"(dispatcher interval {r.webhook_interval_seconds:g}s, "
        f"retry backoff from {r.webhook_backoff_seconds:g}s)"
    )
    hooks.add_column("figure")
    hooks.add_column("healthy subscriber alone", justify="right")
    hooks.add_column("healthy beside one answering 500", justify="right")
    a, b = r.webhooks, r.webhooks_with_failing
    failing = b.failing_deliveries or {}
    for label, left, right in (
        (
            "orders placed through the API (target rate)",
            f"{a.orders} ({a.target_rate:g}/s)",
            f"{b.orders} ({b.target_rate:g}/s)",
        ),
        ("achieved placement rate", f"{a.placed_per_s:g}/s", f"{b.placed_per_s:g}/s"),
        ("placement errors", str(a.placement_errors), str(b.placement_errors)),
        ("events for the healthy subscriber", str(a.events), str(b.events)),
        ("distinct events it received", str(a.received), str(b.received)),
        ("bad signatures", str(a.invalid_signatures), str(b.invalid_signatures)),
        ("[bold]healthy lag p50 / p95[/]", a.healthy_lag.text(), b.healthy_lag.text()),
        ("healthy lag max", _ms(a.healthy_lag.max_ms), _ms(b.healthy_lag.max_ms)),
        (
            "failing subscriber: requests answered 500 / attempts recorded",
            "",
            f"{b.failing_requests} / {failing.get('attempts', 0)}",
        ),
        (
            "failing subscriber: deliveries by status",
            "",
            ", ".join(f"{k} {v}" for k, v in failing.items() if k != "attempts"),
        ),
        (
            "dispatcher's claim search p50 / p95 (sampled each second)",
            a.claim_search.text(),
            b.claim_search.text(),
        ),
        (
            "most due deliveries blocked behind an earlier event",
            str(a.due_blocked_max),
            str(b.due_blocked_max),
        ),
        (
            "seconds to settle after the last placement",
            f"{a.settle_seconds:g}",
            f"{b.settle_seconds:g}",
        ),
        ("CPU busy (cores)", _busy(a.cpu_busy), _busy(b.cpu_busy)),
    ):
        hooks.add_row(label, left, right)
    return [intake, hooks]


def run_benchmark(options: ChannelsOptions, settings: Settings, console: Console) -> ChannelsReport:
    """Start the servers `settings` does not name, run the benchmark, stop them again."""
    with embedded_servers(settings) as servers:
        console.print(
            f"servers: Temporal {servers.temporal_address}, PostgreSQL {servers.database_url}"
        )
        return asyncio.run(ChannelsBench(options, settings, servers, console).run())


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    orders: int = typer.Option(200, "-n", "--orders", min=1, help="Orders of the burst."),
    feed_rate: float = typer.Option(3.0, "--feed-rate", help="Paced intake, orders/s."),
    feed_seconds: float = typer.Option(20.0, "--feed-seconds", help="Paced intake, seconds."),
    rate: float = typer.Option(20.0, "--rate", help="Webhook phases: orders/s via the API."),
    seconds: float = typer.Option(15.0, "--seconds", help="Webhook phases: seconds each."),
    poll_seconds: float = typer.Option(1.0, "--poll-seconds", help="Pollers' interval."),
    marketplaces: int = typer.Option(1, "--marketplaces", min=1, max=9, help="Feeds."),
    timeout: float = typer.Option(180.0, "--timeout", help="Seconds a phase may take to settle."),
) -> None:
    """Measure, print two tables, then one JSON line with every figure."""
    options = ChannelsOptions(
        orders=orders,
        feed_rate=feed_rate,
        feed_seconds=feed_seconds,
        rate=rate,
        seconds=seconds,
        poll_seconds=poll_seconds,
        marketplaces=marketplaces,
        timeout_seconds=timeout,
    )
    progress = Console(stderr=True)
    try:
        result = run_benchmark(options, Settings(), progress)
    except (BenchError, StackError) as err:
        progress.print(f"[red]benchmark failed:[/] {err}")
        raise typer.Exit(1) from err
    out = Console()
    if not out.is_terminal:
        # Piped or captured: keep the tables' rows on one line each.
        out = Console(width=160)
    for table in render(result):
        out.print(table)
    print(result.model_dump_json(), flush=True)


if __name__ == "__main__":
    app()
