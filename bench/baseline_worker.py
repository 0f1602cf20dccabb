"""The baseline's worker as a process of its own, as the order worker runs in the
benchmark: `python -m bench.baseline_worker TASK_QUEUE` (TEMPORAL_ADDRESS from settings)."""

from __future__ import annotations

import asyncio
import sys

from bench.baseline import build_baseline_worker
from orderflow.settings import Settings
from orderflow.temporal_client import connect_temporal


async def serve(task_queue: str) -> None:
    client = await connect_temporal(Settings())
    await build_baseline_worker(client, task_queue).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
