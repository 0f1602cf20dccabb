"""The process definitions agree with the workflow's vocabulary, and docs/process.md agrees
with the definitions (`orderflow docs --check`)."""

from __future__ import annotations

import ast
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from typer.testing import CliRunner

from app.cli import app
from app.handbook import format_duration, handbook_is_current, render_handbook
from db.seed import DEPARTMENTS as SEEDED_DEPARTMENTS
from orderflow.models import STEP_OF_STATUS, OrderPolicy, OrderStatus, Step
from orderflow.models.activity_names import ActivityName
from orderflow.process import (
    CANCELLATION,
    CUSTOMER,
    DEPARTMENTS,
    SERVICE_ACTIVITIES,
    STATUS_SLA,
    STEPS,
    status_sla,
)
from orderflow.settings import ROLES
from workflows.order import OrderWorkflow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_SOURCE = ROOT / "workflows" / "order.py"
# Knobs of the demo warehouse, not service levels.
NOT_SERVICE_LEVELS = {"auto_warehouse", "auto_pick_delay", "auto_pack_delay"}


def _policy_fields_read_by_workflow() -> set[str]:
    tree = ast.parse(WORKFLOW_SOURCE.read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "_policy"
    }


def _activities_run_as_regular() -> set[str]:
    tree = ast.parse(WORKFLOW_SOURCE.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "execute_activity"
        ):
            first = node.args[0]
            assert isinstance(first, ast.Attribute), "activities are called by ActivityName"
            names.add(ActivityName[first.attr].value)
    return names


def test_steps_are_the_eight_in_order() -> None:
    assert [s.step for s in STEPS] == list(Step)
    assert len({s.name for s in STEPS}) == 8


def test_every_status_belongs_to_exactly_the_step_the_workflow_gives_it() -> None:
    for status in OrderStatus:
        owners = [s.step for s in STEPS if status in s.statuses]
        if status in STEP_OF_STATUS:
            assert owners == [STEP_OF_STATUS[status]], status
        else:
            # Cancellation interrupts whichever step the order is in.
            assert owners == [] and status in CANCELLATION.statuses, status
    for step in (*STEPS, CANCELLATION):
        assert step.milestone in step.statuses


# Activities of the scheduled runs (replenishment, KPI snapshot), not of an order's steps.
SCHEDULED_RUNS = {
    ActivityName.LIST_REPLENISHMENT_SKUS,
    ActivityName.PLAN_REPLENISHMENT,
    ActivityName.APPLY_REPLENISHMENT,
    ActivityName.STORE_KPI_SNAPSHOT,
    ActivityName.BUILD_PROCESS_REVIEW,
    ActivityName.CALIBRATE_RISK,
    # The marketplaces' feeds (workflows/marketplace_poller.py)
    ActivityName.FETCH_MARKETPLACE_ORDERS,
    ActivityName.TAKE_MARKETPLACE_ORDER,
    ActivityName.ACKNOWLEDGE_MARKETPLACE_ORDER,
    # Returns (workflows/returns.py): a process of its own beside the order's
    ActivityName.ASK_RETURN_DECISION,
    ActivityName.RECORD_RETURN_DECISION,
    ActivityName.BOOK_RETURN_LABEL,
    ActivityName.RECORD_RETURN_TRACKING,
    ActivityName.CLOSE_UNSENT_RETURN,
    ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE,
    ActivityName.RECORD_RETURN_INSPECTION,
    ActivityName.REFUND_RETURN,
    ActivityName.RECORD_EXCHANGE,
}


def test_every_activity_is_described_by_one_step() -> None:
    described = [a for s in (*STEPS, CANCELLATION) for a in s.activities]
    assert sorted(described) == sorted(set(ActivityName) - SCHEDULED_RUNS)


def test_service_activities_are_the_ones_the_workflow_runs_as_regular_activities() -> None:
    assert _activities_run_as_regular() == {a.value for a in SERVICE_ACTIVITIES}


