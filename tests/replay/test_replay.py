"""Replays recorded histories (orders, and the shop's other workflows) against today's
workflow code: a change that would break workflows already running fails here (guard such
changes with `workflow.patched`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.helpers import CONVERTER
from workers.order_worker import SANDBOX
from workflows.kpi_snapshot import KpiSnapshotWorkflow
from workflows.marketplace_poller import MarketplacePollerWorkflow
from workflows.order import OrderWorkflow
from workflows.process_review import ProcessReviewWorkflow
from workflows.replenishment import ReplenishmentWorkflow
from workflows.returns import ReturnWorkflow
from workflows.risk_calibration import RiskCalibrationWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
# Every workflow a worker runs: a history replays against the one its type names.
WORKFLOWS = [
    OrderWorkflow,
    ReplenishmentWorkflow,
    KpiSnapshotWorkflow,
    ProcessReviewWorkflow,
    MarketplacePollerWorkflow,
    RiskCalibrationWorkflow,
    ReturnWorkflow,
]


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 6, "run `python -m tests.replay.record` to record histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"order-{path.stem}", path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=CONVERTER, workflow_runner=SANDBOX)
    await replayer.replay_workflow(history)
