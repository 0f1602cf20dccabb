"""`orderflow risk`: evaluate and calibrate the risk score on labelled orders; generate them.

`evaluate` replays history as production would see it: every order of the labelled file is
scored as of its `placed_at` against all orders placed before it (the history file and the
earlier labelled orders), then joins the history itself. It prints precision, recall and
flag rate as JSON. `calibrate` scores the same way, then chooses the flag threshold that
meets the target operating point (`policies/risk_calibration.py`) offline. A line that is
not a usable order is skipped and named on stderr; the rest are still scored.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, print_json
from app.datagen.risk_orders import HISTORY_DAYS, ORDER_DAYS, write_risk_orders
from orderflow.models import Order, RiskAssessment
from orderflow.models.risk import CalibrationTarget, RiskConfig
from orderflow.settings import get_settings
from policies import risk_calibration, risk_model
from policies.kpi import KpiReport
from policies.risk import score_order
from policies.risk_calibration import LabelledScore
from policies.risk_history import HistoryBook

app = typer.Typer(
    help="Risk review: evaluate the score on labelled orders; generate labelled orders.",
    no_args_is_help=True,
)

LABEL_FIELDS = ("anomalous", "scenario")


class InputError(Exception):
    """An input that cannot be used at all (a missing file, a broken block list)."""


@dataclass(frozen=True)
class RowError:
    """One line of an input file that was skipped, and why."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class LabelledOrder:
    order: Order
    anomalous: bool
    scenario: str | None
    line: int


def _parse_line(path: Path, number: int, text: str, *, labelled: bool) -> LabelledOrder:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object (one order per line)")
    anomalous = data.pop("anomalous", None)
    scenario = data.pop("scenario", None)
    if labelled and not isinstance(anomalous, bool):
        raise ValueError("`anomalous` must be true or false on every order")
    try:
        order = Order.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'order'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid order: {problems}") from None
    if order.placed_at is None:
        raise ValueError(f"order {order.order_id} needs a placed_at to be replayed")
    return LabelledOrder(
        order, bool(anomalous), scenario if isinstance(scenario, str) else None, number
    )


def read_orders(path: Path, *, labelled: bool) -> Iterator[LabelledOrder | RowError]:
    """Orders of a JSON-lines file; labelled files must give each a boolean `anomalous`.
    A line that is not such an order comes back as a `RowError` and reading goes on."""
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                yield _parse_line(path, number, text, labelled=labelled)
            except ValueError as exc:
                yield RowError(path, number, str(exc))


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


@dataclass
class ScoredOrders:
    """Every usable labelled order with its assessment, in time order, and the skipped rows."""

    history_orders: int
    scored: list[tuple[LabelledOrder, RiskAssessment]]
    errors: list[RowError]
    # Each scored order's signal strengths (code -> 0..1), when asked for.
    strengths: list[dict[str, float]] = field(default_factory=list)


def score_labelled(
    history_path: Path, orders_path: Path, config: RiskConfig, *, strengths: bool = False
) -> ScoredOrders:
    """Score every labelled order against the history before it (with `strengths`, also
    each signal's strength, for learning weights). Bad rows of either file are skipped and
    reported; the rest are scored as if the bad ones never existed."""
    probe = risk_model.probe_config(config)
    found: list[dict[str, float]] = []
    book = HistoryBook()
    errors: list[RowError] = []
    for past in read_orders(history_path, labelled=False):
        if isinstance(past, RowError):
            errors.append(past)
            continue
        try:
            book.add(past.order)
        except ValueError as exc:
            errors.append(RowError(history_path, past.line, str(exc)))
    history_size = len(book)
    labelled: list[LabelledOrder] = []
    for item in read_orders(orders_path, labelled=True):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            labelled.append(item)
    labelled.sort(key=lambda o: (o.order.placed_at, o.order.order_id))
    scored: list[tuple[LabelledOrder, RiskAssessment]] = []
    for item in labelled:
        order = item.order
        assert order.placed_at is not None
        try:
            # Added first so a duplicate is refused before it is counted; the summary
            # excludes the order itself, so it is still scored against what came before.
            book.add(order)
        except ValueError as exc:
            errors.append(RowError(orders_path, item.line, str(exc)))
            continue
        summary = book.summary(order, order.placed_at)
        scored.append((item, score_order(order, summary, config)))
        if strengths:
            reasons = score_order(order, summary, probe).reasons
            found.append(
                risk_model.strengths_of(((r.code, r.points) for r in reasons), probe.weights)
            )
    errors.sort(key=lambda e: (str(e.path) != str(history_path), e.line))
    return ScoredOrders(history_size, scored, errors, found)


