"""The servers a benchmark run uses: its own embedded PostgreSQL and Temporal dev server in
a temporary folder (file-backed SQLite in WAL mode, as `orderflow up` runs it), or the ones
`DATABASE_URL` / `TEMPORAL_ADDRESS` name; and the order side of the stack (carrier
simulator, mail server, API, worker) on free ports, either as processes of their own as
deployed (`python -m app.cli worker`, ...) or all inside this process."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from app.stack_runner import prepare_database
from db.pool import create_pool
from orderflow.settings import Settings
from orderflow.temporal_client import connect_temporal
from simulators.carrier import create_app as create_simulator
from simulators.mailserver import create_app as create_mailserver
from stack.postgres import EmbeddedPostgres
from stack.search_attributes import register_search_attributes
from stack.supervisor import ManagedProcess, free_port, wait_for_port
from stack.temporal import TemporalDevServer
from starter.order_client import OrderClient
from workers.order_worker import build_worker
from workers.outbox import run_dispatcher


@dataclass
class Servers:
    database_url: str
    temporal_address: str
    # Set when this run started the server, so its CPU time can be measured.
    temporal_pid: int | None = None
    postgres_pid: int | None = None


@contextlib.contextmanager
def embedded_servers(settings: Settings) -> Iterator[Servers]:
    """Start whatever `settings` does not point at, in a temporary folder removed afterwards."""
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orderflow-bench-")))
        database_url = settings.database_url
        postgres = None
        if not database_url:
            postgres = EmbeddedPostgres(base / "postgres", free_port())
            stack.enter_context(postgres)
            database_url = postgres.url
        address = settings.temporal_address
        temporal = None
        if not address:
            temporal = TemporalDevServer(
                base / "temporal.db",
                grpc_port=free_port(),
                namespace=settings.temporal_namespace,
                ui=False,
                log_file=base / "temporal.log",
            )
            stack.enter_context(temporal)
            address = temporal.address
        yield Servers(
            database_url=database_url,
            temporal_address=address,
            temporal_pid=temporal.pid if temporal else None,
            postgres_pid=postgres.pid if postgres else None,
        )


async def prepare(settings: Settings, servers: Servers) -> Client:
    """Migrate and seed the database, register the search attributes, connect a client."""
    await prepare_database(servers.database_url)
    client = await connect_temporal(settings, servers.temporal_address)
    await register_search_attributes(client, settings.temporal_namespace)
    return client


@contextlib.asynccontextmanager
async def serve(app: FastAPI, host: str, port: int) -> AsyncIterator[None]:
    """An ASGI app on `host:port` inside this event loop, until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@dataclass
class OrderSide:
    settings: Settings
    storefront: OrderClient
    pool: asyncpg.Pool
    # The API as a storefront calls it (reading an order back after placing it).
    api: httpx.AsyncClient


@contextlib.asynccontextmanager
async def order_side(
    settings: Settings, worker_client: Client, load_client: Client
) -> AsyncIterator[OrderSide]:
    """Carrier simulator, mail server, API (for the carrier's webhook), worker and outbox
    dispatcher.

    The worker and the API get a pool each, as they would in their own processes; the load
    generator places orders through its own client, like a storefront would.
    """
    assert settings.database_url
    storefront = OrderClient(
        load_client, task_queue=settings.task_queue, policy=settings.order_policy
    )
    async with contextlib.AsyncExitStack() as stack:
        worker_pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        stack.push_async_callback(worker_pool.close)
        api_pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        stack.push_async_callback(api_pool.close)
        await stack.enter_async_context(
            serve(create_simulator(settings), "127.0.0.1", settings.carrier_simulator_port)
        )
        if settings.smtp_host:
            # The embedded mail server, so the outbox really sends (delivery lag is measured).
            mailbox = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailbox-")))
            await stack.enter_async_context(
                serve(
                    create_mailserver(settings, store_path=mailbox / "mailbox.sqlite3"),
                    "127.0.0.1",
                    settings.mail_simulator_http_port,
                )
            )
        await stack.enter_async_context(
            serve(
                create_app(settings, pool=api_pool, storefront=storefront),
                "127.0.0.1",
                settings.api_port,
            )
        )
        http = await stack.enter_async_context(httpx.AsyncClient())
        await stack.enter_async_context(build_worker(worker_client, worker_pool, http, settings))
        dispatcher = asyncio.create_task(run_dispatcher(worker_pool, settings))
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{settings.api_port}",
                headers={"Authorization": f"Bearer {settings.token_for('storefront')}"},
                timeout=30,
            )
        )
        try:
            yield OrderSide(settings=settings, storefront=storefront, pool=api_pool, api=api)
        finally:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher


@dataclass
class DeployedSide(OrderSide):
    # Name -> pid of each process of the order side (worker-1.., api, carrier, mail,
    # variant-1..).
    pids: dict[str, int | None] = field(default_factory=dict)
    # Places orders on the variant workers' task queue (None: no variant).
    variant_storefront: OrderClient | None = None


