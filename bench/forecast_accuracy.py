"""Back-test accuracy of the demand forecast on several shapes of sales, one run each.

For the project's own generated sales (app/datagen/sales.py, 12 SKUs over 365 days, seed 7)
and for each shape of bench/forecast_shapes.py (a different generator), this prints the table
of `orderflow forecast backtest`: per SKU the chosen method and its MASE on a 14-day hold-out
beside seasonal naive's and AutoETS's, and the overall means. Then a summary line per shape,
with the hand-written forecast statsforecast replaced (bench/handwritten_forecast.py) scored
on the same hold-outs, and the time one SKU's forecast takes as a scheduled replenishment run
makes it (its history as given, the default lead time and review period).

    python -m bench.forecast_accuracy [--horizon 14] [--skus 8] [--seed 11] [--no-clean]

`--no-clean` fits on the raw sales, without promotion cleaning, to measure what cleaning does.
"""

from __future__ import annotations

import argparse
import math
import time

import policies.forecasting as forecasting
from app.commands.forecast import BacktestReport, backtest_report, render_table
from app.datagen.sales import generate_sales
from bench import handwritten_forecast
from bench.forecast_shapes import SHAPES, generate_shape
from orderflow.models.replenishment import ReplenishmentParameters
from policies.replenishment import required_horizon


def datasets(skus: int, seed: int) -> dict[str, dict[str, list[float]]]:
    own = {
        h.sku: [float(q) for q in h.quantities] for h in generate_sales(days=365, skus=12, seed=7)
    }
    return {"datagen (project)": own} | {
        shape: generate_shape(shape, skus=skus, seed=seed) for shape in SHAPES
    }


def handwritten_mase(series: dict[str, list[float]], horizon: int) -> float:
    """Mean hold-out MASE of the replaced forecast over the SKUs the back-test scores."""
    scores = []
    for values in series.values():
        if len(values) < horizon + 2 * forecasting.SEASON:
            continue
        training, actual = values[:-horizon], values[-horizon:]
        forecast = handwritten_forecast.forecast_demand(training, horizon).mean
        score = forecasting.mase(actual, forecast, training)
        if math.isfinite(score):
            scores.append(score)
    return math.fsum(scores) / len(scores)


def seconds_per_sku(series: dict[str, list[float]]) -> float:
    """Mean time of one SKU's forecast as the replenishment run asks for it."""
    defaults = ReplenishmentParameters()
    horizon = required_horizon(defaults.lead_time_days, defaults.review_period_days)
    started = time.perf_counter()
    for values in series.values():
        forecasting.forecast_demand(values, horizon)
    return (time.perf_counter() - started) / len(series)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=14)
    parser.add_argument("--skus", type=int, default=8, help="SKUs per generated shape")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-clean", action="store_true", help="fit without promotion cleaning")
    arguments = parser.parse_args()
    # The module reads this on every forecast; flipping it here measures cleaning's effect.
    forecasting.CLEAN_PROMOTIONS = not arguments.no_clean

    summary: list[tuple[str, BacktestReport, float, float]] = []
    for name, series in datasets(arguments.skus, arguments.seed).items():
        started = time.perf_counter()
        report = backtest_report(series, arguments.horizon)
        elapsed = time.perf_counter() - started
        print(f"== {name}")
        print(render_table(report))
        print(f"({elapsed:.1f} s)\n")
        old = handwritten_mase(series, arguments.horizon)
        summary.append((name, report, old, seconds_per_sku(series)))

    print(f"promotion cleaning: {'on' if forecasting.CLEAN_PROMOTIONS else 'off'}")
    print(
        f"{'shape':<18} {'SKUs':>4} {'chosen':>7} {'s-naive':>7} {'AutoETS':>7} {'beats ETS':>9}"
        f" {'old':>6} {'s/SKU':>6}"
    )
    for name, report, old, per_sku in summary:
        o = report.overall
        print(
            f"{name:<18} {o.scored_skus:>4} {o.mase:>7.3f} {o.mase_seasonal_naive:>7.3f} "
            f"{o.mase_auto_ets:>7.3f} {o.beats_auto_ets:>5} of {o.scored_skus} {old:>6.3f} "
            f"{per_sku:>6.2f}"
        )
    print("old: the hand-written forecast replaced (bench/handwritten_forecast.py)")
    print("s/SKU: one SKU's forecast as a replenishment run makes it (default horizon)")


if __name__ == "__main__":
    main()