def confusion(
    scored: list[tuple[LabelledOrder, RiskAssessment]], threshold: float
) -> dict[str, Any]:
    """Precision, recall, flag rate and counts of flagging at `threshold`, also per scenario."""
    counts: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    for item, assessment in scored:
        flagged = assessment.score >= threshold
        outcome = {(True, True): "tp", (True, False): "fp", (False, True): "fn"}.get(
            (flagged, item.anomalous), "tn"
        )
        counts[outcome] += 1
        if item.scenario is not None:
            kinds.setdefault(item.scenario, Counter())[outcome] += 1
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    n = tp + fp + fn + tn
    return {
        "n": n,
        "threshold": threshold,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "flag_rate": _ratio(tp + fp, n),
        "anomaly_rate": _ratio(tp + fn, n),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        # Anomaly kinds: the share caught. Normal scenarios: the share wrongly flagged.
        "recall_by_kind": {
            kind: _ratio(c["tp"], c["tp"] + c["fn"])
            for kind, c in sorted(kinds.items())
            if c["tp"] + c["fn"]
        },
        "flag_rate_of_normal_scenarios": {
            kind: _ratio(c["fp"], c["fp"] + c["tn"])
            for kind, c in sorted(kinds.items())
            if c["fp"] + c["tn"]
        },
    }


def evaluate_orders(history_path: Path, orders_path: Path, config: RiskConfig) -> dict[str, Any]:
    """Score every labelled order against the history before it; the confusion figures,
    with the rows skipped as `input_errors`."""
    result = score_labelled(history_path, orders_path, config)
    figures = confusion(result.scored, config.flag_threshold)
    return {
        "n": figures.pop("n"),
        "history_orders": result.history_orders,
        **figures,
        "skipped_rows": len(result.errors),
        "input_errors": [str(e) for e in result.errors],
    }


def read_block_list(path: Path) -> tuple[list[str], list[str]]:
    """`{"emails": [...], "postal_codes": [...]}` as written by `generate`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the block list ({exc})") from None
    shape = '{"emails": [...], "postal_codes": [...]}'
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected {shape}")
    emails, postal_codes = data.get("emails", []), data.get("postal_codes", [])
    for entries in (emails, postal_codes):
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise InputError(f"{path}: expected {shape} with lists of strings")
    return emails, postal_codes


def with_operating_point(config: RiskConfig, path: Path) -> RiskConfig:
    """`config` with the threshold and (if learned) weights of a `calibrate` result."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the operating point ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("threshold"), int | float):
        raise InputError(f"{path}: expected the JSON of `orderflow risk calibrate`")
    update: dict[str, Any] = {"flag_threshold": float(data["threshold"])}
    weights = data.get("weights")
    if weights is not None:
        try:
            update["weights"] = RiskConfig(weights=weights).weights
        except ValidationError as exc:
            raise InputError(f"{path}: weights: {exc.errors()[0]['msg']}") from None
    return config.model_copy(update=update)


