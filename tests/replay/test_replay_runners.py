"""The recorded histories replayed on the worker's other runners, all in one replayer:
without the sandbox's fresh import per run, state that one run left in a module would change
what the next run does, and the replay would fail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orderflow.settings import Settings
from tests.helpers import CONVERTER
from tests.replay.test_replay import HISTORIES, WORKFLOWS
from workers.order_worker import workflow_runner


@pytest.mark.parametrize("runner", ["passthrough", "off"])
async def test_histories_replay_one_after_another(runner: str) -> None:
    async def histories() -> AsyncIterator[WorkflowHistory]:
        # Twice over, so every history also runs after every other.
        for _ in range(2):
            for path in HISTORIES:
                yield WorkflowHistory.from_json(f"order-{path.stem}", path.read_text())

    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=CONVERTER,
        workflow_runner=workflow_runner(Settings(worker_workflow_runner=runner)),
    )
    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    failures = {run_id: str(err) for run_id, err in results.replay_failures.items()}
    assert not failures
