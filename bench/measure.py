"""What the benchmark measures besides wall time: percentiles, when each order reached a
status (from the order event table), CPU time per process, and the shape of a workflow's
history (how many round trips to the server one run of it costs)."""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import asyncpg
import psutil
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

# The SDK core's warning that a workflow task took longer than 5 seconds.
SLOW_WORKFLOW_TASK = "TMPRL1104"


class CoreWarnings(logging.Handler):
    """Counts the SDK core's warnings, which would otherwise be printed over the table."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.slow_workflow_tasks = 0
        self.others: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if SLOW_WORKFLOW_TASK in message:
            self.slow_workflow_tasks += 1
        else:
            self.others[message[:200]] += 1


def capture_core_warnings() -> CoreWarnings:
    """Route the SDK core's logs of every client created from now on to a counter."""
    handler = CoreWarnings()
    logger = logging.getLogger("bench.sdk_core")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    logger.addHandler(handler)
    Runtime.set_default(
        Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                    forwarding=LogForwardingConfig(logger=logger),
                )
            )
        ),
        error_if_already_set=False,
    )
    return handler


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def status_times(
    pool: asyncpg.Pool, order_ids: Sequence[str], statuses: Sequence[str]
) -> dict[tuple[str, str], datetime]:
    """(order id, status) -> when the event that set that status was written."""
    rows = await pool.fetch(
        """SELECT order_id, status, min(occurred_at) AS at FROM order_events
           WHERE order_id = ANY($1::text[]) AND status = ANY($2::text[])
           GROUP BY order_id, status""",
        list(order_ids),
        list(statuses),
    )
    return {(r["order_id"], r["status"]): r["at"] for r in rows}


