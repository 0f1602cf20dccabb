"""Replays recorded order histories against today's workflow code: a change that would
break orders already running fails here (guard such changes with `workflow.patched`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.helpers import CONVERTER
from workers.order_worker import SANDBOX
from workflows.order import OrderWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 6, "run `python -m tests.replay.record` to record histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"order-{path.stem}", path.read_text())
    replayer = Replayer(
        workflows=[OrderWorkflow], data_converter=CONVERTER, workflow_runner=SANDBOX
    )
    await replayer.replay_workflow(history)
