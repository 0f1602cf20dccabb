"""The risk calibration policy: the threshold meeting the target, and the holdout rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from orderflow.models.risk import CalibrationTarget, RiskMetrics
from policies.risk_calibration import (
    LabelledScore,
    calibrate,
    choose_threshold,
    metrics_at,
    not_worse,
    split_by_time,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def shop(n: int, seed: int, *, fraud_rate: float = 0.05) -> list[LabelledScore]:
    """Labelled scores: fraud mostly scores high, a few legit orders too; time increases."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        fraud = rng.random() < fraud_rate
        score = rng.gauss(70, 15) if fraud else rng.expovariate(1 / 12)
        samples.append(
            LabelledScore(
                f"O-{i:05d}", T0 + timedelta(minutes=i), min(100.0, round(score, 2)), fraud
            )
        )
    return samples


def test_metrics_count_flags_at_or_above_the_threshold() -> None:
    samples = [
        LabelledScore("a", T0, 80, True),
        LabelledScore("b", T0, 50, False),
        LabelledScore("c", T0, 49.99, True),
        LabelledScore("d", T0, 10, False),
    ]
    m = metrics_at(samples, 50)
    assert (m.n, m.positives, m.flagged, m.tp) == (4, 2, 2, 1)
    assert (m.precision, m.recall, m.flag_rate) == (0.5, 0.5, 0.5)


def test_the_holdout_is_the_latest_share() -> None:
    samples = shop(100, 1)
    train, holdout = split_by_time(list(reversed(samples)), 0.3)
    assert len(train) == 70 and len(holdout) == 30
    assert max(s.placed_at for s in train) < min(s.placed_at for s in holdout)


def test_the_chosen_threshold_meets_the_target_with_the_fewest_flags() -> None:
    samples = shop(4000, 2)
    target = CalibrationTarget(recall=0.9, flag_budget=0.08)
    threshold = choose_threshold(samples, target)
    m = metrics_at(samples, threshold)
    assert m.recall >= 0.9 and m.flag_rate <= 0.08
    # Any higher threshold, up to the next score above, no longer catches 90%.
    above = min(s.score for s in samples if s.score >= threshold)
    assert metrics_at(samples, above + 0.001).recall < 0.9


def test_the_threshold_sits_between_two_scores() -> None:
    samples = [
        LabelledScore("a", T0, 90, True),
        LabelledScore("b", T0, 60, True),
        LabelledScore("c", T0, 40, False),
        *[LabelledScore(f"n{i}", T0, 5, False) for i in range(20)],
    ]
    assert choose_threshold(samples, CalibrationTarget(recall=1.0, flag_budget=0.5)) == 50.0


def test_when_the_target_cannot_be_met_the_budget_wins() -> None:
    samples = shop(2000, 3, fraud_rate=0.2)
    target = CalibrationTarget(recall=0.99, flag_budget=0.05)
    m = metrics_at(samples, choose_threshold(samples, target))
    assert m.flag_rate <= 0.05
    assert m.recall < 0.99


def test_calibration_meets_the_target_on_train_and_holdout() -> None:
    samples = shop(5000, 4)
    target = CalibrationTarget(recall=0.9, flag_budget=0.08, holdout=0.3)
    result = calibrate(samples, target, incumbent_threshold=None)
    assert result.threshold is not None and result.accepted
    assert result.train is not None and result.holdout is not None
    assert result.train.n == 3500 and result.holdout.n == 1500
    assert result.target_met_on_train
    assert result.holdout.recall >= 0.85 and result.holdout.flag_rate <= 0.08


def test_a_version_worse_on_the_holdout_is_refused() -> None:
    # Train and holdout disagree: fraud scores high early, much lower later, so the
    # threshold fitted on the train split misses most holdout fraud that 30 still catches.
    early = shop(3500, 5)
    late = [
        LabelledScore(s.order_id.replace("O", "L"), s.placed_at + timedelta(days=30),
                      round(s.score * 0.55, 2) if s.fraud else s.score, s.fraud)
        for s in shop(1500, 6)
    ]  # fmt: skip
    target = CalibrationTarget(recall=0.9, flag_budget=0.08, holdout=0.3)
    result = calibrate(early + late, target, incumbent_threshold=30.0)
    assert result.threshold is not None and result.threshold > 30
    assert result.incumbent is not None and result.holdout is not None
    assert result.holdout.recall < result.incumbent.recall
    assert not result.accepted
    assert "refused" in result.reason


def test_a_version_not_worse_on_the_holdout_is_accepted_over_a_poor_incumbent() -> None:
    samples = shop(5000, 7)
    target = CalibrationTarget(recall=0.9, flag_budget=0.08)
    result = calibrate(samples, target, incumbent_threshold=95.0)
    assert result.incumbent is not None and result.holdout is not None
    assert result.incumbent.recall < 0.5
    assert result.accepted


def test_too_few_labelled_frauds_give_no_version() -> None:
    samples = shop(200, 8, fraud_rate=0.01)
    result = calibrate(samples, CalibrationTarget(min_positives=5), incumbent_threshold=50)
    assert result.threshold is None and not result.accepted
    assert "too few labelled frauds" in result.reason


def point(recall: float, flag_rate: float) -> RiskMetrics:
    return RiskMetrics(
        threshold=50, n=1000, positives=50, flagged=round(flag_rate * 1000),
        tp=round(recall * 50), precision=0.5, recall=recall, flag_rate=flag_rate,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("candidate", "incumbent", "expected"),
    [
        (point(0.92, 0.05), point(0.92, 0.05), True),  # the same
        (point(0.80, 0.05), point(0.92, 0.05), False),  # misses more, flags as many
        (point(0.92, 0.07), point(0.92, 0.05), False),  # flags more, catches no more
        (point(0.91, 0.03), point(0.95, 0.06), True),  # both on target, fewer flags
        (point(0.85, 0.03), point(0.95, 0.06), False),  # leaves the target
        (point(0.95, 0.07), point(0.95, 0.12), True),  # back within the budget
        (point(0.99, 0.12), point(0.90, 0.07), False),  # over the budget
    ],
)
def test_not_worse(candidate: RiskMetrics, incumbent: RiskMetrics, expected: bool) -> None:
    target = CalibrationTarget(recall=0.9, flag_budget=0.08)
    assert not_worse(candidate, incumbent, target) is expected
