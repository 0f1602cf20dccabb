"""`orderflow forecast`: back-test the demand forecast against seasonal naive, generate sales data.

`backtest` reads `date,sku,quantity` rows (several rows of one SKU and day add up), makes one
daily series per SKU from its first sale to the last date in the file (days without a row sold
nothing), holds out the last `horizon` days, and prints the chosen method with its MASE beside
the MASE of seasonal naive and of AutoETS alone, per SKU and overall: a table, or JSON with
`--json`. Input problems exit with code 2.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from app.datagen.sales import DEFAULT_START, generate_sales, write_sales_csv
from policies.forecasting import SEASON, backtest

app = typer.Typer(help="Demand forecast: back-test and sample sales data.", no_args_is_help=True)

_COLUMNS = ("date", "sku", "quantity")


class SalesFileError(ValueError):
    """The sales file cannot be used; the message says where and why."""


def read_daily_sales(path: Path) -> dict[str, list[float]]:
    """Daily series per SKU from a `date,sku,quantity` CSV, missing days filled with zero."""
    if not path.is_file():
        raise SalesFileError(f"sales file not found: {path}")
    totals: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in _COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            expected = ",".join(_COLUMNS)
            raise SalesFileError(f"{path}: header must name {expected}; missing {missing}")
        for row in reader:
            line = reader.line_num
            day, sku, quantity = _parse_row(row, line)
            totals[sku][day] += quantity
    if not totals:
        raise SalesFileError(f"{path}: no sales rows")
    last = max(max(days) for days in totals.values())
    series = {}
    for sku, days in sorted(totals.items()):
        first = min(days)
        length = (last - first).days + 1
        series[sku] = [days.get(first + timedelta(days=offset), 0.0) for offset in range(length)]
    return series


def _parse_row(row: dict[str, str | None], line: int) -> tuple[date, str, float]:
    raw_date, raw_sku, raw_quantity = (row.get(column) for column in _COLUMNS)
    if raw_date is None or raw_sku is None or raw_quantity is None:
        raise SalesFileError(f"line {line}: expected {len(_COLUMNS)} fields {','.join(_COLUMNS)}")
    try:
        day = date.fromisoformat(raw_date.strip())
    except ValueError:
        raise SalesFileError(f"line {line}: date {raw_date!r} is not YYYY-MM-DD") from None
    sku = raw_sku.strip()
    if not sku:
        raise SalesFileError(f"line {line}: empty sku")
    try:
        quantity = float(raw_quantity)
    except ValueError:
        raise SalesFileError(f"line {line}: quantity {raw_quantity!r} is not a number") from None
    if not math.isfinite(quantity) or quantity < 0:
        raise SalesFileError(f"line {line}: quantity {raw_quantity!r} must be zero or more")
    return day, sku, quantity


class SkuBacktest(BaseModel):
    sku: str
    mase: float | None
    mase_seasonal_naive: float | None
    mase_auto_ets: float | None
    method: str


class SkippedSku(BaseModel):
    sku: str
    days: int


class BacktestOverall(BaseModel):
    skus: int
    scored_skus: int
    mase: float | None
    mase_seasonal_naive: float | None
    mase_auto_ets: float | None
    beats_seasonal_naive: int
    beats_auto_ets: int
    skipped: list[SkippedSku]


class BacktestReport(BaseModel):
    """What `orderflow forecast backtest` prints; MASE is null where it has no finite value."""

    horizon: int
    skus: list[SkuBacktest]
    overall: BacktestOverall


def backtest_report(series: dict[str, list[float]], horizon: int) -> BacktestReport:
    """Per-SKU and overall MASE; SKUs too short for the hold-out are listed as skipped."""
    if horizon < 1:
        raise SalesFileError("horizon must be at least 1 day")
    minimum = horizon + 2 * SEASON
    results: list[SkuBacktest] = []
    skipped: list[SkippedSku] = []
    for sku, values in series.items():
        if len(values) < minimum:
            skipped.append(SkippedSku(sku=sku, days=len(values)))
            continue
        result = backtest(values, horizon)
        results.append(
            SkuBacktest(
                sku=sku,
                mase=_finite_or_none(result.mase),
                mase_seasonal_naive=_finite_or_none(result.mase_seasonal_naive),
                mase_auto_ets=_finite_or_none(result.mase_auto_ets),
                method=result.method,
            )
        )
    if not results:
        longest = max(len(values) for values in series.values())
        raise SalesFileError(
            f"horizon {horizon} is too long for the data: the longest series has {longest} days "
            f"and a {horizon}-day hold-out needs at least {minimum}"
        )
    # SKUs with a constant history have no error scale; they are reported but not averaged.
    scored = [
        (r.mase, r.mase_seasonal_naive, r.mase_auto_ets)
        for r in results
        if r.mase is not None and r.mase_seasonal_naive is not None and r.mase_auto_ets is not None
    ]
    overall = BacktestOverall(
        skus=len(results),
        scored_skus=len(scored),
        mase=_mean([method for method, _, _ in scored]),
        mase_seasonal_naive=_mean([naive for _, naive, _ in scored]),
        mase_auto_ets=_mean([ets for _, _, ets in scored]),
        beats_seasonal_naive=sum(method < naive for method, naive, _ in scored),
        beats_auto_ets=sum(method < ets for method, _, ets in scored),
        skipped=skipped,
    )
    return BacktestReport(horizon=horizon, skus=results, overall=overall)


def render_table(report: BacktestReport) -> str:
    """The report as a fixed-width table: one row per SKU, then the overall means."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    width = max([len("overall"), *(len(s.sku) for s in report.skus)])
    method_width = max([len("method"), *(len(s.method) for s in report.skus)])
    header = (
        f"{'sku':<{width}}  {'method':<{method_width}}  {'MASE':>6}  {'s-naive':>7}  {'AutoETS':>7}"
    )
    lines = [f"{report.horizon}-day hold-out", header, "-" * len(header)]
    for s in report.skus:
        lines.append(
            f"{s.sku:<{width}}  {s.method:<{method_width}}  {cell(s.mase):>6}  "
            f"{cell(s.mase_seasonal_naive):>7}  {cell(s.mase_auto_ets):>7}"
        )
    overall = report.overall
    lines.append("-" * len(header))
    lines.append(
        f"{'overall':<{width}}  {'(mean)':<{method_width}}  {cell(overall.mase):>6}  "
        f"{cell(overall.mase_seasonal_naive):>7}  {cell(overall.mase_auto_ets):>7}"
    )
    lines.append(
        f"scored {overall.scored_skus} of {overall.skus} SKUs; beats seasonal naive on "
        f"{overall.beats_seasonal_naive}, AutoETS on {overall.beats_auto_ets}"
    )
    if overall.skipped:
        short = ", ".join(f"{s.sku} ({s.days} days)" for s in overall.skipped)
        lines.append(f"skipped, too short for the hold-out: {short}")
    return "\n".join(lines)


