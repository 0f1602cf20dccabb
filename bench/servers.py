"""The servers a benchmark run uses: its own embedded PostgreSQL and Temporal dev server in
a temporary folder (file-backed SQLite in WAL mode, as `orderflow up` runs it), or the ones
`DATABASE_URL` / `TEMPORAL_ADDRESS` name; and the order side of the stack (carrier
simulator, API, worker) running in this process on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
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
from stack.supervisor import free_port
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
