"""Where a running `orderflow up` can be reached, for commands in a second terminal.

`orderflow up` writes `<state dir>/stack.json` (mode 0600) once its parts listen and removes
it when it stops: the PostgreSQL URL, the Temporal address and the API URL of the embedded
stack, and the pids of its processes. Commands started beside it (`orderflow report`,
`orderflow status`, another `orderflow worker`) read it when `DATABASE_URL`,
`TEMPORAL_ADDRESS` or `ORDERFLOW_API_URL` are unset. A file left by a stack that crashed
names a supervisor pid that no longer runs and is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "stack.json"


def facts_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


def _pid_running(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Someone else's process holds that pid: not our stack.
        return False
    return True


def write_facts(state_dir: Path, facts: dict[str, Any]) -> Path:
    """Write the facts atomically, readable by this user only (the URL may hold a password)."""
    path = facts_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"pid": os.getpid(), **facts}, handle, indent=2)
    os.chmod(partial, 0o600)
    os.replace(partial, path)
    return path


def remove_facts(state_dir: Path) -> None:
    """Remove the file, but only the one this process wrote."""
    path = facts_path(state_dir)
    facts = _read(path)
    if facts is not None and facts.get("pid") not in (None, os.getpid()):
        return
    path.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_stack_facts(state_dir: Path) -> dict[str, Any] | None:
    """The facts of the stack running from `state_dir`, or None (no file, or a stale one)."""
    facts = _read(facts_path(state_dir))
    if facts is None or not _pid_running(facts.get("pid")):
        return None
    return facts
