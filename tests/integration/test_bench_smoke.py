"""The throughput benchmark runs end to end on the test servers and prints every figure.

Tiny sizes, no timing assertions: this proves the benchmark works, not how fast anything is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from bench.measure import CoreWarnings, percentile, summarise_profile
from bench.throughput import BenchReport, run_lanes

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def test_benchmark_runs_and_prints_table_and_json(
    temporal_env: WorkflowEnvironment, database_url: str
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
    }
    args = ["-n", "5", "--concurrency", "5", "--serial", "2", "--warmup", "1"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.throughput",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, err.decode()[-3000:]
    lines = out.decode().strip().splitlines()
    assert any("ratio orders/baseline" in line for line in lines), "the table is printed"

    report = json.loads(lines[-1])
    assert set(report) == set(BenchReport.model_fields)
    assert (report["orders"], report["concurrency"], report["serial"]) == (5, 5, 2)
    assert report["orders_per_s"] > 0 and report["baseline_per_s"] > 0
    assert report["ratio"] == pytest.approx(
        report["orders_per_s"] / report["baseline_per_s"], rel=0.02
    )
    for kind in ("approved", "completed", "serial_approved", "serial_completed"):
        assert report[f"{kind}_p50_ms"] > 0
        assert report[f"{kind}_p95_ms"] >= report[f"{kind}_p50_ms"]
    assert report["completed_p50_ms"] >= report["approved_p50_ms"]
    assert report["baseline_p50_ms"] > 0 and report["serial_baseline_p50_ms"] > 0
    # The histories say what each kind costs the server.
    assert report["baseline_activity_tasks"] == 8
    assert report["order_activity_tasks"] >= 1  # the carrier booking
    assert report["order_signals"] == 3  # IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED
    # Servers named by the environment are not this run's to measure.
    assert report["server_cpu_ms_per_order"] is None
    assert report["postgres_cpu_ms_per_order"] is None
    # As deployed: the worker, the API, the carrier simulator and this process apart.
    assert report["deployed"] is True
    for process in ("worker-1", "api", "carrier", "load"):
        assert report["process_cpu_ms_per_order"][process] > 0, process
    assert report["process_cpu_ms_per_baseline"]["baseline-1"] > 0

    conn = await asyncpg.connect(database_url)
    try:
        completed = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE order_id LIKE 'BENCH-%' AND status = 'COMPLETED'"
        )
        flagged = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE order_id LIKE 'BENCH-%' AND flagged"
        )
    finally:
        await conn.close()
    assert completed == 1 + 2 + 5  # warm-up, serial, loaded
    assert flagged == 0


async def test_lanes_keep_the_concurrency_and_run_each_index_once() -> None:
    in_flight = peak = 0
    seen: list[int] = []

    async def one(index: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (index % 3))
        in_flight -= 1
        seen.append(index)
        return index * 10

    results, seconds = await run_lanes(23, 4, one)
    assert results == [i * 10 for i in range(23)]
    assert sorted(seen) == list(range(23))
    assert peak == 4
    assert seconds > 0


def test_percentile_interpolates() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(v) for v in range(1, 101)], 95) == pytest.approx(95.05)


def test_core_warnings_are_counted_not_printed() -> None:
    handler = CoreWarnings()
    logger = logging.getLogger("bench.test_core_warnings")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("[TMPRL1104] run:4:1 Workflow task duration exceeded 5 seconds.")
        logger.warning("[TMPRL1104] run:9:1 Workflow task duration exceeded 5 seconds.")
        logger.warning("something else")
        logger.info("below the level")
    finally:
        logger.removeHandler(handler)
    assert handler.slow_workflow_tasks == 2
    assert handler.others == {"something else": 1}


def test_profile_summary_leaves_out_waits_and_names_areas() -> None:
    raw = "\n".join(
        [
            'process 1:"worker";thread (0x1);run (asyncio/base_events.py:1);'
            "fetch (asyncpg/connection.py:2) 3",
            'process 1:"worker";thread (0x1);run (asyncio/base_events.py:1);'
            "EpollSelector.select (selectors.py:3) 50",
            'process 1:"worker";thread (0x2);_worker (concurrent/futures/thread.py:4) 50',
            'process 1:"worker";thread (0x1);run (asyncio/base_events.py:1) 1',
        ]
    )
    rows = {name: (own, inclusive) for name, own, inclusive in summarise_profile(raw)}
    assert rows["fetch (asyncpg/connection.py)"] == (75.0, 75.0)
    assert rows["run (asyncio/base_events.py)"] == (25.0, 100.0)
    assert rows["area: asyncpg"] == (75.0, 75.0)
    assert not any("select" in name or "_worker" in name for name in rows)
