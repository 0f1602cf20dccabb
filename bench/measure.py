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
    """CPU seconds (user + system) used by named process trees, sampled on demand."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
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
        return {name: _tree_cpu(proc) for name, proc in self._processes.items()}


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
