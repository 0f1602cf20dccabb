"""When a webhook delivery is tried again, and when it is given up (dead-lettered).

Pure: the dispatcher (workers/webhooks.py) and the repository apply it with the database's
clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# 2^60 seconds is beyond any cap; the exponent is bounded so that many attempts cannot overflow.
_MAX_EXPONENT = 60


def delivered(status_code: int | None) -> bool:
    """Any 2xx is delivered; redirects are not followed, so they count as failures."""
    return status_code is not None and 200 <= status_code < 300


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """The wait after failed attempt number `attempt` (1 for the first): base, then doubling,
    never above `cap`."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return float(min(base * 2**exponent, cap))


def next_attempt(
    *,
    attempt: int,
    now: datetime,
    age_from: datetime,
    max_age: timedelta,
    base: float,
    cap: float,
) -> datetime | None:
    """When to try again after failed attempt `attempt`, or None to dead-letter now: a retry
    that would fall after the delivery's max age is never made."""
    at = now + timedelta(seconds=backoff_seconds(attempt, base=base, cap=cap))
    if at >= age_from + max_age:
        return None
    return at
