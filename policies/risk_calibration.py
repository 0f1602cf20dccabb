"""Calibration of the risk flag threshold from labelled outcomes (pure, no I/O, no clock).

The labelled orders are split by time: the latest share is held out, the rest is the train
split. On the train split the threshold is chosen that meets the target (recall at least R
while flagging at most F of all orders) with the fewest flags; when no threshold meets both,
the flag budget wins (reviewers' time is the hard limit) and the most recall within it is
taken. The chosen threshold and the one in force are then both judged on the same holdout,
and the new one may go live only if it is not worse there (`not_worse`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from orderflow.models.risk import Calibration, CalibrationTarget, RiskMetrics


@dataclass(frozen=True)
class LabelledScore:
    """One order's risk score and whether it turned out to be fraud."""

    order_id: str
    placed_at: datetime
    score: float
    fraud: bool


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def metrics_at(samples: Iterable[LabelledScore], threshold: float) -> RiskMetrics:
    """Flagging every order scoring at least `threshold`, against the labels."""
    n = positives = flagged = tp = 0
    for sample in samples:
        n += 1
        hit = sample.score >= threshold
        positives += sample.fraud
        flagged += hit
        tp += hit and sample.fraud
    return RiskMetrics(
        threshold=threshold,
        n=n,
        positives=positives,
        flagged=flagged,
        tp=tp,
        precision=_ratio(tp, flagged),
        recall=_ratio(tp, positives),
        flag_rate=_ratio(flagged, n),
    )


class _Dated(Protocol):
    @property
    def order_id(self) -> str: ...
    @property
    def placed_at(self) -> datetime: ...


Dated = TypeVar("Dated", bound=_Dated)


def split_by_time(samples: Sequence[Dated], holdout: float) -> tuple[list[Dated], list[Dated]]:
    """(train, holdout): the latest `holdout` share of the samples is held out, so the
    threshold is judged on orders that came after everything it was fitted on."""
    ordered = sorted(samples, key=lambda s: (s.placed_at, s.order_id))
    cut = len(ordered) - round(len(ordered) * holdout)
    return ordered[:cut], ordered[cut:]


def meets(metrics: RiskMetrics, target: CalibrationTarget) -> bool:
    return metrics.recall >= target.recall and metrics.flag_rate <= target.flag_budget


def choose_threshold(samples: Sequence[LabelledScore], target: CalibrationTarget) -> float:
    """The threshold meeting `target` on `samples` with the fewest flags; failing that, the
    one with the most recall within the flag budget. Placed halfway down to the next lower
    score, so an order scoring a little under the lowest flagged one is still caught."""
    scores = sorted({s.score for s in samples}, reverse=True)
    if not scores:
        raise ValueError("no labelled scores to calibrate on")
    positives = sum(s.fraud for s in samples)
    n = len(samples)
    by_score: dict[float, tuple[int, int]] = {}
    for sample in samples:
        count, fraud = by_score.get(sample.score, (0, 0))
        by_score[sample.score] = (count + 1, fraud + sample.fraud)
    flagged = tp = 0
    # Walking down the scores, flags and catches only grow: the first candidate reaching
    # the recall target has the fewest flags of all that do.
    within_budget: int | None = None
    chosen: int | None = None
    for index, score in enumerate(scores):
        count, fraud = by_score[score]
        flagged += count
        tp += fraud
        if flagged / n > target.flag_budget:
            break
        within_budget = index
        if positives and tp / positives >= target.recall:
            chosen = index
            break
    if chosen is None:
        # Nothing meets both: the most recall the budget allows (at worst, flag nothing
        # above the top score).
        if within_budget is None:
            return min(100.0, scores[0] + 0.01)
        chosen = within_budget
    if chosen + 1 < len(scores):
        return (scores[chosen] + scores[chosen + 1]) / 2
    return scores[chosen]


def _gap(metrics: RiskMetrics, target: CalibrationTarget) -> float:
    """How far from the target: recall missing plus flag rate over budget."""
    return max(0.0, target.recall - metrics.recall) + max(
        0.0, metrics.flag_rate - target.flag_budget
    )


def not_worse(candidate: RiskMetrics, incumbent: RiskMetrics, target: CalibrationTarget) -> bool:
    """Whether `candidate` may replace `incumbent`, both measured on the same holdout.

    Further from the target is worse, closer is better. At the same distance (within the
    tolerance) the candidate is worse only when dominated: less recall for no fewer flags,
    or more flags for no more recall."""
    tol = target.tolerance
    gap_c, gap_i = _gap(candidate, target), _gap(incumbent, target)
    if gap_c > gap_i + tol:
        return False
    if gap_c < gap_i - tol:
        return True
    less_recall = candidate.recall < incumbent.recall - tol
    more_flags = candidate.flag_rate > incumbent.flag_rate + tol
    no_fewer_flags = candidate.flag_rate >= incumbent.flag_rate - tol
    no_more_recall = candidate.recall <= incumbent.recall + tol
    return not ((less_recall and no_fewer_flags) or (more_flags and no_more_recall))


def calibrate(
    samples: Sequence[LabelledScore],
    target: CalibrationTarget,
    incumbent_threshold: float | None,
    incumbent_samples: Sequence[LabelledScore] | None = None,
) -> Calibration:
    """Choose a threshold on the train split and judge it, beside the incumbent's threshold
    (None: no version yet, the candidate only has to exist), on the holdout. The incumbent
    is judged on `incumbent_samples` when it scores differently (other weights): the same
    orders, so the same split."""
    train, holdout = split_by_time(samples, target.holdout)
    incumbent_holdout = (
        split_by_time(incumbent_samples, target.holdout)[1]
        if incumbent_samples is not None
        else holdout
    )
    train_pos, holdout_pos = sum(s.fraud for s in train), sum(s.fraud for s in holdout)
    if min(train_pos, holdout_pos) < target.min_positives:
        return Calibration(
            threshold=None,
            target=target,
            reason=f"too few labelled frauds: {train_pos} to fit on and {holdout_pos} to "
            f"judge on, at least {target.min_positives} each needed",
        )
    threshold = choose_threshold(train, target)
    on_train, on_holdout = metrics_at(train, threshold), metrics_at(holdout, threshold)
    incumbent = (
        metrics_at(incumbent_holdout, incumbent_threshold)
        if incumbent_threshold is not None
        else None
    )
    accepted = incumbent is None or not_worse(on_holdout, incumbent, target)
    if incumbent is None:
        reason = "no version in force: the calibrated threshold goes live"
    elif accepted:
        reason = (
            f"not worse than threshold {incumbent_threshold:g} on the holdout "
            f"(recall {on_holdout.recall} vs {incumbent.recall}, "
            f"flag rate {on_holdout.flag_rate} vs {incumbent.flag_rate})"
        )
    else:
        reason = (
            f"worse than threshold {incumbent_threshold:g} on the holdout "
            f"(recall {on_holdout.recall} vs {incumbent.recall}, "
            f"flag rate {on_holdout.flag_rate} vs {incumbent.flag_rate}): refused"
        )
    return Calibration(
        threshold=threshold,
        target=target,
        train=on_train,
        holdout=on_holdout,
        incumbent=incumbent,
        target_met_on_train=meets(on_train, target),
        target_met_on_holdout=meets(on_holdout, target),
        accepted=accepted,
        reason=reason,
    )
