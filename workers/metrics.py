"""A worker's Prometheus metrics, on its own port (`ORDERFLOW_WORKER_METRICS_PORT`, 9464).

One scrape returns two kinds of series:

* the Temporal SDK's (`temporal_*`: workflow and activity task latencies, slots, polls,
  requests), which its Rust core serves on a loopback port of its own; the worker's
  endpoint reads that one and passes the series on, so Prometheus scrapes one port;
* the shop's own gauges (`orderflow_*`), read from PostgreSQL every
  `ORDERFLOW_METRICS_REFRESH_SECONDS` by a background task: the outbox lag, what waits on
  each department and orders by status. Every worker reads the same database, so with
  several workers these agree; aggregate them with `max`, not `sum`.

A port already taken costs the worker its metrics, never its work: it logs and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from wsgiref.simple_server import WSGIServer

import asyncpg
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from db.repositories.ops_metrics import (
    department_queue_depths,
    orders_by_status,
    outbox_lag,
    status_latencies,
)
from orderflow.settings import Settings
from stack.supervisor import free_port

log = logging.getLogger("orderflow.worker.metrics")


def temporal_runtime() -> tuple[Runtime, int]:
    """A Temporal runtime exporting the SDK's metrics on a free loopback port (returned)."""
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
    return runtime, port


class TemporalSdkCollector(Collector):
    """Passes on the series the Temporal core serves at `url` when scraped."""

    def __init__(self, url: str) -> None:
        self.url = url

    def collect(self) -> Iterable[Metric]:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as answer:
                text = answer.read().decode("utf-8")
        except OSError as err:
            log.warning("Temporal SDK metrics unavailable at %s: %s", self.url, err)
            return []
        return list(text_string_to_metric_families(text))


class WorkerGauges:
    """The shop's gauges, in the registry the worker's port serves."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.outbox_due = Gauge(
            "orderflow_outbox_due_rows",
            "Outbox rows (e-mails, notices) due for sending now and not yet sent.",
            registry=registry,
        )
        self.outbox_oldest_due = Gauge(
            "orderflow_outbox_oldest_due_seconds",
            "How long the oldest due outbox row has waited past its send time (outbox lag).",
            registry=registry,
        )
        self.outbox_failed = Gauge(
            "orderflow_outbox_failed_rows",
            "Outbox rows given up on, waiting for an admin's retry.",
            registry=registry,
        )
        self.queue_waiting = Gauge(
            "orderflow_department_queue_items",
            "Items waiting on a department now (its queue in the shared view).",
            ["department"],
            registry=registry,
        )
        self.queue_overdue = Gauge(
            "orderflow_department_queue_overdue_items",
            "Items waiting on a department past their SLA.",
            ["department"],
            registry=registry,
        )
        self.orders = Gauge(
            "orderflow_orders",
            "Orders by current status (as recorded in PostgreSQL).",
            ["status"],
            registry=registry,
        )
        self.reached = Gauge(
            "orderflow_status_reached_seconds",
            "Seconds from the order's receipt to reaching a status, over the orders that "
            "reached it in the last `ORDERFLOW_METRICS_LATENCY_WINDOW_SECONDS` (p50, p95).",
            ["status", "quantile"],
            registry=registry,
        )
        self.reached_orders = Gauge(
            "orderflow_status_reached_orders",
            "Orders that reached a status in the latency window.",
            ["status"],
            registry=registry,
        )
        self.refresh_failures = Gauge(
            "orderflow_metrics_refresh_failures",
            "Consecutive failed reads of the gauges from PostgreSQL (0: the last one worked).",
            registry=registry,
        )
        self._statuses: set[str] = set()
        self._reached: set[str] = set()

    async def refresh(self, pool: asyncpg.Pool, settings: Settings) -> None:
        """Read every gauge from PostgreSQL once."""
        async with pool.acquire() as conn:
            lag = await outbox_lag(conn)
            statuses = await orders_by_status(conn)
            depths = await department_queue_depths(conn, settings)
            latencies = await status_latencies(
                conn, timedelta(seconds=settings.metrics_latency_window_seconds)
            )
        self.outbox_due.set(lag.due)
        self.outbox_oldest_due.set(lag.oldest_due_seconds)
        self.outbox_failed.set(lag.failed)
        for code, depth in depths.items():
            self.queue_waiting.labels(code).set(depth.waiting)
            self.queue_overdue.labels(code).set(depth.overdue)
        # A status no order holds any more reads 0 rather than its last count.
        for status in self._statuses - statuses.keys():
            self.orders.labels(status).set(0)
        for status, count in statuses.items():
            self.orders.labels(status).set(count)
        self._statuses |= statuses.keys()
        for status in self._reached - latencies.keys():
            self.reached_orders.labels(status).set(0)
        for status, latency in latencies.items():
            self.reached.labels(status, "0.5").set(latency.p50_seconds)
            self.reached.labels(status, "0.95").set(latency.p95_seconds)
            self.reached_orders.labels(status).set(latency.orders)
        self._reached |= latencies.keys()

    async def run(self, pool: asyncpg.Pool, settings: Settings) -> None:
        """Refresh every `metrics_refresh_seconds` until cancelled; failures only log."""
        failures = 0
        while True:
            try:
                await self.refresh(pool, settings)
                failures = 0
            except (TimeoutError, OSError, asyncpg.PostgresError) as err:
                failures += 1
                log.warning("reading the metrics gauges failed (%d in a row): %s", failures, err)
            self.refresh_failures.set(failures)
            await asyncio.sleep(settings.metrics_refresh_seconds)


class WorkerMetricsServer:
    """The HTTP endpoint of one worker's metrics; `port` is where it listens."""

    def __init__(self, registry: CollectorRegistry, server: WSGIServer, thread: threading.Thread):
        self.registry = registry
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> WorkerMetricsServer | None:
    """Serve `registry` on host:port; None (logged) when the port is taken."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        log.error(
            "worker metrics cannot listen on %s:%s (%s); running without them", host, port, err
        )
        return None
    log.info("worker metrics on http://%s:%s/metrics", host, server.server_address[1])
    return WorkerMetricsServer(registry, server, thread)


@contextlib.asynccontextmanager
async def worker_metrics(
    settings: Settings, pool: asyncpg.Pool, *, temporal_metrics_port: int | None
) -> AsyncIterator[WorkerMetricsServer | None]:
    """The worker's metrics endpoint and gauge refresher for as long as the block runs."""
    if not settings.worker_metrics_port:
        yield None
        return
    registry = CollectorRegistry()
    if temporal_metrics_port:
        registry.register(TemporalSdkCollector(f"http://127.0.0.1:{temporal_metrics_port}/metrics"))
    gauges = WorkerGauges(registry)
    server = serve_metrics(registry, settings.worker_metrics_host, settings.worker_metrics_port)
    refresher = asyncio.create_task(gauges.run(pool, settings))
    try:
        yield server
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        if server is not None:
            server.close()
