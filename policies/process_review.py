"""The weekly process review pack (pure): per step, its KPIs this week against last week
and against the median of the four weeks before, its SLA breaches, the process issues
raised and resolved that week and those still open, and the changes made that week."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from orderflow.process import STEPS
from policies.kpi import KpiReport, headlines
from policies.process_around import STEP_FIGURES


class StepFigure(BaseModel):
    key: str
    label: str
    kind: str
    this_week: float | None
    last_week: float | None
    # Of the four weeks before this one (those with a value); None when none has one.
    median_4_weeks: float | None


class StepReview(BaseModel):
    step: int
    name: str
    # The department that does the step (orderflow/process.py).
    department: str
    # Orders of this week's cohort that passed the step.
    orders: int
    figures: list[StepFigure]
    # Work of the week that waited past its service level; None: the step has none counted.
    sla_breaches: int | None
    issues_raised: list[dict[str, Any]]
    issues_resolved: list[dict[str, Any]]
    open_issues: int
    changes: list[dict[str, Any]]


class ProcessReviewPack(BaseModel):
    week_start: datetime
    week_end: datetime
    orders_this_week: int
    orders_last_week: int | None
    steps: list[StepReview]


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def step_keys(step: int) -> list[str]:
    return [f"step_{step}_p50", f"step_{step}_p95", *STEP_FIGURES.get(step, ())]


def build_pack(
    *,
    week_start: datetime,
    week_end: datetime,
    this_week: KpiReport,
    prior_weeks: Sequence[KpiReport],
    sla_breaches: Mapping[int, int],
    issues: Sequence[Mapping[str, Any]],
    open_issues: Mapping[int, int],
    changes: Sequence[Mapping[str, Any]],
) -> ProcessReviewPack:
    """`prior_weeks`: the weeks before this one, latest first (the first is last week);
    `issues`: those raised or resolved in the week (with `step`, `raised_at`, `resolved_at`);
    `changes`: those made in the week (with `steps`)."""
    now_values = {h.key: h for h in headlines(this_week)}
    before = [{h.key: h.value for h in headlines(r)} for r in prior_weeks[:4]]
    steps = []
    for process_step in STEPS:
        n = int(process_step.step)
        figures = [
            StepFigure(
                key=key,
                label=now_values[key].label,
                kind=now_values[key].kind,
                this_week=now_values[key].value,
                last_week=before[0].get(key) if before else None,
                median_4_weeks=_median([week.get(key) for week in before]),
            )
            for key in step_keys(n)
            if key in now_values
        ]
        cycle = this_week.step_cycle_seconds.get(str(n))
        own = [dict(i) for i in issues if i["step"] == n]
        steps.append(
            StepReview(
                step=n,
                name=process_step.name,
                department=process_step.does,
                orders=cycle.count if cycle else 0,
                figures=figures,
                sla_breaches=sla_breaches.get(n),
                issues_raised=[i for i in own if week_start <= i["raised_at"] < week_end],
                issues_resolved=[
                    i
                    for i in own
                    if i.get("resolved_at") is not None
                    and week_start <= i["resolved_at"] < week_end
                ],
                open_issues=open_issues.get(n, 0),
                changes=[dict(c) for c in changes if n in c["steps"]],
            )
        )
    return ProcessReviewPack(
        week_start=week_start,
        week_end=week_end,
        orders_this_week=this_week.orders,
        orders_last_week=prior_weeks[0].orders if prior_weeks else None,
        steps=steps,
    )
