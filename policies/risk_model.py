"""The learned risk model: a logistic regression over the risk signals' strengths, turned
back into points per signal, so an order's explanation stays a list of reasons with points.

The features of an order are each signal's strength in [0, 1] (a reason's points over its
weight). The fitted log-odds per unit of strength become the signal's weight, at
`POINTS_PER_LOG_ODDS` points each: a score is then ten times the log-odds its signals add,
and the threshold is chosen on those scores as for any weighting
(`policies/risk_calibration.py`). A signal the fit finds pointing to legitimate orders gets
no points (a reason never subtracts), and one seen too rarely in the labelled history to
learn from keeps its configured weight rather than being silently switched off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from orderflow.models.risk import Calibration, CalibrationTarget, RiskConfig, default_weights
from policies.risk_calibration import LabelledScore, calibrate, split_by_time

POINTS_PER_LOG_ODDS = 10.0
MAX_WEIGHT = 100.0
# A signal present on fewer labelled orders than this keeps its configured weight.
MIN_SUPPORT = 5
# Scoring with this weight on every signal gives points = 100 x strength.
PROBE_WEIGHT = 100.0

SIGNALS: tuple[str, ...] = tuple(default_weights())


@dataclass(frozen=True)
class LabelledSignals:
    """One labelled order's signal strengths (code -> strength in [0, 1])."""

    order_id: str
    placed_at: datetime
    strengths: Mapping[str, float]
    fraud: bool


def probe_config(config: RiskConfig) -> RiskConfig:
    """`config` with every signal at the probe weight: its reasons' points read as strengths."""
    return config.model_copy(update={"weights": dict.fromkeys(SIGNALS, PROBE_WEIGHT)})


def strengths_of(
    reasons: Iterable[tuple[str, float]], weights: Mapping[str, float]
) -> dict[str, float]:
    """Each signal's strength from an assessment's reasons (code, points) and the weights
    that scored it (a signal at weight 0 gave no reason, so it reads as absent)."""
    found: dict[str, float] = {}
    for code, points in reasons:
        weight = weights.get(code, 0.0)
        if weight > 0:
            found[code] = min(1.0, max(0.0, points / weight))
    return found


def score_with(strengths: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The score `policies.risk.score_order` gives an order of these strengths under
    `weights`: each reason's points rounded to cents, summed, capped at 100."""
    points = [round(weights.get(code, 0.0) * s, 2) for code, s in strengths.items()]
    return round(min(100.0, sum(p for p in points if p > 0)), 2)


def fit_weights(
    samples: Sequence[LabelledSignals], fallback: Mapping[str, float]
) -> dict[str, float]:
    """Points at full strength per signal, learned from `samples`; `fallback` (the weights
    in force) for signals too rarely present to learn from."""
    labels = np.array([s.fraud for s in samples], dtype=int)
    if labels.min(initial=1) == labels.max(initial=0):
        raise ValueError("the labelled orders need both fraud and legitimate ones")
    features = np.array([[s.strengths.get(code, 0.0) for code in SIGNALS] for s in samples])
    # Balanced classes: fraud is rare, and only the ranking matters here (the threshold is
    # chosen afterwards), so the intercept this shifts is never used.
    # Imported here, not with the module: scikit-learn adds about 150 MB to every process
    # that imports the risk policies (each worker), and only a calibration fits a model.
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
    model.fit(features, labels)
    support = (features > 0).sum(axis=0)
    weights: dict[str, float] = {}
    for index, code in enumerate(SIGNALS):
        if support[index] < MIN_SUPPORT:
            weights[code] = float(fallback.get(code, 0.0))
            continue
        learned = float(model.coef_[0][index]) * POINTS_PER_LOG_ODDS
        weights[code] = round(min(MAX_WEIGHT, max(0.0, learned)), 2)
    return weights


def calibrate_learned(
    samples: Sequence[LabelledSignals],
    target: CalibrationTarget,
    incumbent_weights: Mapping[str, float],
    incumbent_threshold: float,
) -> Calibration:
    """Learn weights on the train split, choose their threshold there, and judge both on
    the holdout beside the weights and threshold in force."""
    current = [
        LabelledScore(s.order_id, s.placed_at, score_with(s.strengths, incumbent_weights), s.fraud)
        for s in samples
    ]
    train, holdout = split_by_time(samples, target.holdout)
    positives = (sum(s.fraud for s in train), sum(s.fraud for s in holdout))
    if min(positives) < target.min_positives or all(s.fraud for s in train):
        # Too little to learn from: the threshold-only answer says why.
        return calibrate(current, target, incumbent_threshold)
    weights = fit_weights(train, incumbent_weights)
    learned = [
        LabelledScore(s.order_id, s.placed_at, score_with(s.strengths, weights), s.fraud)
        for s in samples
    ]
    result = calibrate(learned, target, incumbent_threshold, incumbent_samples=current)
    return result.model_copy(update={"model": "logistic", "weights": weights})
