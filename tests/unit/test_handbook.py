"""The process definitions agree with the workflows' vocabulary (the order's and the
return's), and docs/process.md agrees with the definitions (`orderflow docs --check`)."""

from __future__ import annotations

import ast
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from typer.testing import CliRunner

from app.cli import app
from app.handbook import _QUEUE_SOURCES, format_duration, handbook_is_current, render_handbook
from db.repositories import queues
from db.seed import DEPARTMENTS as SEEDED_DEPARTMENTS
from orderflow.models import STEP_OF_STATUS, OrderPolicy, OrderStatus, Step
from orderflow.models.activity_names import ActivityName
from orderflow.models.returns import ReturnPolicy, ReturnStatus
from orderflow.process import (
    CANCELLATION,
    CUSTOMER,
    DEPARTMENTS,
    RETURN_SERVICE_ACTIVITIES,
    RETURN_STAGES,
    SERVICE_ACTIVITIES,
    STATUS_SLA,
    STEPS,
    status_sla,
)
from orderflow.settings import ROLES, Settings
from workflows.order import OrderWorkflow
from workflows.returns import ReturnWorkflow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_SOURCE = ROOT / "workflows" / "order.py"
RETURN_WORKFLOW_SOURCE = ROOT / "workflows" / "returns.py"
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


def _activities_run_as_regular(source: Path = WORKFLOW_SOURCE) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
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
}


def test_every_activity_is_described_by_one_step() -> None:
    described = [a for s in (*STEPS, CANCELLATION, *RETURN_STAGES) for a in s.activities]
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
    for step in (*STEPS, CANCELLATION, *RETURN_STAGES):
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


def test_return_stages_cover_every_return_status_in_order() -> None:
    assert [s.number for s in RETURN_STAGES] == list(range(1, len(RETURN_STAGES) + 1))
    assert {status for s in RETURN_STAGES for status in s.statuses} == set(ReturnStatus)
    for stage in RETURN_STAGES:
        assert stage.milestone in stage.statuses
        for decision in stage.decisions:
            assert decision.rejoin != "end" or decision.exit is not None
            if decision.exit is not None:
                assert isinstance(decision.exit[1], ReturnStatus)


def _return_policy_fields_read_by_workflow() -> set[str]:
    tree = ast.parse(RETURN_WORKFLOW_SOURCE.read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "policy"
    }


def test_return_timers_name_real_fields_and_cover_every_wait_of_the_return() -> None:
    returns, settings = ReturnPolicy(), Settings.model_fields
    named = set()
    for stage in RETURN_STAGES:
        for timer in stage.timers:
            assert timer.source in ("return", "settings"), timer
            if timer.source == "return":
                assert isinstance(getattr(returns, timer.policy_field), timedelta), timer
                named.add(timer.policy_field)
            else:
                assert isinstance(settings[timer.policy_field].default, timedelta), timer
            assert timer.activity is None or timer.activity in stage.activities
    durations = {n for n in ReturnPolicy.model_fields if isinstance(getattr(returns, n), timedelta)}
    assert named == durations
    waits = {f for f in _return_policy_fields_read_by_workflow() if f in durations}
    assert waits and waits <= named


def test_return_human_tasks_name_messages_the_return_workflow_accepts() -> None:
    definition = workflow._Definition.must_from_class(ReturnWorkflow)
    accepted = set(definition.signals) | set(definition.updates)
    described = {m for s in RETURN_STAGES for t in s.human_tasks for m in t.messages}
    assert described == accepted


def test_return_service_activities_are_the_ones_the_return_workflow_runs_as_regular() -> None:
    assert _activities_run_as_regular(RETURN_WORKFLOW_SOURCE) == {
        a.value for a in RETURN_SERVICE_ACTIVITIES
    }


# Queue kinds that wait on no one step: any step's feedback, any mail, any chargeback.
QUEUES_OF_NO_STEP = {"feedback_ticket", "failed_mail", "payment_dispute"}


def test_queue_kinds_are_read_described_and_owned() -> None:
    kinds = [kind for dep in DEPARTMENTS for kind in dep.queues]
    assert len(kinds) - kinds.count("feedback_ticket") == len(set(kinds) - {"feedback_ticket"})
    readers = queues.readers(Settings(), "customer_service")
    for kind in kinds:
        assert kind in readers and kind in _QUEUE_SOURCES, kind
    named = {kind for s in (*STEPS, CANCELLATION, *RETURN_STAGES) for kind in s.queues}
    assert named <= set(kinds)
    assert set(kinds) - named == QUEUES_OF_NO_STEP
    owner = {kind: dep.code for dep in DEPARTMENTS for kind in dep.queues}
    assert owner["return_decision"] == "customer_service"
    assert owner["return_inspection"] == "warehouse"
    assert owner["pre_order"] == "purchasing"


def test_return_decision_sla_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().return_decision_sla == timedelta(days=1)
    monkeypatch.setenv("ORDERFLOW_RETURN_DECISION_SLA", "PT6H")
    assert Settings().return_decision_sla == timedelta(hours=6)


def test_handbook_shows_the_return_process_with_its_standards() -> None:
    text = render_handbook()
    assert text.count("```mermaid") == 2
    assert "## Returns" in text
    for stage in RETURN_STAGES:
        assert f"### R{stage.number}. {stage.name}" in text
    assert "timer send_back_within = 14 d" in text
    assert "| `send_back_within` | 14 d |" in text
    assert "| `inspection_sla` | 2 d |" in text
    assert "| `window` | 30 d |" in text
    assert "| `return_decision_sla` (settings) | 1 d |" in text
    assert "queue SLA return_decision_sla = 1 d" in text
    assert 'RD1ax -->|"reject"| RE1(["REJECTED"])' in text
    assert 'RD2ax -->|"not sent back"| RE2(["CLOSED"])' in text
    assert "activities calling the carrier `book_return_label`" in text
    assert "activities calling the payment service provider `refund_return`" in text
    assert "`record_exchange`" in text
    assert "(`decide`)" in text and "(`inspect`)" in text
    # The numbers come from the return policy.
    other = render_handbook(returns=ReturnPolicy(inspection_sla=timedelta(hours=12)))
    assert "timer inspection_sla = 12 h" in other and "inspection_sla = 12 h" not in text


def test_handbook_shows_the_new_queues_and_the_pre_order_wait() -> None:
    text = render_handbook()
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert "awaiting inspection" in rows["| Warehouse (`warehouse`)"]
    assert "pre-sale product's release" in rows["| Purchasing (`purchasing`)"]
    assert "`return_decision_sla`" in rows["| Customer service (`customer_service`)"]
    assert "- **Waits in**: the Purchasing queue (`pre_order`)" in text
    assert "- **Waits in**: the Warehouse queue (`return_inspection`)" in text
    assert "- **Waits in**: the Customer service queue (`return_decision`)" in text
    assert "A pre-order whose product is not released yet?" in text


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
