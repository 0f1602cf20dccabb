"""Child processes of the embedded stack: start them, watch them, stop them in order.

`orderflow up` starts PostgreSQL, Temporal, the worker and the API; on Ctrl-C they must
stop in the reverse order (the API before the worker, the worker before the servers it
talks to). Every child runs in its own session so a Ctrl-C in the terminal reaches only
the supervisor, which then stops the children one by one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Protocol, TypeVar

import psutil

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A server or child process of the stack could not start or stop as asked."""


class PortInUseError(StackError):
    """The port a server of the stack should listen on is taken."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests: another process may take it)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free TCP ports, found while holding all of them open at once."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers set it, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    alive: ManagedProcess | None = None,
) -> None:
    """Block until `host:port` accepts connections; fail early if `alive` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(port, host):
            return
        if alive is not None and not alive.is_alive():
            raise StackError(
                f"{alive.name} exited (code {alive.returncode}) before listening on "
                f"{host}:{port}; see {alive.log_file}\n{tail(alive.log_file)}"
            )
        time.sleep(0.1)
    raise StackError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def who_listens(port: int) -> str | None:
    """A short description of the process listening on `port`, when the OS tells us."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "another user's process"
            try:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3]) or proc.name()})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def ensure_port_free(port: int, host: str, what: str) -> None:
    """Raise `PortInUseError` naming the holder if `host:port` is taken."""
    if port_is_free(port, host):
        return
    holder = who_listens(port)
    by = f" by {holder}" if holder else ""
    raise PortInUseError(
        f"{what} cannot listen on {host}:{port}: the port is already in use{by}. "
        f"Stop that process or choose another port."
    )


def tail(path: Path | None, lines: int = 30) -> str:
    """The last `lines` lines of a log file, for error messages."""
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def terminate_process_tree(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process and its descendants, then SIGKILL whatever outlives `timeout`."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    try:
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [root]
    for proc in family:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for proc in alive:
        log.warning("pid %s did not stop within %.0fs; killing it", proc.pid, timeout)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor brings back a child process that died on its own.

    A child that died is started again after `backoff_seconds`, doubling with every death
    inside `window_seconds` up to `backoff_max_seconds`; one that dies more than
    `max_restarts` times inside the window is given up on, and the stack stops: a part
    that cannot stay up is a fault to fix, not one to hide behind endless restarts.
    """

    max_restarts: int = 5
    window_seconds: float = 60.0
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 30.0

    def delay(self, deaths_in_window: int) -> float:
        return min(
            self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, deaths_in_window - 1)
        )


class Stoppable(Protocol):
    """Anything the supervisor can stop: servers and managed processes."""

    def stop(self) -> object: ...


_Member = TypeVar("_Member", bound=Stoppable)


