"""`orderflow risk`: evaluate the risk score on labelled orders, and generate such orders.

`evaluate` replays history as production would see it: every order of the labelled file is
scored as of its `placed_at` against all orders placed before it (the history file and the
earlier labelled orders), then joins the history itself. It prints precision, recall and
flag rate as JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from app.datagen.risk_orders import HISTORY_DAYS, ORDER_DAYS, write_risk_orders
from orderflow.models import Order
from orderflow.models.risk import RiskConfig
from orderflow.settings import get_settings
from policies.risk import score_order
from policies.risk_history import HistoryBook

app = typer.Typer(
    help="Risk review: evaluate the score on labelled orders; generate labelled orders.",
    no_args_is_help=True,
)

LABEL_FIELDS = ("anomalous", "scenario")


class InputError(Exception):
    """A line of an input file that is not a valid order; names the file and line."""


@dataclass(frozen=True)
class LabelledOrder:
    order: Order
    anomalous: bool
    scenario: str | None
    line: int


def read_orders(path: Path, *, labelled: bool) -> Iterator[LabelledOrder]:
    """Orders of a JSON-lines file; labelled files must give each a boolean `anomalous`."""
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(data, dict):
                raise InputError(f"{where}: expected a JSON object (one order per line)")
            anomalous = data.pop("anomalous", None)
            scenario = data.pop("scenario", None)
            if labelled and not isinstance(anomalous, bool):
                raise InputError(f"{where}: `anomalous` must be true or false on every order")
            try:
                order = Order.model_validate(data)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'order'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise InputError(f"{where}: invalid order: {problems}") from None
            if order.placed_at is None:
                raise InputError(
                    f"{where}: order {order.order_id} needs a placed_at to be replayed"
                )
            yield LabelledOrder(
                order, bool(anomalous), scenario if isinstance(scenario, str) else None, number
            )


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def evaluate_orders(history_path: Path, orders_path: Path, config: RiskConfig) -> dict[str, Any]:
    """Score every labelled order against the history before it; the confusion figures."""
    book = HistoryBook()
    for past in read_orders(history_path, labelled=False):
        try:
            book.add(past.order)
        except ValueError as exc:
            raise InputError(f"{history_path}:{past.line}: {exc}") from None
    history_size = len(book)
    labelled = sorted(
        read_orders(orders_path, labelled=True),
        key=lambda o: (o.order.placed_at, o.order.order_id),
    )
    counts: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    for item in labelled:
        order = item.order
        assert order.placed_at is not None
        flagged = score_order(order, book.summary(order, order.placed_at), config).flagged
        outcome = {(True, True): "tp", (True, False): "fp", (False, True): "fn"}.get(
            (flagged, item.anomalous), "tn"
        )
        counts[outcome] += 1
        if item.scenario is not None:
            kinds.setdefault(item.scenario, Counter())[outcome] += 1
        try:
            book.add(order)
        except ValueError as exc:
            raise InputError(f"{orders_path}:{item.line}: {exc}") from None
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    n = tp + fp + fn + tn
    return {
        "n": n,
        "history_orders": history_size,
        "threshold": config.flag_threshold,
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
) -> None:
    """Score labelled orders as of their placed_at; print precision, recall and flag rate."""
    config = RiskConfig.from_settings(get_settings())
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
    figures["block_list"] = str(block_list) if block_list is not None else None
    typer.echo(json.dumps(figures, indent=2))


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
