"""`orderflow up`: the whole embedded stack on one machine, stopped cleanly on Ctrl-C.

PostgreSQL and the Temporal dev server start here unless `DATABASE_URL` / `TEMPORAL_ADDRESS`
point elsewhere, and the mail server unless `ORDERFLOW_SMTP_HOST` does; the carrier
simulator, the payment service provider simulator, the worker and the API run as child
processes of this one, each with a log under `.orderflow/logs/`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from db.migrate import apply_migrations
from db.pool import create_pool
from db.seed import seed_demo_catalogue
from orderflow.models import OrderPolicy
from orderflow.redact import redact_url
from orderflow.settings import ROLES, Settings
from orderflow.stack_facts import remove_facts, running_stack_facts, write_facts
from orderflow.temporal_client import connect_temporal
from stack.postgres import EmbeddedPostgres
from stack.search_attributes import register_search_attributes
from stack.supervisor import (
    ManagedProcess,
    RestartPolicy,
    StackError,
    Supervisor,
    wait_for_port,
)
from stack.temporal import TemporalDevServer

# The embedded demo keeps people's waits short and runs the warehouse by itself.
DEMO_POLICY = OrderPolicy(
    auto_warehouse=True,
    auto_pick_delay=timedelta(seconds=3),
    auto_pack_delay=timedelta(seconds=3),
    quiet_period=timedelta(seconds=30),
    review_window=timedelta(minutes=10),
)


async def prepare_database(database_url: str) -> None:
    """Migrations and the demo catalogue (idempotent)."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
            await seed_demo_catalogue(conn)
    finally:
        await pool.close()


async def _register_external(settings: Settings, address: str) -> None:
    client = await connect_temporal(settings, address)
    await register_search_attributes(client, settings.temporal_namespace)


async def ensure_schedules(settings: Settings, address: str) -> None:
    """The daily replenishment, the weekly KPI snapshot and the risk calibration
    (idempotent)."""
    from starter.kpi_schedule import ensure_kpi_schedule
    from starter.process_review_schedule import ensure_process_review_schedule
    from starter.replenishment import ensure_replenishment_schedule
    from starter.risk_calibration_schedule import ensure_risk_calibration_schedule

    client = await connect_temporal(settings, address)
    await ensure_replenishment_schedule(client, settings)
    await ensure_kpi_schedule(client, settings)
    await ensure_process_review_schedule(client, settings)
    await ensure_risk_calibration_schedule(client, settings)


def worker_names(count: int) -> list[str]:
    """The worker processes of `orderflow up --workers count` (one keeps the plain name)."""
    return ["worker"] if count == 1 else [f"worker-{i}" for i in range(1, count + 1)]


