"""The risk history summary computed in memory from past orders (no database).

Mirrors `db.repositories.risk_history.load_risk_history` exactly: the same windows, the same
keys, the same quantile definition as PostgreSQL's `percentile_cont`, so the evaluation
command and the production query score an order against the same history.
`HistoryBook` keeps past orders indexed by customer, e-mail, address, payment and SKU, so
scoring thousands of orders never rescans the whole history.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from orderflow.models import Order
from orderflow.models.risk import (
    AmountDistribution,
    HistoryWindow,
    RiskHistory,
    SkuUsage,
    Velocity,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# (placed_at, order_id, ...): ordered by time, ties by order id (as `COLLATE "C"` in SQL).
Entry = TypeVar("Entry", bound=tuple)  # type: ignore[type-arg]


def percentile_cont(ordered: Sequence[float], fraction: float) -> float:
    """PostgreSQL's `percentile_cont`: linear interpolation between the closest ranks."""
    if not ordered:
        raise ValueError("percentile of no values")
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    if lower + 1 >= len(ordered):
        return ordered[-1]
    first, second = ordered[lower], ordered[lower + 1]
    return first + (second - first) * (position - lower)


def distribution(values: Iterable[float]) -> AmountDistribution:
    """Median, MAD and upper quantiles of `values`; an empty distribution for none."""
    ordered = sorted(values)
    if not ordered:
        return AmountDistribution()
    median = percentile_cont(ordered, 0.5)
    mad = percentile_cont(sorted(abs(v - median) for v in ordered), 0.5)
    return AmountDistribution(
        count=len(ordered),
        median=median,
        mad=mad,
        p90=percentile_cont(ordered, 0.9),
        p95=percentile_cont(ordered, 0.95),
        p99=percentile_cont(ordered, 0.99),
    )


def sku_usage(quantities: Iterable[int]) -> SkuUsage:
    ordered = sorted(float(q) for q in quantities)
    if not ordered:
        return SkuUsage()
    return SkuUsage(
        lines=len(ordered),
        median_quantity=percentile_cont(ordered, 0.5),
        p95_quantity=percentile_cont(ordered, 0.95),
    )


def address_key(order: Order) -> tuple[str, str, str]:
    """Same shipping address: country, postal code and street line (case-insensitive)."""
    address = order.shipping_address
    return (address.country, address.postal_code, address.line1.lower())


def _latest(entries: list[Entry], as_of: datetime, exclude: str, limit: int) -> list[Entry]:
    """Up to `limit` entries placed before `as_of`, newest first, without order `exclude`."""
    found: list[Entry] = []
    index = bisect_left(entries, (as_of,)) - 1
    while index >= 0 and len(found) < limit:
        if entries[index][1] != exclude:
            found.append(entries[index])
        index -= 1
    return found


class HistoryBook:
    """Past orders, indexed for the risk history summary of any later order."""

    def __init__(self, window: HistoryWindow | None = None) -> None:
        self.window = window or HistoryWindow()
        self._placed_at: dict[str, datetime] = {}
        self._shop: list[tuple[datetime, str, float]] = []
        self._by_customer: dict[
            str, list[tuple[datetime, str, float, int, tuple[str, str, str]]]
        ] = defaultdict(list)
        self._by_email: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        self._by_address: dict[tuple[str, str, str], list[tuple[datetime, str]]] = defaultdict(list)
        self._by_payment: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        self._by_sku: dict[str, list[tuple[datetime, str, int]]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._placed_at)

    def add(self, order: Order) -> None:
        """Record a past order; it needs a `placed_at` and an order id not seen before."""
        if order.placed_at is None:
            raise ValueError(f"order {order.order_id} has no placed_at")
        if order.order_id in self._placed_at:
            raise ValueError(f"order {order.order_id} appears twice")
        at, oid = order.placed_at, order.order_id
        self._placed_at[oid] = at
        insort(self._shop, (at, oid, float(order.total)))
        insort(
            self._by_customer[order.customer.id],
            (at, oid, float(order.total), order.total_quantity, address_key(order)),
        )
        insort(self._by_email[order.customer.email], (at, oid))
        insort(self._by_address[address_key(order)], (at, oid))
        insort(self._by_payment[order.payment.transaction_id], (at, oid))
        for item in order.items:
            insort(self._by_sku[item.sku], (at, oid, item.quantity))

    def _count(self, entries: list[Entry], start: datetime, end: datetime, exclude: str) -> int:
        """Entries placed in [start, end), without order `exclude`."""
        count = bisect_left(entries, (end,)) - bisect_left(entries, (start,))
        placed = self._placed_at.get(exclude)
        if placed is not None and start <= placed < end:
            at = bisect_left(entries, (placed, exclude))
            if at < len(entries) and entries[at][:2] == (placed, exclude):
                count -= 1
        return count

    def _velocity(self, entries: list[Entry], as_of: datetime, exclude: str) -> Velocity:
        return Velocity(
            last_hour=self._count(entries, as_of - HOUR, as_of, exclude),
            last_day=self._count(entries, as_of - DAY, as_of, exclude),
        )

    def summary(self, order: Order, as_of: datetime) -> RiskHistory:
        """The history `order` is scored against as of `as_of` (itself excluded)."""
        if as_of.tzinfo is None:
            raise ValueError("as_of must carry a time zone")
        oid = order.order_id
        address = address_key(order)
        customer = self._by_customer.get(order.customer.id, [])
        customer_past = [e for e in customer[: bisect_left(customer, (as_of,))] if e[1] != oid]
        customer_recent = _latest(customer, as_of, oid, self.window.customer_orders)
        shop_recent = _latest(self._shop, as_of, oid, self.window.shop_orders)
        return RiskHistory(
            as_of=as_of,
            customer_order_count=len(customer_past),
            customer_first_order_at=customer_past[0][0] if customer_past else None,
            customer_orders_to_address=sum(1 for e in customer_past if e[4] == address),
            customer_amounts=distribution(e[2] for e in customer_recent),
            customer_max_quantity=max((e[3] for e in customer_past), default=None),
            shop_amounts=distribution(e[2] for e in shop_recent),
            customer_velocity=self._velocity(customer, as_of, oid),
            email_velocity=self._velocity(self._by_email.get(order.customer.email, []), as_of, oid),
            address_velocity=self._velocity(self._by_address.get(address, []), as_of, oid),
            payment_velocity=self._velocity(
                self._by_payment.get(order.payment.transaction_id, []), as_of, oid
            ),
            sku_usage={
                item.sku: sku_usage(
                    e[2]
                    for e in _latest(
                        self._by_sku.get(item.sku, []), as_of, oid, self.window.sku_lines
                    )
                )
                for item in order.items
            },
        )


def summarize_history(
    past: Sequence[Order],
    order: Order,
    as_of: datetime,
    window: HistoryWindow | None = None,
) -> RiskHistory:
    """The risk history of `order` as of `as_of`, from a list of past orders (pure)."""
    book = HistoryBook(window)
    for past_order in past:
        book.add(past_order)
    return book.summary(order, as_of)
