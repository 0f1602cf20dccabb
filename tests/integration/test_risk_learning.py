"""Risk that learns from outcomes, on real PostgreSQL and Temporal: reviewer decisions and
reports become labels, the calibration fits a version on them and lets it go live only if it
is not worse on the holdout, and every assessment records the version that scored it.

The module has a database of its own: an active version changes how every later order is
flagged, which must not reach other modules' orders."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities.risk_calibration import RiskCalibrationActivities
from app.cli import app as cli_app
from db.repositories import orders, reviews, risk_labels, risk_models
from orderflow.models import Order, OrderPolicy
from orderflow.models.risk import (
    RiskCalibrationInput,
    RiskCalibrationRequest,
    RiskCalibrationResult,
)
from orderflow.settings import get_settings
from starter.risk_calibration_schedule import ensure_risk_calibration_schedule
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, fresh_database, prepare, running_stack
from workflows.risk_calibration import RiskCalibrationWorkflow

pytestmark = pytest.mark.integration

POLICY = OrderPolicy(
    review_deadline=timedelta(hours=1),
    auto_warehouse=False,
    quiet_period=timedelta(0),
    review_window=timedelta(0),
)
# A fixed "now" of the calibrations, long before any order the stack places in this run.
AS_OF = datetime(2020, 6, 1, tzinfo=UTC)
SETTLE = timedelta(days=30)


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> AsyncIterator[Stack]:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    async with running_stack(temporal_env, url, policy=POLICY) as running:
        yield running


async def _place(stack: Stack, body: dict) -> str:
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    return str(body["order_id"])


async def _decide(stack: Stack, order_id: str, decision: str) -> None:
    response = await stack.http(
        "POST",
        f"/reviews/{order_id}/decision",
        role="reviewer",
        json={"decision": decision, "note": "checked with the card holder"},
    )
    assert response.status_code == 200, response.text


async def _wait_decided(stack: Stack, order_id: str) -> None:
    for _ in range(300):
        status = await stack.pool.fetchval(
            "SELECT status FROM review_tasks WHERE order_id = $1", order_id
        )
        if status in ("approved", "rejected"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the review of {order_id} stayed {status}")


async def test_a_reviewers_decision_shows_up_as_a_label(stack: Stack) -> None:
    rejected = await _place(stack, order_json(payment_status="failed"))
    approved = await _place(stack, order_json(payment_status="failed"))
    for order_id in (rejected, approved):
        await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    now = datetime.now(UTC)
    before = await risk_labels.label_of(stack.pool, rejected, as_of=now, settle=SETTLE)
    assert before is not None and before["label"] is None, "no label while it waits"
    await _decide(stack, rejected, "reject")
    await _decide(stack, approved, "approve")
    for order_id in (rejected, approved):
        await _wait_decided(stack, order_id)
    now = datetime.now(UTC)
    fraud = await risk_labels.label_of(stack.pool, rejected, as_of=now, settle=SETTLE)
    legit = await risk_labels.label_of(stack.pool, approved, as_of=now, settle=SETTLE)
    assert fraud is not None and legit is not None
    assert (fraud["label"], fraud["source"], fraud["actor"]) == ("fraud", "review", "reviewer")
    assert (legit["label"], legit["source"]) == ("legit", "review")
    # A person's later report on the same order outranks the review.
    await risk_labels.record(
        stack.pool, approved, label="fraud", source="fraud_report", actor="admin", at=now
    )
    reported = await risk_labels.label_of(stack.pool, approved, as_of=now, settle=SETTLE)
    assert reported is not None
    assert (reported["label"], reported["source"]) == ("fraud", "fraud_report")


async def test_a_fraud_report_on_a_completed_order_is_a_label(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = await _place(stack, order_json())
    await wait_for_status(stack.pool, order_id, "PICKING")
    refused = await stack.http(
        "POST", f"/orders/{order_id}/fraud-report", role="warehouse", json={"label": "fraud"}
    )
    assert refused.status_code == 403
    unknown = await stack.http(
        "POST", "/orders/T-nope/fraud-report", role="admin", json={"label": "fraud"}
    )
    assert unknown.status_code == 404 and "T-nope" in unknown.json()["detail"]
    response = await stack.http(
        "POST",
        f"/orders/{order_id}/fraud-report",
        role="admin",
        json={"label": "fraud", "note": "card holder disowned it"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "order_id": order_id, "label": "fraud", "source": "fraud_report", "actor": "admin",
    }  # fmt: skip

    # From the command line, a correction replaces the report.
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["risk", "label", order_id, "--legit"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["label"] == "legit"
    row = await risk_labels.label_of(stack.pool, order_id, as_of=datetime.now(UTC), settle=SETTLE)
    assert row is not None and (row["label"], row["actor"]) == ("legit", "reviewer")
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM risk_labels WHERE order_id = $1", order_id
    )
    assert count == 1


async def test_the_review_task_shows_the_facts_and_the_customers_history(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    first = await _place(stack, order_json(customer_id=customer))
    await wait_for_status(stack.pool, first, "PICKING")
    rejected = await _place(stack, order_json(customer_id=customer, payment_status="failed"))
    await wait_for_status(stack.pool, rejected, "PENDING_REVIEW")
    await _decide(stack, rejected, "reject")
    await _wait_decided(stack, rejected)
    body = order_json(
        customer_id=customer,
        payment_status="failed",
        items=[("SKU-KETTLE", 1), ("SKU-TEA-TIN", 3)],
        billing_address={
            "name": "Ann Lee", "line1": "9 Rue Haute", "city": "Lyon",
            "postal_code": "69001", "country": "FR",
        },
    )  # fmt: skip
    flagged = await _place(stack, body)
    await wait_for_status(stack.pool, flagged, "PENDING_REVIEW")

    assert (await stack.http("GET", f"/reviews/{flagged}", role="warehouse")).status_code == 403
    assert (await stack.http("GET", f"/reviews/{first}", role="reviewer")).status_code == 404
    response = await stack.http("GET", f"/reviews/{flagged}", role="reviewer")
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "PENDING_REVIEW" and task["task_status"] == "open"
    assert task["score"] >= 60 and task["reasons"][0]["code"] == "payment_failed"
    assert [(i["sku"], i["quantity"], i["line_total"]) for i in task["items"]] == [
        ("SKU-KETTLE", 1, "59.00"),
        ("SKU-TEA-TIN", 3, "26.70"),
    ]
    assert task["total"] == "85.70" and task["currency"] == "EUR"
    assert task["shipping_address"]["city"] == "Berlin"
    assert task["billing_address"]["country"] == "FR"
    assert task["payment"]["status"] == "failed" and task["payment"]["amount"] == "85.70"
    assert task["customer"]["id"] == customer
    history = task["customer_history"]
    assert history["orders"] == 2
    assert history["amounts"] == {"EUR": "50.00"}
    assert history["first_order_at"] is not None
    assert (history["flagged"], history["rejected"], history["approved"]) == (1, 1, 0)
    assert history["reported_fraud"] == 0

    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    try:
        shown = await asyncio.to_thread(CliRunner().invoke, cli_app, ["review", "show", flagged])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    assert "1 x SKU-KETTLE" in shown.stdout and "total 85.70 EUR" in shown.stdout
    assert "2 other order(s) for 50.00 EUR" in shown.stdout
    assert "1 flagged (0 approved, 1 rejected" in shown.stdout
    assert "bill to Ann Lee, 9 Rue Haute, 69001, Lyon, FR" in shown.stdout


# ---- the calibration on a labelled history ----


async def _history(
    stack: Stack, start: datetime, count: int, seed: int, *, late_from: int | None = None
) -> None:
    """`count` scored orders from `start` on, 5 hours apart, labelled as production would
    label them: flagged at 60 and decided by a reviewer; unflagged fraud reported by a
    person; the rest settled. From order `late_from` on, fraud scores lower (30 to 50)."""
    rng = random.Random(seed)
    async with stack.pool.acquire() as conn:
        for i in range(count):
            placed = start + timedelta(hours=5 * i)
            fraud = rng.random() < 0.05
            if fraud:
                late = late_from is not None and i >= late_from
                score = rng.uniform(30, 50) if late else rng.uniform(35, 95)
            else:
                score = rng.uniform(0, 30) if rng.random() < 0.99 else rng.uniform(60, 75)
            score = round(score, 2)
            order = Order.model_validate(order_json())
            async with conn.transaction():
                await orders.insert_order(
                    conn, order, workflow_id=f"w-{order.order_id}", placed_at=placed,
                    status="APPROVED",
                )  # fmt: skip
                await orders.set_risk(conn, order.order_id, score, [], score >= 60)
                if score >= 60:
                    await reviews.open_task(
                        conn, order.order_id, score=score, reasons=[], opened_at=placed,
                        sla=timedelta(hours=4), deadline=timedelta(hours=24),
                    )  # fmt: skip
                    await reviews.decide(
                        conn, order.order_id, status="rejected" if fraud else "approved",
                        at=placed + timedelta(hours=1), by="reviewer",
                        decision="reject" if fraud else "approve", note=None,
                    )  # fmt: skip
                elif fraud:
                    await risk_labels.record(
                        conn, order.order_id, label="fraud", source="fraud_report",
                        actor="admin", at=placed + timedelta(days=3),
                    )  # fmt: skip


async def _calibrate(stack: Stack, as_of: datetime) -> RiskCalibrationResult:
    result: RiskCalibrationResult = await stack.client.execute_workflow(
        RiskCalibrationWorkflow.run,
        RiskCalibrationRequest(as_of=as_of),
        id=f"risk-calibration-test-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
        result_type=RiskCalibrationResult,
    )
    return result


async def test_calibration_fits_a_version_meeting_the_target_and_orders_record_it(
    stack: Stack,
) -> None:
    assert await risk_models.active(stack.pool) is None
    await _history(stack, AS_OF - timedelta(days=150), 700, seed=1)
    result = await _calibrate(stack, AS_OF)
    calibration = result.calibration
    assert result.version is not None and result.activated, calibration.reason
    assert calibration.threshold is not None and calibration.train and calibration.holdout
    assert calibration.target_met_on_train
    assert calibration.train.recall >= stack.settings.risk_target_recall
    assert calibration.train.flag_rate <= stack.settings.risk_flag_budget
    # Fraud scores 35 to 95, legitimate orders below 30 or from 60: the threshold lies
    # below 60, where the configured threshold misses fraud.
    assert 30 < calibration.threshold < 50
    assert calibration.incumbent is not None and calibration.incumbent.threshold == 60
    assert calibration.holdout.recall > calibration.incumbent.recall
    # Unflagged, unreported orders of the last 30 days are not yet labelled.
    assert 500 < calibration.train.n + calibration.holdout.n < 650
    active = await risk_models.active(stack.pool)
    assert active is not None and active["version"] == result.version
    assert active["threshold"] == calibration.threshold
    assert active["metrics"]["accepted"] is True
    # The new operating point is a dated process change of the review step.
    changes = await stack.pool.fetch(
        """SELECT steps, old_value, new_value, changed_by, source FROM process_changes
           WHERE setting = 'risk.flag_threshold'"""
    )
    assert [(c["steps"], c["source"], c["changed_by"]) for c in changes] == [
        ([3], "calibration", "risk-calibration")
    ]
    assert (changes[0]["old_value"], changes[0]["new_value"]) == (60.0, calibration.threshold)

    # An order scored now is flagged at the version's threshold and names the version: a
    # new customer's large order (the history's orders are 25.00) scores 50, which the
    # configured 60 would let pass.
    order_id = await _place(stack, order_json(items=[("SKU-KETTLE", 3)]))
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    row = await stack.pool.fetchrow(
        "SELECT risk_score, flagged, risk_model_version FROM orders WHERE order_id = $1",
        order_id,
    )
    assert row["risk_model_version"] == result.version
    assert row["flagged"] and calibration.threshold <= float(row["risk_score"]) < 60


async def test_a_version_worse_on_the_holdout_is_refused(stack: Stack) -> None:
    # Later fraud scores 30 to 50: a person put 30 live by hand, which catches it.
    manual = await risk_models.insert_version(
        stack.pool, calibration_key=f"manual-{uuid.uuid4().hex[:6]}", threshold=30.0,
        weights={}, metrics={"by": "hand"}, created_at=AS_OF,
    )  # fmt: skip
    async with stack.pool.acquire() as conn:
        await risk_models.activate(conn, manual["version"], at=AS_OF)
    later = AS_OF + timedelta(days=120)
    await _history(stack, AS_OF, 420, seed=2, late_from=260)
    result = await _calibrate(stack, later)
    calibration = result.calibration
    assert calibration.holdout is not None and calibration.incumbent is not None
    assert calibration.incumbent.threshold == 30.0
    assert calibration.holdout.recall < calibration.incumbent.recall
    assert not result.activated and not calibration.accepted
    assert "refused" in calibration.reason
    # The refused version is on record, inactive; the hand-made one stays in force.
    active = await risk_models.active(stack.pool)
    assert active is not None and active["version"] == manual["version"]
    refused = next(
        v for v in await risk_models.versions(stack.pool) if v["version"] == result.version
    )
    assert not refused["active"] and refused["metrics"]["accepted"] is False


async def test_a_retried_calibration_inserts_no_second_version(stack: Stack) -> None:
    activities = RiskCalibrationActivities(stack.pool, stack.settings)
    data = RiskCalibrationInput(calibration_key=f"retry-{uuid.uuid4().hex[:6]}", as_of=AS_OF)
    first = await activities.calibrate_risk(data)
    again = await activities.calibrate_risk(data)
    assert first.version is not None and again.version == first.version
    keys = [v["calibration_key"] for v in await risk_models.versions(stack.pool)]
    assert keys.count(data.calibration_key) == 1
    if first.activated:
        # Put live once, recorded as a change once.
        reason = f"calibrated version {first.version} went live: not worse on the holdout"
        recorded = await stack.pool.fetchval(
            "SELECT count(*) FROM process_changes WHERE reason = $1", reason
        )
        assert recorded == 1


async def test_a_learned_model_weighs_the_signals_by_their_outcomes(stack: Stack) -> None:
    """Orders whose stored reasons say why they scored: fraud comes in bursts (velocity),
    and a shipping/billing country mismatch is as common among legitimate orders."""
    start = AS_OF + timedelta(days=400)
    rng = random.Random(4)
    weights = stack.settings.risk_weights or {}
    velocity_w = weights.get("velocity_hour", 45.0)
    mismatch_w = weights.get("country_mismatch", 20.0)
    async with stack.pool.acquire() as conn:
        for i in range(900):
            placed = start + timedelta(hours=3 * i)
            fraud = rng.random() < 0.06
            reasons = []
            if rng.random() < (0.9 if fraud else 0.01):
                reasons.append({"code": "velocity_hour", "message": "burst",
                                "points": round(velocity_w * rng.choice([0.33, 0.67, 1.0]), 2)})  # fmt: skip
            if rng.random() < 0.2:
                reasons.append({"code": "country_mismatch", "message": "countries",
                                "points": mismatch_w})  # fmt: skip
            score = round(sum(r["points"] for r in reasons), 2)
            order = Order.model_validate(order_json())
            async with conn.transaction():
                await orders.insert_order(
                    conn, order, workflow_id=f"w-{order.order_id}", placed_at=placed,
                    status="APPROVED",
                )  # fmt: skip
                await orders.set_risk(conn, order.order_id, score, reasons, False)
                if fraud:
                    await risk_labels.record(
                        conn, order.order_id, label="fraud", source="chargeback",
                        actor="psp", at=placed + timedelta(days=2),
                    )  # fmt: skip
    settings = stack.settings.model_copy(update={"risk_calibration_model": "logistic"})
    activities = RiskCalibrationActivities(stack.pool, settings)
    result = await activities.calibrate_risk(
        RiskCalibrationInput(
            calibration_key=f"learned-{uuid.uuid4().hex[:6]}",
            as_of=start + timedelta(hours=3 * 900) + timedelta(days=31),
        )
    )
    calibration = result.calibration
    assert calibration.model == "logistic" and calibration.weights is not None
    learned = calibration.weights
    assert learned["velocity_hour"] > 3 * learned["country_mismatch"]
    assert result.activated, calibration.reason
    assert calibration.holdout is not None and calibration.incumbent is not None
    # The weights in force give a mismatch as many points as most bursts: far less caught.
    assert calibration.holdout.recall > calibration.incumbent.recall + 0.2
    active = await risk_models.active(stack.pool)
    assert active is not None and active["version"] == result.version
    assert active["weights"] == learned

    # The next order is scored with the learned weights: its reasons carry their points.
    body = order_json(
        billing_address={
            "name": "Ann Lee", "line1": "9 Rue Haute", "city": "Lyon",
            "postal_code": "69001", "country": "FR",
        },
    )  # fmt: skip
    order_id = await _place(stack, body)
    await wait_for_status(stack.pool, order_id, "PICKING", "PENDING_REVIEW")
    row = await stack.pool.fetchrow(
        "SELECT risk_reasons, risk_model_version FROM orders WHERE order_id = $1", order_id
    )
    assert row["risk_model_version"] == result.version
    points = {r["code"]: r["points"] for r in row["risk_reasons"]}
    if learned["country_mismatch"] > 0:
        assert points["country_mismatch"] == learned["country_mismatch"]
    else:
        assert "country_mismatch" not in points


async def test_the_calibration_schedule_is_created_once_and_follows_the_settings(
    stack: Stack,
) -> None:
    settings = stack.settings.model_copy(
        update={"risk_calibration_schedule_id": f"risk-cal-test-{uuid.uuid4().hex[:8]}"}
    )
    assert await ensure_risk_calibration_schedule(stack.client, settings) is True
    handle = stack.client.get_schedule_handle(settings.risk_calibration_schedule_id)
    try:
        assert await ensure_risk_calibration_schedule(stack.client, settings) is False
        described = await handle.describe()
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(days=1)]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "RiskCalibrationWorkflow"
        assert action.task_queue == settings.task_queue
        changed = settings.model_copy(update={"risk_calibration_every": timedelta(hours=6)})
        assert await ensure_risk_calibration_schedule(stack.client, changed) is False
        described = await handle.describe()
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(hours=6)]
    finally:
        await handle.delete()


async def test_the_operating_point_week_by_week(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An order let through that a person later reports as fraud: a miss.
    missed = await _place(stack, order_json())
    await wait_for_status(stack.pool, missed, "PICKING")
    reported = await stack.http(
        "POST", f"/orders/{missed}/fraud-report", role="reviewer", json={"label": "fraud"}
    )
    assert reported.status_code == 200, reported.text
    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    get_settings.cache_clear()
    end = datetime.now(UTC) + timedelta(minutes=1)
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["risk", "trend", "--weeks", "2", "--to", end.isoformat(), "--json"],
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    earlier, week = json.loads(result.stdout)
    assert earlier["assessed"] == 0 and earlier["recall"] is None
    # This module's orders of the week: fraud rejected by reviewers or reported after an
    # approval (all flagged), and the one let through.
    assert week["labelled_fraud"] == week["fraud_flagged"] + 1
    assert week["fraud_flagged"] >= 3
    assert week["recall"] == pytest.approx(week["fraud_flagged"] / week["labelled_fraud"])
    assert week["flagged"] >= 5 and 0 < week["flag_rate"] < 1
    assert week["overturned"] >= 1 and week["overturn_rate"] is not None
    active = await risk_models.active(stack.pool)
    assert active is not None
    assert week["versions"]["settings"] >= 5
    assert sum(week["versions"].values()) == week["assessed"]
    assert any(v != "settings" for v in week["versions"])
