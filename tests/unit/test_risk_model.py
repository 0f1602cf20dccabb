"""The learned risk model: weights from a logistic regression over the signals' strengths,
explained as points per signal."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from orderflow.models import Address, Customer, Order, OrderItem, Payment
from orderflow.models.risk import CalibrationTarget, RiskConfig, RiskHistory, default_weights
from policies.risk import score_order
from policies.risk_model import (
    LabelledSignals,
    calibrate_learned,
    fit_weights,
    probe_config,
    score_with,
    strengths_of,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def shop(n: int, seed: int) -> list[LabelledSignals]:
    """Fraud shows `velocity_hour` strongly; `country_mismatch` is as common in both;
    `email_blocked` appears twice only."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        fraud = rng.random() < 0.08
        strengths: dict[str, float] = {}
        if rng.random() < (0.85 if fraud else 0.02):
            strengths["velocity_hour"] = rng.choice([0.33, 0.67, 1.0])
        if rng.random() < 0.1:
            strengths["country_mismatch"] = 1.0
        if i in (10, 500):
            strengths["email_blocked"] = 1.0
        samples.append(LabelledSignals(f"O-{i:05d}", T0 + timedelta(hours=i), strengths, fraud))
    return samples


def test_learned_weights_follow_the_labels() -> None:
    fallback = default_weights()
    weights = fit_weights(shop(3000, 1), fallback)
    assert weights["velocity_hour"] > 30
    assert weights["country_mismatch"] < 5
    # Too rare to learn from: kept as configured, not switched off.
    assert weights["email_blocked"] == fallback["email_blocked"]
    assert set(weights) == set(fallback)
    assert all(0 <= w <= 100 for w in weights.values())


def test_a_learned_operating_point_is_judged_against_the_one_in_force() -> None:
    samples = shop(4000, 2)
    # In force: the mismatch counts as much as the velocity, so it flags noise.
    incumbent = {**default_weights(), "country_mismatch": 45.0}
    target = CalibrationTarget(recall=0.8, flag_budget=0.1)
    result = calibrate_learned(samples, target, incumbent, incumbent_threshold=40)
    assert result.model == "logistic" and result.weights is not None
    assert result.holdout is not None and result.incumbent is not None
    assert result.holdout.flag_rate < result.incumbent.flag_rate
    assert result.accepted


def test_too_few_frauds_learn_nothing() -> None:
    samples = [s for s in shop(400, 3) if not s.fraud][:300]
    result = calibrate_learned(samples, CalibrationTarget(), default_weights(), 50)
    assert result.threshold is None and result.weights is None
    assert "too few labelled frauds" in result.reason


def test_the_explanation_of_a_learned_score_is_reasons_with_points() -> None:
    order = Order(
        order_id="X-1",
        channel="web",
        customer=Customer(id="C-1", email="ann@example.com", name="Ann"),
        items=[OrderItem(sku="SKU-RED-MUG", quantity=1, unit_price="12.50")],
        currency="EUR",
        shipping_address=Address(
            name="Ann", line1="1 Main St", city="Berlin", postal_code="10115", country="DE"
        ),
        billing_address=Address(
            name="Ann", line1="9 Rue Haute", city="Lyon", postal_code="69001", country="FR"
        ),
        payment=Payment(method="card", transaction_id="p1", amount="12.50", status="pending"),
        placed_at=T0,
    )
    history = RiskHistory(as_of=T0)
    config = RiskConfig()
    probed = score_order(order, history, probe_config(config)).reasons
    strengths = strengths_of(((r.code, r.points) for r in probed), probe_config(config).weights)
    assert strengths == {"payment_pending": 1.0, "country_mismatch": 1.0}
    learned = {**default_weights(), "payment_pending": 12.34, "country_mismatch": 30.5}
    assessment = score_order(order, history, config.model_copy(update={"weights": learned}))
    assert [(r.code, r.points) for r in assessment.reasons] == [
        ("country_mismatch", 30.5),
        ("payment_pending", 12.34),
    ]
    assert assessment.score == score_with(strengths, learned) == 42.84