class ManagedProcess:
    """One child process (`python -m ...`, a server binary) with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = Path(log_file)
        # `env` adds to (or overrides) this process's environment rather than replacing it.
        self.env = dict(env or {})
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, alive={self.is_alive()})"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> ManagedProcess:
        """Start the process (a no-op if it is running). Returns self."""
        if self.is_alive():
            return self
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log_handle = self.log_file.open("ab")
        self._log_handle.write(f"--- {time.strftime('%F %T')} start {self.argv}\n".encode())
        self._log_handle.flush()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.info("started %s (pid %s), log %s", self.name, self._popen.pid, self.log_file)
        return self

    def is_alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the process group, SIGKILL after `timeout` seconds. Returns the exit code."""
        popen = self._popen
        if popen is None:
            return None
        if popen.returncode is None:
            wait = self.stop_timeout if timeout is None else timeout
            self._signal_group(signal.SIGTERM)
            if not self._exited_unreaped(wait):
                log.warning("%s did not stop within %.0fs; killing it", self.name, wait)
            # The leader is dead but not yet reaped (or still running), so its group id
            # cannot belong to anyone else: this reaches only its own leftovers.
            self._signal_group(signal.SIGKILL)
            popen.wait()
        else:
            self._kill_leftovers()
        self._close_log()
        log.info("stopped %s (exit code %s)", self.name, popen.returncode)
        return popen.returncode

    def kill(self) -> None:
        """SIGKILL the process group at once: a crash, as the recovery tests need."""
        if self._popen is None or self._popen.returncode is not None:
            return
        self._signal_group(signal.SIGKILL)
        self._popen.wait()
        self._close_log()

    def restart(self) -> ManagedProcess:
        self.stop()
        return self.start()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit on its own and return its exit code."""
        if self._popen is None:
            raise StackError(f"{self.name} was never started")
        return self._popen.wait(timeout)

    def _exited_unreaped(self, timeout: float) -> bool:
        """Wait up to `timeout` for the process to exit, leaving it a zombie (not reaped)."""
        assert self._popen is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True
            if info is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _kill_leftovers(self) -> None:
        """Kill processes still in the group of a child that has already been reaped."""
        if self._popen is None:
            return
        group = self._popen.pid
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == group:
                    proc.kill()
            except (ProcessLookupError, psutil.Error):
                continue

    def _signal_group(self, signum: signal.Signals) -> None:
        if self._popen is None:
            return
        try:
            # The child leads its own session, so its pid is its process group id.
            os.killpg(self._popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Supervisor:
    """Members of the stack in start order; stops them in reverse on a signal or on exit.

    Typical use::

        with Supervisor() as sup:
            sup.install_signal_handlers()
            sup.add(postgres); postgres.start()
            sup.add(temporal); temporal.start()
            sup.add(ManagedProcess("worker", [...], log)).start()
            reason = sup.wait()        # Ctrl-C, SIGTERM, or a child that died
                                       # (with a RestartPolicy: one that keeps dying)
        # leaving the block stops everything, API first, PostgreSQL last
    """

    def __init__(
        self,
        restart_policy: RestartPolicy | None = None,
        *,
        on_restart: Callable[[str, ManagedProcess], None] | None = None,
    ) -> None:
        self._members: list[tuple[str, Stoppable]] = []
        # Without a policy a child that dies ends `wait` (what tests of one start want);
        # with one, the managed processes are restarted and only a lasting fault ends it.
        self.restart_policy = restart_policy
        self._on_restart = on_restart
        self._deaths: dict[str, list[float]] = {}
        self._restart_at: dict[str, float] = {}
        self.restarts: dict[str, int] = {}
        self._stop_requested = threading.Event()
        self._signal_count = 0
        self._previous_handlers: dict[int, object] = {}
        self._lock = threading.Lock()

    @property
    def members(self) -> list[Stoppable]:
        return [member for _, member in self._members]

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def add(self, member: _Member, name: str | None = None) -> _Member:
        """Register a member (before starting it, so a failed start is still cleaned up)."""
        label = name or getattr(member, "name", None) or type(member).__name__
        self._members.append((str(label), member))
        return member

    def request_stop(self) -> None:
        """Make `wait` return; what a signal handler calls."""
        self._stop_requested.set()

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM request a stop; a second one shortens the remaining waits."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signal_count += 1
        if self._signal_count > 1:
            # The operator insists: child processes still to stop get one second each.
            log.warning("received %s again; hurrying the shutdown", signal.Signals(signum).name)
            return
        log.info("received %s; shutting down", signal.Signals(signum).name)
        self.request_stop()

    def wait(self, poll_interval: float = 0.5) -> str:
        """Block until a stop is requested or a managed process exits; say which."""
        while not self._stop_requested.wait(poll_interval):
            died = self._dead_member()
            if died is not None:
                return died
        return "stop requested"

    def _dead_member(self) -> str | None:
        """Why the stack must stop now, or None; restarts the children that may come back."""
        now = time.monotonic()
        for name, member in self._members:
            if not isinstance(member, ManagedProcess) or member.pid is None:
                continue
            if member.is_alive():
                continue
            if self.restart_policy is None:
                return f"{name} exited with code {member.returncode}"
            due = self._restart_at.get(name)
            if due is None:
                reason = self._record_death(name, member, now)
                if reason is not None:
                    return reason
            elif now >= due:
                del self._restart_at[name]
                try:
                    member.start()
                except OSError as err:
                    return f"{name} could not be restarted: {err}"
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.warning("restarted %s (pid %s)", name, member.pid)
                if self._on_restart is not None:
                    self._on_restart(name, member)
        return None

    def _record_death(self, name: str, member: ManagedProcess, now: float) -> str | None:
        """Count a death and schedule the restart; a reason to stop when there were too many."""
        policy = self.restart_policy
        assert policy is not None
        recent = [t for t in self._deaths.get(name, []) if now - t < policy.window_seconds]
        recent.append(now)
        self._deaths[name] = recent
        code = member.returncode
        if len(recent) > policy.max_restarts:
            log.error(
                "%s exited with code %s for the %d. time within %.0fs; giving up",
                name,
                code,
                len(recent),
                policy.window_seconds,
            )
            return (
                f"{name} keeps dying: exited {len(recent)} times within "
                f"{policy.window_seconds:.0f}s (last exit code {code}); see {member.log_file}"
            )
        delay = policy.delay(len(recent))
        log.warning(
            "%s exited with code %s; restarting it in %.1fs (%d of %d restarts allowed "
            "within %.0fs); see %s",
            name,
            code,
            delay,
            len(recent),
            policy.max_restarts,
            policy.window_seconds,
            member.log_file,
        )
        self._restart_at[name] = now + delay
        return None

    async def wait_async(self, poll_interval: float = 0.5) -> str:
        """`wait` for async callers (`orderflow up` under asyncio), without blocking the loop."""
        while not self._stop_requested.is_set():
            died = self._dead_member()
            if died is not None:
                return died
            await asyncio.sleep(poll_interval)
        return "stop requested"

    def shutdown_all(self) -> list[tuple[str, BaseException]]:
        """Stop every member, last added first; keep going past failures and return them."""
        failures: list[tuple[str, BaseException]] = []
        with self._lock:
            while self._members:
                name, member = self._members.pop()
                try:
                    if isinstance(member, ManagedProcess) and self._signal_count > 1:
                        member.stop(timeout=1.0)
                    else:
                        member.stop()
                except Exception as err:
                    log.error("stopping %s failed: %s", name, err)
                    failures.append((name, err))
        return failures

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.shutdown_all()
        finally:
            self.restore_signal_handlers()