class CpuMeter:
    """CPU seconds (user + system) used by named process trees, sampled on demand; with
    `core_threads`, also `<name>.core`: the threads of the process itself named otherwise
    than its main thread (the SDK core's Rust threads in a worker or client process)."""

    def __init__(self, pids: Mapping[str, int | None], *, core_threads: bool = False) -> None:
        self._core_threads = core_threads
        self._processes: dict[str, psutil.Process] = {}
        for name, pid in pids.items():
            if pid is None:
                continue
            try:
                self._processes[name] = psutil.Process(pid)
            except psutil.Error:
                continue

    @property
    def names(self) -> list[str]:
        return list(self._processes)

    def sample(self) -> dict[str, float]:
        sample = {name: _tree_cpu(proc) for name, proc in self._processes.items()}
        # Every process on the machine, ours or not: what other work took of the cores.
        machine = psutil.cpu_times()
        sample["machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        if self._core_threads:
            for name, proc in self._processes.items():
                if name not in ("server", "postgres"):
                    core = _native_thread_cpu(proc)
                    if core is not None:
                        sample[f"{name}.core"] = core
        return sample


def _native_thread_cpu(proc: psutil.Process) -> float | None:
    """CPU of the threads whose name (/proc/<pid>/task/<tid>/comm) is not the process's own:
    Python never names its threads, the Rust runtime of the SDK core does ("tokio-...")."""
    task = f"/proc/{proc.pid}/task"
    try:
        with open(f"/proc/{proc.pid}/comm") as f:
            main = f.read().strip()
        threads = proc.threads()
    except (OSError, psutil.Error):
        return None
    total = 0.0
    for thread in threads:
        try:
            with open(f"{task}/{thread.id}/comm") as f:
                if f.read().strip() == main:
                    continue
        except OSError:
            continue
        total += thread.user_time + thread.system_time
    return total


def _tree_cpu(proc: psutil.Process) -> float:
    """CPU of a process and its live children (a child that exited is no longer counted)."""
    total = 0.0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for member in family:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def own_cpu() -> dict[str, float]:
    """This process's CPU seconds, split into Python threads (they share one GIL) and the
    rest (the Temporal SDK core's Rust threads and any other native threads)."""
    python_ids = {t.native_id for t in threading.enumerate()}
    python = native = 0.0
    for thread in psutil.Process().threads():
        spent = thread.user_time + thread.system_time
        if thread.id in python_ids:
            python += spent
        else:
            native += spent
    return {"python": python, "native": native}


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


class HistoryShape(BaseModel):
    """Per workflow run: what its history holds, and the server round trips that implies."""

    events: float
    workflow_tasks: float
    activity_tasks: float
    local_activities: float
    signals: float
    search_attribute_upserts: float
    timers: float

    @property
    def round_trips(self) -> float:
        """Start + one per workflow task, activity task and signal (long polls not counted)."""
        return 1 + self.workflow_tasks + self.activity_tasks + self.signals


_COUNTED = {
    "workflow_tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "activity_tasks": EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    "local_activities": EventType.EVENT_TYPE_MARKER_RECORDED,
    "signals": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    "search_attribute_upserts": EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    "timers": EventType.EVENT_TYPE_TIMER_STARTED,
}


async def history_shape(handles: Iterable[WorkflowHandle]) -> HistoryShape | None:
    """The mean shape of the given runs' histories (None when there are none)."""
    totals: Counter[str] = Counter()
    runs = 0
    for handle in handles:
        history = await handle.fetch_history()
        kinds = Counter(event.event_type for event in history.events)
        totals["events"] += len(history.events)
        for field, kind in _COUNTED.items():
            totals[field] += kinds[kind]
        runs += 1
    if runs == 0:
        return None
    return HistoryShape(events=totals["events"] / runs, **{f: totals[f] / runs for f in _COUNTED})


# Leaf frames of a thread that waits (py-spy cannot always tell a wait in C from work).
_IDLE_LEAVES = ("EpollSelector.select (", "_worker (futures/thread.py)", "Condition.wait (")
# Where a sample's time goes: the first of these its stack passes through (path fragments).
PROFILE_AREAS = (
    ("workflow sandbox (runs, re-imports, checks)", ("workflow_sandbox/",)),
    ("workflow code and the SDK's workflow runtime", ("_workflow_instance", "workflows/")),
    ("e-mail rendering (jinja2, notices)", ("jinja2/", "notices/", "babel/")),
    ("asyncpg", ("asyncpg/",)),
    ("HTTP client (httpx, httpcore)", ("httpx/", "httpcore/", "h11/")),
    ("SMTP (outbox)", ("aiosmtplib/", "email/")),
    ("payload conversion (pydantic, json, codec)", ("pydantic", "converter.py", "json/")),
    ("activities, other", ("activities/", "worker/_activity.py")),
    ("SDK core calls", ("bridge/",)),
)


def summarise_profile(raw: str, top: int = 15) -> list[tuple[str, float, float]]:
    """The costliest functions of a py-spy raw profile ("frame;frame;... count" per line),
    waits left out: (function and file, % of samples in it, % with it on the stack); then
    one row per area of `PROFILE_AREAS` (its share of samples) named "[area] ..."."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # The first two entries name the process and the thread.
        raw_frames = stack.split(";")[2:]
        frames = [_frame(f) for f in raw_frames]
        if not frames or frames[-1].startswith(_IDLE_LEAVES):
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        areas[_area(raw_frames)] += count
    if total == 0:
        return []
    ranked = sorted(inclusive, key=lambda f: (-own[f], -inclusive[f]))[:top]
    rows = [
        (f, round(100 * own[f] / total, 1), round(100 * inclusive[f] / total, 1)) for f in ranked
    ]
    for area, count in areas.most_common():
        share = round(100 * count / total, 1)
        rows.append((f"area: {area}", share, share))
    return rows


def _area(frames: Sequence[str]) -> str:
    for area, fragments in PROFILE_AREAS:
        if any(fragment in frame for frame in frames for fragment in fragments):
            return area
    return "event loop and the rest"


def _frame(text: str) -> str:
    """`func (path/to/file.py:123)` -> `func (to/file.py)`, so lines of one function add up."""
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    tail = "/".join(path.split("/")[-2:]) if path else ""
    return f"{name} ({tail})" if tail else name
