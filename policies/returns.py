"""Whether a return may be asked for: the rules a request is checked against when it comes
in (window, what was delivered, what is returned already). Pure: the caller reads the facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Refusal:
    """Why a return is refused; `status` is the HTTP answer (409 wrong state, 422 bad lines)."""

    status: int
    detail: str


def refusal(
    *,
    delivered_at: datetime | None,
    now: datetime,
    window: timedelta,
    delivered: Mapping[str, int],
    returned: Mapping[str, int],
    requested: Sequence[tuple[str, int]],
) -> Refusal | None:
    """None when the request is within the rules, else the first rule it breaks."""
    if delivered_at is None:
        return Refusal(409, "the order has not been delivered: nothing can be returned yet")
    if now > delivered_at + window:
        days = window.days if window.days else window.total_seconds() / 86400
        return Refusal(409, f"the return window ({days:g} days after delivery) has closed")
    skus = [sku for sku, _ in requested]
    if len(set(skus)) != len(skus):
        return Refusal(422, "each SKU may appear once in a return")
    for sku, quantity in requested:
        if sku not in delivered:
            return Refusal(422, f"{sku} is not a line of this order")
        if quantity > delivered[sku]:
            return Refusal(422, f"{quantity} × {sku} is more than the {delivered[sku]} delivered")
        left = delivered[sku] - returned.get(sku, 0)
        if quantity > left:
            return Refusal(
                409,
                f"{sku} is returned already ({returned.get(sku, 0)} of {delivered[sku]}); "
                f"{left} may still be returned",
            )
    return None


def returns_everything(
    delivered: Mapping[str, int], returned: Mapping[str, int], requested: Sequence[tuple[str, int]]
) -> bool:
    """Whether this request brings back the last unit of the order."""
    asked = dict(requested)
    return all(returned.get(sku, 0) + asked.get(sku, 0) >= qty for sku, qty in delivered.items())
