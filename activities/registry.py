"""Every activity of a group, found where it is defined: the methods marked
`@activity.defn`. A worker registers whole groups, so an activity added to a module is
registered by being written, never by a second list elsewhere. Each is registered under
`classified` (activities/failures.py): a local activity's permanent failures are not retried."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from activities.failures import classified


def defined_activities(*groups: object) -> list[Callable[..., Any]]:
    """The bound `@activity.defn` methods of each group, in a stable order, each wrapped in
    `classified` (it keeps the method's activity definition, so its name and types)."""
    found: list[Callable[..., Any]] = []
    for group in groups:
        for name in sorted(vars(type(group))):
            if hasattr(getattr(type(group), name), "__temporal_activity_definition"):
                found.append(classified(getattr(group, name)))
    return found


def names_of(activities: Iterable[Callable[..., Any]]) -> set[str]:
    """The registered names of these activities."""
    return {getattr(a, "__temporal_activity_definition").name for a in activities}