def deployed_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process (`app.cli worker`, ...) these settings'
    addresses, ports, order policy and behaviour."""
    assert settings.database_url and settings.temporal_address
    env = {
        "DATABASE_URL": settings.database_url,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "ORDERFLOW_TASK_QUEUE": settings.task_queue,
        "ORDERFLOW_API_PORT": str(settings.api_port),
        "ORDERFLOW_CARRIER_API_URL": settings.carrier_api_url,
        "ORDERFLOW_CARRIER_SIMULATOR_PORT": str(settings.carrier_simulator_port),
        "ORDERFLOW_CARRIER_WEBHOOK_BASE_URL": settings.carrier_webhook_base_url,
        "ORDERFLOW_CARRIER_SIMULATOR_MODE": settings.carrier_simulator_mode,
        "ORDERFLOW_ORDER_POLICY": settings.order_policy.model_dump_json(),
        "ORDERFLOW_OUTBOX_INTERVAL_SECONDS": str(settings.outbox_interval_seconds),
        "ORDERFLOW_WORKER_METRICS_PORT": "0",
        "ORDERFLOW_WORKER_WORKFLOW_RUNNER": settings.worker_workflow_runner,
    }
    if settings.smtp_host:
        env["ORDERFLOW_SMTP_HOST"] = settings.smtp_host
        env["ORDERFLOW_SMTP_PORT"] = str(settings.smtp_port)
        env["ORDERFLOW_MAIL_SIMULATOR_HTTP_PORT"] = str(settings.mail_simulator_http_port)
    return env


@contextlib.asynccontextmanager
async def deployed_order_side(
    settings: Settings,
    load_client: Client,
    *,
    workers: int = 1,
    variant_env: dict[str, str] | None = None,
) -> AsyncIterator[DeployedSide]:
    """Carrier simulator, mail server, `workers` worker processes and the API, each a
    process of its own started as `orderflow up` starts it; the load generator (this
    process) places orders through its own client, like a storefront would.

    With `variant_env`, as many workers again with those variables added, on a task queue
    of their own: two worker configurations measured in one run, sharing everything else.
    """
    assert settings.database_url
    storefront = OrderClient(
        load_client, task_queue=settings.task_queue, policy=settings.order_policy
    )
    with contextlib.ExitStack() as stack:
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orderflow-side-")))
        child_env = {**deployed_env(settings), "ORDERFLOW_STATE_DIR": str(state)}
        variant_queue = f"{settings.task_queue}-variant"
        python = [sys.executable, "-m", "app.cli"]
        processes: dict[str, ManagedProcess] = {}
        parts = {"carrier": "carrier-simulator"}
        if settings.smtp_host:
            parts["mail"] = "mail-server"
        for name, command in parts.items():
            processes[name] = ManagedProcess(
                name, [*python, command], state / f"{name}.log", child_env
            )
        for i in range(1, workers + 1):
            processes[f"worker-{i}"] = ManagedProcess(
                f"worker-{i}", [*python, "worker"], state / f"worker-{i}.log", child_env
            )
            if variant_env is not None:
                processes[f"variant-{i}"] = ManagedProcess(
                    f"variant-{i}",
                    [*python, "worker"],
                    state / f"variant-{i}.log",
                    {**child_env, "ORDERFLOW_TASK_QUEUE": variant_queue, **variant_env},
                )
        processes["api"] = ManagedProcess("api", [*python, "api"], state / "api.log", child_env)
        for process in processes.values():
            process.start()
            stack.callback(process.stop)
        waits = [(settings.carrier_simulator_port, "carrier"), (settings.api_port, "api")]
        if settings.smtp_host:
            waits.append((settings.smtp_port, "mail"))
        for port, name in waits:
            await asyncio.to_thread(wait_for_port, port, timeout=60, alive=processes[name])
        pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{settings.api_port}",
                headers={"Authorization": f"Bearer {settings.token_for('storefront')}"},
                timeout=30,
            ) as api:
                yield DeployedSide(
                    settings=settings,
                    storefront=storefront,
                    pool=pool,
                    api=api,
                    pids={name: p.pid for name, p in processes.items()},
                    variant_storefront=None
                    if variant_env is None
                    else OrderClient(
                        load_client, task_queue=variant_queue, policy=settings.order_policy
                    ),
                )
        finally:
            await pool.close()


def baseline_worker_process(settings: Settings, task_queue: str, log_file: Path) -> ManagedProcess:
    """The baseline's worker as a process of its own (`bench/baseline_worker.py`)."""
    assert settings.temporal_address
    return ManagedProcess(
        "baseline-worker",
        [sys.executable, "-m", "bench.baseline_worker", task_queue],
        log_file,
        {"TEMPORAL_ADDRESS": settings.temporal_address},
    )
