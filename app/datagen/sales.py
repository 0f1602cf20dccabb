"""Synthetic daily sales histories per SKU, shaped like a web shop's: input of forecast back-tests.

Most SKUs are regular sellers: a level with a linear trend (growing or declining), a gentle
yearly swing, a weekly pattern (weekend peaks of differing strength), a few promotions that
lift sales two to three and a half times for a few days, and over-dispersed noise (a gamma
mixed Poisson, as real daily counts are noisier than Poisson). Every fourth SKU is an
intermittent low seller: most days sell nothing, and a sale is a handful of units.

Everything is drawn from one seeded numpy Generator, so a seed always gives the same data.
The CSV holds one `date,sku,quantity` row per SKU and day with sales, as an order history
would; days without a row sold nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

DEFAULT_START = date(2024, 1, 1)

SkuKind = Literal["regular", "intermittent"]

# Monday-first weekday shapes (multiplicative, mean about 1) a shop's SKUs tend to follow.
_WEEKLY_SHAPES = (
    (0.85, 0.8, 0.85, 0.95, 1.1, 1.35, 1.1),  # weekend shoppers
    (1.15, 1.1, 1.05, 1.0, 0.95, 0.8, 0.95),  # office goods, weekday buyers
    (0.9, 0.9, 0.95, 1.0, 1.15, 1.2, 0.9),  # Friday-Saturday peak
)


@dataclass(frozen=True)
class SalesHistory:
    """One generated SKU: its daily sold quantities from `start` and how they were shaped."""

    sku: str
    kind: SkuKind
    start: date
    quantities: list[int]
    promotion_days: list[int]

    def rows(self) -> Iterator[tuple[date, str, int]]:
        """(date, sku, quantity) for each day with sales."""
        for offset, quantity in enumerate(self.quantities):
            if quantity > 0:
                yield self.start + timedelta(days=offset), self.sku, quantity


def generate_sales(
    *, days: int = 365, skus: int = 12, seed: int = 7, start: date = DEFAULT_START
) -> list[SalesHistory]:
    """`skus` daily sales histories of `days` days each, reproducible from `seed`."""
    if days < 1:
        raise ValueError("days must be at least 1")
    if skus < 1:
        raise ValueError("skus must be at least 1")
    rng = np.random.default_rng(seed)
    histories = []
    for index in range(skus):
        sku = f"SKU-{index + 1:04d}"
        if index % 4 == 3:
            histories.append(_intermittent(rng, sku, days, start))
        else:
            histories.append(_regular(rng, sku, days, start))
    return histories


def write_sales_csv(path: Path, histories: list[SalesHistory]) -> int:
    """Write `date,sku,quantity` rows (by date, then SKU) to `path`; returns the row count."""
    rows = sorted(row for history in histories for row in history.rows())
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "sku", "quantity"])
        for day, sku, quantity in rows:
            writer.writerow([day.isoformat(), sku, quantity])
    return len(rows)


def _regular(rng: np.random.Generator, sku: str, days: int, start: date) -> SalesHistory:
    t = np.arange(days, dtype=float)
    base = float(np.exp(rng.uniform(np.log(6.0), np.log(120.0))))
    growth_per_year = rng.uniform(-0.35, 0.7)
    level = base * np.maximum(0.25, 1.0 + growth_per_year * t / 365.0)
    swing, phase = rng.uniform(0.0, 0.12), rng.uniform(0.0, 2 * np.pi)
    yearly = 1.0 + swing * np.sin(2 * np.pi * t / 365.0 + phase)

    shape = np.asarray(_WEEKLY_SHAPES[int(rng.integers(len(_WEEKLY_SHAPES)))])
    strength = rng.uniform(0.6, 1.4)
    weekly = 1.0 + strength * (shape - shape.mean())
    weekday = np.asarray([(start + timedelta(days=offset)).weekday() for offset in range(days)])

    lift = np.ones(days)
    promotion_days: list[int] = []
    for _ in range(int(rng.poisson(4.0 * days / 365.0))):
        first = int(rng.integers(days))
        length = int(rng.integers(2, 6))
        factor = rng.uniform(2.0, 3.5)
        for offset in range(first, min(days, first + length)):
            lift[offset] = factor
            promotion_days.append(offset)

    mean = level * yearly * weekly[weekday] * lift
    # Gamma-mixed Poisson: daily counts more dispersed than Poisson, as real shop sales are.
    shape_k = rng.uniform(8.0, 30.0)
    quantities = rng.poisson(mean * rng.gamma(shape_k, 1.0 / shape_k, size=days))
    return SalesHistory(sku, "regular", start, quantities.tolist(), sorted(set(promotion_days)))


def _intermittent(rng: np.random.Generator, sku: str, days: int, start: date) -> SalesHistory:
    chance = rng.uniform(0.08, 0.35)
    extra_units = rng.uniform(0.2, 1.5)
    sells = rng.random(days) < chance
    quantities = np.where(sells, 1 + rng.poisson(extra_units, size=days), 0)
    return SalesHistory(sku, "intermittent", start, quantities.tolist(), [])
