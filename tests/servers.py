"""Real servers for the integration tests: PostgreSQL, the Temporal dev server, and the
project's own worker, API, carrier simulator and PSP simulator on free loopback ports.

`DATABASE_URL`, when set, is used instead of an embedded PostgreSQL (each session makes a
fresh database on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from db.migrate import apply_migrations
from db.pool import connect, create_pool
from db.seed import seed_demo_catalogue
from orderflow.models import OrderPolicy
from orderflow.search_attributes import ALL_KEYS
from orderflow.settings import Settings
from simulators.carrier import create_app as create_simulator
from simulators.psp import PspSimulator
from simulators.psp import create_app as create_psp
from stack.postgres import EmbeddedPostgres
from stack.supervisor import free_port
from stack.temporal import find_temporal_binary
from starter.order_client import OrderClient
from tests.helpers import CONVERTER
from workers.order_worker import build_worker


@contextlib.contextmanager
def postgres_url(base: Path) -> Any:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(base / "pgdata", free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def fresh_database(url: str) -> str:
    """A new, empty database on the server of `url`, so test sessions never share state."""
    name = f"orderflow_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}"'
        )  # identifier, not a value: no parameter form
    finally:
        await admin.close()
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


async def prepare(url: str) -> None:
    conn = await connect(url)
    try:
        await apply_migrations(conn)
        await seed_demo_catalogue(conn)
    finally:
        await conn.close()


async def start_dev_server() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_temporal_binary()),
        search_attributes=ALL_KEYS,
        data_converter=CONVERTER,
        dev_server_log_level="error",
    )


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            # Longer than the test clients keep idle connections, so a client never reuses
            # one the server is closing at that moment (a spurious ReadError).
            timeout_keep_alive=30,
        )
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


# Quick retries against the PSP simulator: an outage is a couple of 503s, not minutes.
FAST_PSP: dict[str, Any] = {
    "psp_http_timeout_seconds": 3.0,
    "psp_client_attempts": 4,
    "psp_client_backoff_seconds": 0.02,
    "psp_client_backoff_max_seconds": 0.1,
    "psp_simulator_webhook_delay_seconds": 0.05,
    "psp_simulator_webhook_attempts": 6,
    "psp_simulator_webhook_backoff_seconds": 0.05,
    "psp_simulator_webhook_backoff_max_seconds": 0.2,
}


@dataclass
class Psp:
    """The PSP simulator of a stack: its records, and its control over HTTP."""

    sim: PspSimulator
    url: str
    settings: Settings

    async def control(self, **changes: Any) -> None:
        async with self.raw() as http:
            response = await http.post("/control", json=changes)
            assert response.status_code == 200, response.text

    def raw(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.settings.psp_api_key}"},
            timeout=5.0,
        )

    async def checkout(self, transaction_id: str, amount: str, *, capture: bool) -> None:
        async with self.raw() as http:
            response = await http.post(
                "/payments",
                json={
                    "transaction_id": transaction_id,
                    "amount": amount,
                    "currency": "EUR",
                    "capture": capture,
                },
                headers={"Idempotency-Key": f"checkout-{transaction_id}"},
            )
            assert response.status_code == 201, response.text

    async def payment(self, transaction_id: str) -> dict[str, Any]:
        """The simulator's own record of a payment (404 raises)."""
        async with self.raw() as http:
            response = await http.get(f"/payments/{transaction_id}")
            response.raise_for_status()
            record: dict[str, Any] = response.json()
            return record

    async def dispute(self, transaction_id: str) -> str:
        async with self.raw() as http:
            response = await http.post(f"/payments/{transaction_id}/disputes", json={})
            assert response.status_code == 201, response.text
            dispute_id: str = response.json()["dispute_id"]
            return dispute_id


@contextlib.asynccontextmanager
async def psp_simulator(settings: Settings, port: int) -> AsyncIterator[Psp]:
    app = create_psp(settings)
    async with serve(app, port):
        try:
            yield Psp(app.state.simulator, f"http://127.0.0.1:{port}", settings)
        finally:
            await app.state.simulator.idle()


@dataclass
class Stack:
    """Everything an integration test talks to."""

    settings: Settings
    client: Client
    pool: asyncpg.Pool
    storefront: OrderClient
    api: httpx.AsyncClient
    database_url: str
    psp: Psp

    async def http(
        self, method: str, path: str, role: str | None = "storefront", **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = (
                f"Bearer {self.settings.token_for(role)}" if role != "raw" else ""
            )
        return await self.api.request(method, path, headers=headers, **kw)


@contextlib.asynccontextmanager
async def running_stack(
    env: WorkflowEnvironment,
    database_url: str,
    *,
    policy: OrderPolicy,
    with_worker: bool = True,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    api_port, sim_port, psp_port = free_port(), free_port(), free_port()
    settings = Settings(
        database_url=database_url,
        task_queue=f"orders-{uuid.uuid4().hex[:8]}",
        api_port=api_port,
        carrier_api_url=f"http://127.0.0.1:{sim_port}",
        carrier_simulator_port=sim_port,
        carrier_webhook_base_url=f"http://127.0.0.1:{api_port}",
        carrier_simulator_mode="instant",
        psp_api_url=f"http://127.0.0.1:{psp_port}",
        **FAST_PSP,
        # Customer mails link to the order page on this API.
        public_url=f"http://127.0.0.1:{api_port}",
        order_policy=policy,
        outbox_interval_seconds=0.2,
        db_pool_max=30,
        # All tests share one database, so the shop's order history depends on which tests
        # ran before. At 60 only a failed payment or a blocked address flags an order on its
        # own; value and new-customer signals, which read that history, cannot.
        risk_flag_threshold=60.0,
    ).model_copy(update=overrides)
    # A test may name the PSP's port itself: the simulator listens where the settings point.
    psp_port = int(settings.psp_api_url.rsplit(":", 1)[1])
    pool = await create_pool(database_url, min_size=2, max_size=settings.db_pool_max)
    storefront = OrderClient(env.client, task_queue=settings.task_queue, policy=policy)
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(serve(create_simulator(settings), sim_port))
            psp = await stack.enter_async_context(psp_simulator(settings, psp_port))
            await stack.enter_async_context(
                serve(create_app(settings, pool=pool, storefront=storefront), api_port)
            )
            http = await stack.enter_async_context(httpx.AsyncClient())
            if with_worker:
                worker: Worker = build_worker(env.client, pool, http, settings)
                await stack.enter_async_context(worker)
            api = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{api_port}",
                    timeout=30,
                    limits=httpx.Limits(keepalive_expiry=5),
                )
            )
            yield Stack(settings, env.client, pool, storefront, api, database_url, psp)
    finally:
        await pool.close()
