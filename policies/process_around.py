"""Before and after a process change (pure): two equal windows around it, the KPIs the change
should move for the steps it touches, and plain warnings when a window holds too few orders
to conclude anything.

A window's cohort is the orders placed in it (as in the KPI report), so an order placed
before the change counts as before even when a later step ran after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel

from orderflow.process import STEPS
from policies.kpi import KpiReport, compare

# Besides its cycle time (p50/p95), the rates and figures a change to a step should move,
# by the KPI report's headline keys.
STEP_FIGURES: dict[int, tuple[str, ...]] = {
    1: (),
    2: (),
    3: ("flag_rate", "auto_approval_rate", "overturn_rate", "review_decision_p50"),
    4: ("backorder_rate", "stockout_rate"),
    5: (),
    6: ("on_time_rate",),
    7: ("on_time_rate", "follow_ups", "follow_up_rate"),
    8: ("feedback_tickets", "average_rating"),
}
STEP_NAMES = {int(s.step): s.name for s in STEPS}


class Windows(BaseModel):
    before_start: datetime
    change_at: datetime
    after_end: datetime
    # Shorter than asked for: the change is more recent than one window.
    shortened: bool


class AroundRow(BaseModel):
    key: str
    label: str
    kind: str
    step: int | None
    before: float | None
    after: float | None
    change: float | None
    # Orders of each window the figure counts (a step's cycle time: those that passed it).
    before_orders: int
    after_orders: int


def around_windows(changed_at: datetime, now: datetime, window: timedelta) -> Windows:
    """[changed_at - w, changed_at) and [changed_at, changed_at + w), where w is `window` or
    the time since the change when that is shorter."""
    if window <= timedelta(0):
        raise ValueError("a window must be longer than nothing")
    since = now - changed_at
    if since <= timedelta(0):
        raise ValueError(f"the change takes effect at {changed_at}: nothing after it yet")
    length = min(window, since)
    return Windows(
        before_start=changed_at - length,
        change_at=changed_at,
        after_end=changed_at + length,
        shortened=length < window,
    )


def around_rows(before: KpiReport, after: KpiReport, steps: Iterable[int]) -> list[AroundRow]:
    """The figures of the touched steps, before beside after, in step order."""
    by_key = {row.key: row for row in compare(before, after)}
    rows: list[AroundRow] = []
    seen: set[str] = set()
    for step in sorted(set(steps)):
        cycle_before = before.step_cycle_seconds.get(str(step))
        cycle_after = after.step_cycle_seconds.get(str(step))
        counts = (
            cycle_before.count if cycle_before else 0,
            cycle_after.count if cycle_after else 0,
        )
        keys = [(f"step_{step}_p50", counts), (f"step_{step}_p95", counts)]
        keys += [(k, (before.orders, after.orders)) for k in STEP_FIGURES.get(step, ())]
        for key, (n_before, n_after) in keys:
            if key in seen or key not in by_key:
                continue
            seen.add(key)
            c = by_key[key]
            rows.append(
                AroundRow(
                    key=key,
                    label=c.label,
                    kind=c.kind,
                    step=step,
                    before=c.before,
                    after=c.after,
                    change=c.change,
                    before_orders=n_before,
                    after_orders=n_after,
                )
            )
    return rows


def window_warnings(
    before: KpiReport, after: KpiReport, steps: Iterable[int], minimum: int
) -> list[str]:
    """Why the figures cannot be trusted: a window, or a touched step in it, with fewer
    than `minimum` orders."""
    warnings: list[str] = []
    for name, report in (("before", before), ("after", after)):
        if report.orders < minimum:
            warnings.append(
                f"the window {name} the change has {report.orders} orders, fewer than "
                f"{minimum}: too few to conclude anything from it"
            )
            continue
        for step in sorted(set(steps)):
            cycle = report.step_cycle_seconds.get(str(step))
            passed = cycle.count if cycle else 0
            if passed < minimum:
                warnings.append(
                    f"only {passed} orders of the window {name} the change passed step "
                    f"{step} ({STEP_NAMES.get(step, '?')}), fewer than {minimum}: its "
                    "cycle times are too few to conclude anything"
                )
    return warnings
