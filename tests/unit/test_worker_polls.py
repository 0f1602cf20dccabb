"""The worker's workflow task polls come from settings: the share for new orders' first
tasks is what placement latency under load turns on (README, Benchmarks)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.worker import PollerBehaviorSimpleMaximum

from orderflow.settings import Settings
from workers.order_worker import workflow_task_polls


def test_the_default_gives_new_orders_three_of_five_polls() -> None:
    polls = workflow_task_polls(Settings())
    assert polls["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(maximum=5)
    assert polls["nonsticky_to_sticky_poll_ratio"] == 0.6


def test_the_polls_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERFLOW_WORKER_WORKFLOW_TASK_POLLS", "8")
    monkeypatch.setenv("ORDERFLOW_WORKER_NONSTICKY_TO_STICKY_POLL_RATIO", "0.25")
    polls = workflow_task_polls(Settings())
    assert polls["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(maximum=8)
    assert polls["nonsticky_to_sticky_poll_ratio"] == 0.25


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDERFLOW_WORKER_NONSTICKY_TO_STICKY_POLL_RATIO", "0"),
        ("ORDERFLOW_WORKER_NONSTICKY_TO_STICKY_POLL_RATIO", "1.5"),
        ("ORDERFLOW_WORKER_WORKFLOW_TASK_POLLS", "1"),
    ],
)
def test_values_the_sdk_cannot_use_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