def _finite_or_none(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def _mean(values: list[float]) -> float | None:
    return round(math.fsum(values) / len(values), 4) if values else None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@app.command("backtest")
def backtest_command(
    sales: Annotated[Path, typer.Option("--sales", help="CSV with date,sku,quantity rows.")],
    horizon: Annotated[int, typer.Option("--horizon", help="Days held out and forecast.")] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Hold out the last HORIZON days per SKU; MASE of the forecast, seasonal naive and AutoETS."""
    if horizon < 1:
        raise _fail("horizon must be at least 1 day")
    try:
        report = backtest_report(read_daily_sales(sales), horizon)
    except SalesFileError as error:
        raise _fail(str(error)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise _fail(f"cannot read {sales}: {error}") from None
    typer.echo(report.model_dump_json(indent=2) if as_json else render_table(report))


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Days of history.")] = 365,
    skus: Annotated[int, typer.Option("--skus", min=1, help="Number of SKUs.")] = 12,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    start: Annotated[
        str, typer.Option("--start", help="First day, YYYY-MM-DD.")
    ] = DEFAULT_START.isoformat(),
) -> None:
    """Write a synthetic sales history: trends, weekly seasons, promotions, intermittent sellers."""
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"start {start!r} is not YYYY-MM-DD") from None
    histories = generate_sales(days=days, skus=skus, seed=seed, start=first)
    try:
        rows = write_sales_csv(out, histories)
    except OSError as error:
        raise _fail(f"cannot write {out}: {error}") from None
    typer.echo(f"wrote {rows} rows for {skus} SKUs over {days} days to {out}")