@app.command()
def evaluate(
    history: Annotated[
        Path, typer.Option("--history", help="Past orders, one order JSON per line.")
    ],
    orders: Annotated[
        Path,
        typer.Option("--orders", help="Orders to score, one per line, with boolean `anomalous`."),
    ],
    block_list: Annotated[
        Path | None,
        typer.Option(
            "--block-list",
            help="Extra block lists (JSON with emails, postal_codes). Default: block_list.json "
            "beside the orders file, if there is one.",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", min=0, max=100, help="Flag threshold instead of the configured one."
        ),
    ] = None,
    operating_point: Annotated[
        Path | None,
        typer.Option(
            "--operating-point",
            help="The JSON `calibrate` printed: its threshold (and learned weights) instead "
            "of the configured ones.",
        ),
    ] = None,
) -> None:
    """Score labelled orders as of their placed_at; print precision, recall and flag rate."""
    config = RiskConfig.from_settings(get_settings())
    if operating_point is not None:
        try:
            config = with_operating_point(config, operating_point)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    if threshold is not None:
        config = config.model_copy(update={"flag_threshold": threshold})
    if block_list is None and (orders.parent / "block_list.json").is_file():
        block_list = orders.parent / "block_list.json"
    try:
        for path in (history, orders):
            if not path.is_file():
                raise InputError(f"{path}: no such file")
        if block_list is not None:
            emails, postal_codes = read_block_list(block_list)
            config = config.with_block_lists(emails=emails, postal_codes=postal_codes)
        figures = evaluate_orders(history, orders, config)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _report_skipped(figures["input_errors"])
    if figures["n"] == 0:
        typer.echo(f"error: {orders}: no usable labelled order", err=True)
        raise typer.Exit(2)
    figures["block_list"] = str(block_list) if block_list is not None else None
    typer.echo(json.dumps(figures, indent=2))


def _report_skipped(errors: list[str]) -> None:
    for error in errors:
        typer.echo(f"skipped {error}", err=True)


@app.command()
def calibrate(
    history: Annotated[
        Path, typer.Option("--history", help="Past orders, one order JSON per line.")
    ],
    orders: Annotated[
        Path,
        typer.Option("--orders", help="Labelled orders to calibrate on, with boolean `anomalous`."),
    ],
    block_list: Annotated[
        Path | None,
        typer.Option(
            "--block-list",
            help="Extra block lists (JSON with emails, postal_codes). Default: block_list.json "
            "beside the orders file, if there is one.",
        ),
    ] = None,
    target_recall: Annotated[
        float | None,
        typer.Option("--target-recall", min=0, max=1, help="Default ORDERFLOW_RISK_TARGET_RECALL."),
    ] = None,
    flag_budget: Annotated[
        float | None,
        typer.Option("--flag-budget", min=0, max=1, help="Default ORDERFLOW_RISK_FLAG_BUDGET."),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(
            "--holdout", min=0.05, max=0.95, help="Default ORDERFLOW_RISK_CALIBRATION_HOLDOUT."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="threshold: a new threshold for the configured weights; logistic: learned "
            "weights (logistic regression over the signals) and their threshold.",
        ),
    ] = "threshold",
) -> None:
    """Offline calibration: choose the flag threshold (and with --model logistic the
    weights) meeting the target on the earlier labelled orders, judge it on the latest ones
    beside the configured operating point, and print the chosen one as JSON (`evaluate
    --operating-point` reads it back)."""
    if model not in ("threshold", "logistic"):
        raise typer.BadParameter("--model is threshold or logistic")
    settings = get_settings()
    config = RiskConfig.from_settings(settings)
    overrides = {
        key: value
        for key, value in (
            ("recall", target_recall),
            ("flag_budget", flag_budget),
            ("holdout", holdout),
        )
        if value is not None
    }
    target = CalibrationTarget.from_settings(settings).model_copy(update=overrides)
    if block_list is None and (orders.parent / "block_list.json").is_file():
        block_list = orders.parent / "block_list.json"
    try:
        for path in (history, orders):
            if not path.is_file():
                raise InputError(f"{path}: no such file")
        if block_list is not None:
            emails, postal_codes = read_block_list(block_list)
            config = config.with_block_lists(emails=emails, postal_codes=postal_codes)
        result = score_labelled(history, orders, config, strengths=model == "logistic")
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _report_skipped([str(e) for e in result.errors])
    samples = [
        LabelledScore(item.order.order_id, item.order.placed_at, assessment.score, item.anomalous)
        for item, assessment in result.scored
        if item.order.placed_at is not None
    ]
    if model == "logistic":
        signals = [
            risk_model.LabelledSignals(s.order_id, s.placed_at, strengths, s.fraud)
            for s, strengths in zip(samples, result.strengths, strict=True)
        ]
        calibration = risk_model.calibrate_learned(
            signals, target, config.weights, config.flag_threshold
        )
    else:
        calibration = risk_calibration.calibrate(samples, target, config.flag_threshold)
    out = calibration.model_dump(mode="json")
    out["n"] = len(samples)
    out["skipped_rows"] = len(result.errors)
    typer.echo(json.dumps(out, indent=2))
    if calibration.threshold is None:
        typer.echo(f"error: {calibration.reason}", err=True)
        raise typer.Exit(1)