def test_timers_name_real_policy_fields_and_cover_every_wait_of_the_workflow() -> None:
    fields = OrderPolicy.model_fields
    named = {t.policy_field for s in STEPS for t in s.timers}
    for name in named:
        assert name in fields, name
        assert isinstance(getattr(OrderPolicy(), name), timedelta | int)
    for sla in STATUS_SLA.values():
        assert sla.policy_field is None or sla.policy_field in fields
    read = _policy_fields_read_by_workflow()
    assert read, "the workflow reads its waits from the policy"
    assert read - NOT_SERVICE_LEVELS <= named, read - NOT_SERVICE_LEVELS - named


def test_timer_activities_belong_to_their_step() -> None:
    for step in STEPS:
        for timer in step.timers:
            assert timer.activity is None or timer.activity in step.activities


def test_human_tasks_name_messages_the_workflow_accepts() -> None:
    definition = workflow._Definition.must_from_class(OrderWorkflow)
    accepted = set(definition.signals) | set(definition.updates)
    for step in (*STEPS, CANCELLATION):
        for task in step.human_tasks:
            for message in task.messages:
                assert message in accepted, message
    described = {m for s in (*STEPS, CANCELLATION) for t in s.human_tasks for m in t.messages}
    assert described == accepted, accepted - described


def test_parties_and_roles_exist() -> None:
    seeded = {code for code, _, _ in SEEDED_DEPARTMENTS}
    for step in (*STEPS, CANCELLATION):
        for party in (
            step.does,
            *step.approves,
            *step.informed,
            *(t.who for t in step.human_tasks),
        ):
            assert party == CUSTOMER or party in seeded, party
    for dep in DEPARTMENTS:
        assert dep.code in seeded
        assert dep.role is None or dep.role in ROLES


def test_every_non_terminal_status_has_a_stuck_rule() -> None:
    running = {s for s in OrderStatus} - {
        OrderStatus.COMPLETED,
        OrderStatus.REJECTED,
        OrderStatus.CANCELLED,
    }
    assert set(STATUS_SLA) == running
    policy = OrderPolicy()
    automatic = timedelta(minutes=10)
    assert status_sla(OrderStatus.PENDING_REVIEW, policy, automatic) == policy.review_sla
    assert status_sla(OrderStatus.RECEIVED, policy, automatic) == automatic
    assert status_sla(OrderStatus.DELIVERED, policy, automatic) == policy.quiet_period + automatic


def test_handbook_shows_the_policy_defaults() -> None:
    text = render_handbook()
    policy = OrderPolicy()
    assert f"| `review_sla` | {format_duration(policy.review_sla)} |" in text
    assert f"timer pick_sla = {format_duration(policy.pick_sla)}" in text
    assert "```mermaid" in text and "flowchart TD" in text
    for step in STEPS:
        assert f"### {int(step.step)}. {step.name}" in text
    # A different policy changes the document: the numbers come from the code.
    other = render_handbook(OrderPolicy(review_sla=timedelta(minutes=30)))
    assert "timer review_sla = 30 min" in other and "timer review_sla = 30 min" not in text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=4), "4 h"),
        (timedelta(days=1, hours=2), "1 d 2 h"),
        (timedelta(seconds=90), "1 min 30 s"),
        (timedelta(0), "0 s"),
        (3, "3"),
    ],
)
def test_format_duration(value: timedelta | int, text: str) -> None:
    assert format_duration(value) == text


def test_committed_handbook_matches_the_code() -> None:
    result = CliRunner().invoke(app, ["docs", "--check", "--output", str(ROOT / "docs/process.md")])
    assert result.exit_code == 0, (
        "docs/process.md is out of date: run `orderflow docs`\n" + result.output
    )


def test_check_fails_on_a_drifted_handbook_and_docs_repairs_it(tmp_path: Path) -> None:
    copy = tmp_path / "process.md"
    shutil.copy(ROOT / "docs/process.md", copy)
    copy.write_text(copy.read_text().replace("4 h", "2 h"), encoding="utf-8")
    runner = CliRunner()
    drifted = runner.invoke(app, ["docs", "--check", "--output", str(copy)])
    assert drifted.exit_code == 1
    assert not handbook_is_current(copy)
    assert runner.invoke(app, ["docs", "--output", str(copy)]).exit_code == 0
    assert handbook_is_current(copy)
    assert runner.invoke(app, ["docs", "--check", "--output", str(copy)]).exit_code == 0