def run_stack(
    settings: Settings,
    *,
    demo: bool,
    console: Console,
    workers: int | None = None,
    restart_policy: RestartPolicy | None = None,
) -> str:
    # Before anything starts: a refused production stack leaves no server running.
    settings.require_safe_for_production()
    state = settings.state_dir.resolve()
    running = running_stack_facts(state)
    if running is not None:
        raise StackError(
            f"orderflow up is already running from {state} (pid {running['pid']}); "
            "stop it first, or give this one another ORDERFLOW_STATE_DIR"
        )
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    worker_count = workers or settings.up_workers
    processes: dict[str, ManagedProcess] = {}
    facts: dict[str, object] = {}

    def record_pids(name: str = "", member: ManagedProcess | None = None) -> None:
        # Rewritten after every restart, so the file always names the live pids.
        facts["processes"] = {n: p.pid for n, p in processes.items() if p.pid is not None}
        write_facts(state, facts)

    with Supervisor(restart_policy or RestartPolicy(), on_restart=record_pids) as sup:
        sup.install_signal_handlers()
        database_url = settings.database_url
        if not database_url:
            console.print("starting PostgreSQL …")
            postgres = sup.add(
                EmbeddedPostgres(state / "postgres", settings.postgres_port), "postgres"
            )
            postgres.start()
            database_url = postgres.url
        asyncio.run(prepare_database(database_url))

        address = settings.temporal_address
        ui_url = None
        if not address:
            console.print("starting the Temporal dev server …")
            temporal = sup.add(
                TemporalDevServer(
                    state / "temporal.db",
                    grpc_port=settings.temporal_grpc_port,
                    ui_port=settings.temporal_ui_port,
                    namespace=settings.temporal_namespace,
                    log_file=logs / "temporal.log",
                    ui_codec_endpoint=f"http://localhost:{settings.api_port}/codec",
                ),
                "temporal",
            )
            temporal.start()
            address = temporal.address
            ui_url = f"http://localhost:{settings.temporal_ui_port}"
        else:
            asyncio.run(_register_external(settings, address))

        asyncio.run(ensure_schedules(settings, address))

        env = {
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": address,
            # The parts find each other on the ports this stack was given.
            "ORDERFLOW_CARRIER_API_URL": f"http://127.0.0.1:{settings.carrier_simulator_port}",
            "ORDERFLOW_PSP_API_URL": f"http://127.0.0.1:{settings.psp_simulator_port}",
            "ORDERFLOW_CARRIER_WEBHOOK_BASE_URL": f"http://127.0.0.1:{settings.api_port}",
            "ORDERFLOW_API_URL": f"http://127.0.0.1:{settings.api_port}",
            # The Web UI of this stack may ask the API's codec endpoint to decode.
            "ORDERFLOW_CODEC_CORS_ORIGINS": json.dumps(
                sorted(
                    {
                        *settings.codec_cors_origins,
                        f"http://localhost:{settings.temporal_ui_port}",
                        f"http://127.0.0.1:{settings.temporal_ui_port}",
                    }
                )
            ),
        }
        # The marketplaces are the embedded simulator's unless ORDERFLOW_MARKETPLACES names
        # real ones; its demo orders arrive every few seconds.
        own_marketplaces = not settings.marketplaces
        if own_marketplaces:
            sim = f"http://127.0.0.1:{settings.marketplace_simulator_port}"
            env["ORDERFLOW_MARKETPLACES"] = json.dumps(
                [
                    {
                        "code": code,
                        "base_url": f"{sim}/{code}",
                        "api_key": settings.marketplace_simulator_api_key,
                        "poll_seconds": 2,
                    }
                    for code in settings.marketplace_simulator_codes
                ]
            )
            if "ORDERFLOW_MARKETPLACE_SIMULATOR_DEMO_SECONDS" not in os.environ:
                env["ORDERFLOW_MARKETPLACE_SIMULATOR_DEMO_SECONDS"] = "20"
        if "ORDERFLOW_ORDER_POLICY" not in os.environ:
            env["ORDERFLOW_ORDER_POLICY"] = DEMO_POLICY.model_dump_json()
        # E-mail goes to the embedded mail server unless ORDERFLOW_SMTP_HOST names another.
        own_mail_server = not settings.smtp_host
        if own_mail_server:
            env["ORDERFLOW_SMTP_HOST"] = "127.0.0.1"
            env["ORDERFLOW_SMTP_PORT"] = str(settings.smtp_port)
            env["ORDERFLOW_MAILBOX_URL"] = f"http://127.0.0.1:{settings.mail_simulator_http_port}"
        python = [sys.executable, "-m", "app.cli"]
        parts = ("mail-server",) if own_mail_server else ()
        if own_marketplaces:
            parts = (*parts, "marketplace-simulator")
        for name in (*parts, "carrier-simulator", "psp-simulator"):
            processes[name] = ManagedProcess(name, [*python, name], logs / f"{name}.log", env)
        for i, name in enumerate(worker_names(worker_count)):
            port = settings.worker_metrics_port + i if settings.worker_metrics_port else 0
            processes[name] = ManagedProcess(
                name,
                [*python, "worker"],
                logs / f"{name}.log",
                {**env, "ORDERFLOW_WORKER_METRICS_PORT": str(port)},
            )
        processes["api"] = ManagedProcess("api", [*python, "api"], logs / "api.log", env)
        for name, process in processes.items():
            sup.add(process, name).start()
        if own_mail_server:
            wait_for_port(settings.smtp_port, timeout=60)
            wait_for_port(settings.mail_simulator_http_port, timeout=60)
        wait_for_port(settings.carrier_simulator_port, timeout=60)
        wait_for_port(settings.psp_simulator_port, timeout=60)
        if own_marketplaces:
            wait_for_port(settings.marketplace_simulator_port, timeout=60)
        wait_for_port(settings.api_port, timeout=60)
        if demo:
            demo_process = ManagedProcess(
                "demo", [*python, "load", "--continuous", "--rate", "0.5"], logs / "demo.log", env
            )
            sup.add(demo_process, "demo").start()
            processes["demo"] = demo_process

        api_url = f"http://127.0.0.1:{settings.api_port}"
        facts.update(
            # A URL with a password (an external server's) stays out of the file: a second
            # terminal then needs DATABASE_URL of its own, as it did before.
            database_url=None if urlsplit(database_url).password else database_url,
            temporal_address=address,
            api_url=api_url,
            state_dir=str(state),
            workers=worker_count,
            worker_metrics_ports=[
                settings.worker_metrics_port + i
                for i in range(worker_count)
                if settings.worker_metrics_port
            ],
        )
        record_pids()

        console.print("\n[bold green]orderflow is up[/]")
        if ui_url:
            console.print(
                f'  Temporal Web UI   {ui_url}  (filter e.g. OrderStatus="PENDING_REVIEW")'
            )
        console.print(f"  Temporal gRPC     {address}")
        console.print(f"  HTTP API          http://localhost:{settings.api_port}  (docs at /docs)")
        console.print(
            f"  PSP simulator     http://localhost:{settings.psp_simulator_port}  (docs at /docs)"
        )
        if own_marketplaces:
            codes = ", ".join(settings.marketplace_simulator_codes)
            console.print(
                f"  Marketplaces      http://localhost:{settings.marketplace_simulator_port}"
                f"/<code> ({codes}; `orderflow channels status`)"
            )
        console.print(f"  PostgreSQL        {redact_url(database_url)}")
        if own_mail_server:
            console.print(
                f"  Mailbox           http://localhost:{settings.api_port}/ui/mailbox.html"
                f"  (`orderflow mail list`; SMTP localhost:{settings.smtp_port})"
            )
        else:
            console.print(f"  SMTP              {settings.smtp_host}:{settings.smtp_port}")
        console.print(f"  logs              {logs}")
        console.print(f"  metrics           {api_url}/metrics", end="")
        if settings.worker_metrics_port:
            last = settings.worker_metrics_port + worker_count - 1
            ports = f"{settings.worker_metrics_port}" + (f"-{last}" if worker_count > 1 else "")
            console.print(f"; workers on port {ports}")
        else:
            console.print()
        console.print(f"  workers           {worker_count} (restarted if one dies)")
        console.print(f"  second terminal   `orderflow report` etc. use {state / 'stack.json'}")
        if settings.mode != "production":
            console.print("  development tokens: " + ", ".join(f"dev-{role}" for role in ROLES))
        console.print("Press Ctrl-C to stop.\n")
        # Redirected to a file, stdout is block-buffered: the banner must show now, not at exit.
        console.file.flush()
        try:
            reason = sup.wait()
        finally:
            remove_facts(state)
        console.print(f"stopping ({reason}) …")
    return reason


def state_path(settings: Settings, *parts: str) -> Path:
    return settings.state_dir.joinpath(*parts)