@app.command()
def label(
    order_id: str,
    fraud: Annotated[
        bool,
        typer.Option("--fraud/--legit", help="The order was fraud, or it was legitimate."),
    ],
    note: Annotated[str | None, typer.Option("--note", help="What the report says.")] = None,
) -> None:
    """Report an order's outcome (through the API, as reviewer); the calibration learns it."""
    body = {"label": "fraud" if fraud else "legit", "note": note}
    print_json(call_api("POST", f"/orders/{order_id}/fraud-report", role="reviewer", body=body))


@app.command()
def versions() -> None:
    """The calibrated versions of the risk threshold, newest first (through the API)."""
    print_json(call_api("GET", "/risk/versions", role="reviewer"))


def operating_point(report: KpiReport) -> dict[str, Any]:
    """The risk figures of one period's KPI report."""
    return {
        "period_start": report.period_start.isoformat(),
        "period_end": report.period_end.isoformat(),
        "assessed": report.assessed,
        "flagged": report.flagged,
        "flag_rate": report.flag_rate,
        "reviewer_decisions": report.reviewer_decisions,
        "overturned": report.overturned,
        "overturn_rate": report.overturn_rate,
        "review_timeouts": report.review_timeouts,
        "labelled_fraud": report.labelled_fraud,
        "fraud_flagged": report.fraud_flagged,
        "recall": report.risk_recall,
        "versions": report.risk_versions,
    }


@app.command()
def trend(
    weeks: Annotated[int, typer.Option("--weeks", min=1, max=104)] = 8,
    to: Annotated[
        str | None,
        typer.Option("--to", help="End of the last week, ISO time (default now; UTC)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The risk operating point week by week (orders placed in each week, with what is known
    of them now): flag rate, flags overturned by reviewers, recall on known fraud, and the
    risk versions that scored them."""
    from app.report import build_report
    from db.pool import connect

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")
    try:
        end = datetime.fromisoformat(to) if to else datetime.now(UTC)
    except ValueError:
        raise typer.BadParameter(f"--to {to!r} is not an ISO time") from None
    end = end if end.tzinfo else end.replace(tzinfo=UTC)

    async def build() -> list[KpiReport]:
        conn = await connect(settings.database_url or "")
        try:
            return [
                await build_report(conn, end - timedelta(weeks=w + 1), end - timedelta(weeks=w))
                for w in reversed(range(weeks))
            ]
        finally:
            await conn.close()

    points = [operating_point(r) for r in asyncio.run(build())]
    if as_json:
        typer.echo(json.dumps(points, indent=2))
        return
    table = Table(title="risk operating point by week")
    for column in ("week from", "assessed", "flag rate", "overturned", "known fraud", "recall",
                   "versions"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("week from", "versions") else "right")
    for p in points:
        table.add_row(
            p["period_start"][:10],
            str(p["assessed"]),
            _percent(p["flag_rate"]),
            _percent(p["overturn_rate"]),
            str(p["labelled_fraud"]),
            _percent(p["recall"]),
            ", ".join(f"{v}: {n}" for v, n in p["versions"].items()),
        )
    Console().print(table)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where to write the files.")],
    seed: Annotated[int, typer.Option("--seed")] = 7,
    history_days: Annotated[int, typer.Option("--history-days", min=1)] = HISTORY_DAYS,
    order_days: Annotated[int, typer.Option("--order-days", min=1)] = ORDER_DAYS,
    scale: Annotated[
        float, typer.Option("--scale", min=0.01, help="Multiplies order volume.")
    ] = 1.0,
) -> None:
    """Write history.jsonl, labelled orders.jsonl and block_list.json of a synthetic shop."""
    summary = write_risk_orders(
        out_dir, seed=seed, history_days=history_days, order_days=order_days, scale=scale
    )
    typer.echo(json.dumps({"out_dir": str(out_dir), **summary}, indent=2))
