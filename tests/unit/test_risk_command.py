"""`orderflow risk generate` and `orderflow risk evaluate` on small generated data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.commands.risk import app
from orderflow.models import Address, Customer, Order, OrderItem, Payment
from orderflow.models.risk import RiskConfig

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("risk-data")
    code, stdout, _ = run(
        "generate", "--out-dir", str(out), "--seed", "3",
        "--history-days", "45", "--order-days", "20", "--scale", "0.6",
    )  # fmt: skip
    assert code == 0, stdout
    summary = json.loads(stdout)
    assert summary["anomalous"] > 20
    return out


@pytest.fixture(scope="module")
def figures(data: Path) -> dict[str, Any]:
    code, stdout, stderr = run(
        "evaluate", "--history", str(data / "history.jsonl"), "--orders", str(data / "orders.jsonl")
    )
    assert code == 0, stderr
    result: dict[str, Any] = json.loads(stdout)
    return result


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_generate_writes_history_labelled_orders_and_block_lists(data: Path) -> None:
    history, orders = lines(data / "history.jsonl"), lines(data / "orders.jsonl")
    assert history and orders
    assert all("anomalous" not in o for o in history)
    assert all(isinstance(o["anomalous"], bool) and o["scenario"] for o in orders)
    assert max(o["placed_at"] for o in history) < min(o["placed_at"] for o in orders)
    for raw in history[:50] + orders[:50]:
        Order.model_validate({k: v for k, v in raw.items() if k not in ("anomalous", "scenario")})
    kinds = {o["scenario"] for o in orders if o["anomalous"]}
    assert {"velocity_burst", "failed_payment", "account_takeover"} <= kinds
    lookalikes = {o["scenario"] for o in orders if not o["anomalous"]}
    assert {"wholesale", "traveller", "regular_big_order"} <= lookalikes
    block = json.loads((data / "block_list.json").read_text())
    assert block["emails"] and block["postal_codes"]


def test_generate_is_reproducible_from_its_seed(data: Path, tmp_path: Path) -> None:
    args = ["--history-days", "45", "--order-days", "20", "--scale", "0.6"]
    assert run("generate", "--out-dir", str(tmp_path / "a"), "--seed", "3", *args)[0] == 0
    assert run("generate", "--out-dir", str(tmp_path / "b"), "--seed", "4", *args)[0] == 0
    same = (tmp_path / "a" / "orders.jsonl").read_text()
    assert same == (data / "orders.jsonl").read_text()
    assert same != (tmp_path / "b" / "orders.jsonl").read_text()


def test_evaluate_prints_the_figures(data: Path, figures: dict[str, Any]) -> None:
    for key in ("precision", "recall", "flag_rate"):
        assert 0 <= figures[key] <= 1
    assert figures["n"] == len(lines(data / "orders.jsonl"))
    assert figures["tp"] + figures["fp"] + figures["fn"] + figures["tn"] == figures["n"]
    assert figures["recall"] == pytest.approx(
        figures["tp"] / (figures["tp"] + figures["fn"]), abs=1e-4
    )
    assert figures["block_list"] == str(data / "block_list.json")
    assert set(figures["recall_by_kind"]) == {
        o["scenario"] for o in lines(data / "orders.jsonl") if o["anomalous"]
    }


def test_the_score_beats_trivial_baselines(data: Path, figures: dict[str, Any]) -> None:
    orders = lines(data / "orders.jsonl")
    anomalous = [o for o in orders if o["anomalous"]]
    # Flagging at random at the same rate: precision = anomaly rate, recall = flag rate.
    assert figures["precision"] > 5 * figures["anomaly_rate"]
    assert figures["recall"] > 5 * figures["flag_rate"]
    # Flagging every payment that is not captured: catches failed payments, little else.
    uncaptured = [o for o in orders if o["payment"]["status"] != "captured"]
    baseline_recall = sum(o["anomalous"] for o in uncaptured) / len(anomalous)
    baseline_precision = sum(o["anomalous"] for o in uncaptured) / len(uncaptured)
    assert figures["recall"] > baseline_recall + 0.2
    assert figures["precision"] > baseline_precision + 0.2
    assert figures["precision"] >= 0.7 and figures["recall"] >= 0.7


def test_the_order_of_lines_does_not_matter(
    data: Path, figures: dict[str, Any], tmp_path: Path
) -> None:
    shuffled = tmp_path / "orders.jsonl"
    text = (data / "orders.jsonl").read_text().splitlines()
    shuffled.write_text("\n".join(reversed(text)) + "\n")
    code, stdout, _ = run(
        "evaluate", "--history", str(data / "history.jsonl"), "--orders", str(shuffled),
        "--block-list", str(data / "block_list.json"),
    )  # fmt: skip
    assert code == 0
    again = json.loads(stdout)
    assert {k: again[k] for k in ("tp", "fp", "fn", "tn")} == {
        k: figures[k] for k in ("tp", "fp", "fn", "tn")
    }


def test_without_the_block_list_blocked_orders_slip_through(
    data: Path, figures: dict[str, Any], tmp_path: Path
) -> None:
    orders = tmp_path / "orders.jsonl"
    orders.write_text((data / "orders.jsonl").read_text())
    code, stdout, _ = run(
        "evaluate", "--history", str(data / "history.jsonl"), "--orders", str(orders)
    )
    assert code == 0
    blind = json.loads(stdout)
    assert blind["block_list"] is None
    assert blind["tp"] < figures["tp"]


def test_a_higher_threshold_flags_less(data: Path, figures: dict[str, Any]) -> None:
    code, stdout, _ = run(
        "evaluate", "--history", str(data / "history.jsonl"),
        "--orders", str(data / "orders.jsonl"), "--threshold", "90",
    )  # fmt: skip
    assert code == 0
    strict = json.loads(stdout)
    assert strict["threshold"] == 90
    assert strict["flag_rate"] < figures["flag_rate"]


# ---- history grows as the labelled orders are replayed ----

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def order_line(number: int, minutes: int, *, anomalous: bool) -> str:
    item = OrderItem(sku="SKU-RED-MUG", quantity=1, unit_price=Decimal("12.50"))
    order = Order(
        order_id=f"B-{number}",
        channel="web",
        customer=Customer(id="C-BURST", email="burst@example.com", name="Bo Burst"),
        items=[item],
        currency="EUR",
        shipping_address=Address(
            name="Bo Burst", line1="1 Dock Rd", city="Bremen", postal_code="28195", country="DE"
        ),
        payment=Payment(
            method="card",
            transaction_id=f"pay_b{number}",
            amount=item.line_total,
            status="captured",
        ),
        placed_at=T0 + timedelta(minutes=minutes),
    )
    return json.dumps({**order.model_dump(mode="json"), "anomalous": anomalous})


def test_earlier_labelled_orders_become_history_for_later_ones(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text("")
    # Four orders in half an hour from one customer: only the last has three before it.
    (tmp_path / "orders.jsonl").write_text(
        "\n".join(
            [
                order_line(4, 30, anomalous=True),
                order_line(1, 0, anomalous=False),
                order_line(2, 10, anomalous=False),
                order_line(3, 20, anomalous=False),
            ]
        )
    )
    code, stdout, stderr = run(
        "evaluate", "--history", str(tmp_path / "history.jsonl"),
        "--orders", str(tmp_path / "orders.jsonl"),
    )  # fmt: skip
    assert code == 0, stderr
    figures = json.loads(stdout)
    assert (figures["tp"], figures["fp"], figures["fn"], figures["tn"]) == (1, 0, 0, 3)
    assert figures["precision"] == 1 and figures["recall"] == 1 and figures["flag_rate"] == 0.25


# ---- bad input ----


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: "{not json", "not valid JSON"),
        (lambda o: json.dumps([o]), "expected a JSON object"),
        (lambda o: json.dumps({k: v for k, v in o.items() if k != "anomalous"}), "`anomalous`"),
        (lambda o: json.dumps({**o, "anomalous": "yes"}), "`anomalous`"),
        (
            lambda o: json.dumps({**o, "items": [{**o["items"][0], "quantity": -1}]}),
            "items.0.quantity",
        ),
        (lambda o: json.dumps({k: v for k, v in o.items() if k != "placed_at"}), "placed_at"),
    ],
)
def test_an_invalid_line_is_skipped_and_named(tmp_path: Path, mutate: Any, message: str) -> None:
    (tmp_path / "history.jsonl").write_text("")
    good = [order_line(n, n, anomalous=False) for n in (1, 2)]
    bad = mutate(json.loads(order_line(3, 3, anomalous=False)))
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n".join([good[0], bad, good[1]]) + "\n")
    code, stdout, stderr = run(
        "evaluate", "--history", str(tmp_path / "history.jsonl"), "--orders", str(orders)
    )
    assert code == 0, stderr
    figures = json.loads(stdout)
    assert figures["n"] == 2 and figures["tn"] == 2
    assert figures["skipped_rows"] == 1
    [error] = figures["input_errors"]
    assert error.startswith(f"{orders}:2:") and message in error
    assert f"skipped {orders}:2:" in stderr and message in stderr


def test_one_sku_on_two_lines_skips_that_order_only(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    past = json.loads(order_line(9, -600, anomalous=False))
    past.pop("anomalous")
    past_bad = {**past, "order_id": "B-10", "items": past["items"] * 2}
    history.write_text(json.dumps(past) + "\n" + json.dumps(past_bad) + "\n")
    raw = json.loads(order_line(3, 3, anomalous=True))
    raw["items"] = raw["items"] * 2
    orders = tmp_path / "orders.jsonl"
    orders.write_text(
        "\n".join(
            [order_line(1, 1, anomalous=False), json.dumps(raw), order_line(2, 2, anomalous=False)]
        )
    )
    code, stdout, stderr = run("evaluate", "--history", str(history), "--orders", str(orders))
    assert code == 0, stderr
    figures = json.loads(stdout)
    assert figures["n"] == 2 and figures["history_orders"] == 1
    assert figures["skipped_rows"] == 2
    assert [e.split(": ", 1)[0] for e in figures["input_errors"]] == [
        f"{history}:2",
        f"{orders}:2",
    ]
    assert all("each SKU may appear on only one line" in e for e in figures["input_errors"])


def test_a_file_without_one_usable_order_exits_2(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text("")
    orders = tmp_path / "orders.jsonl"
    orders.write_text("{not json\n[]\n")
    code, stdout, stderr = run(
        "evaluate", "--history", str(tmp_path / "history.jsonl"), "--orders", str(orders)
    )
    assert code == 2
    assert stdout == ""
    assert f"skipped {orders}:1:" in stderr and f"skipped {orders}:2:" in stderr
    assert "no usable labelled order" in stderr


def test_an_order_in_both_files_is_skipped_the_second_time(tmp_path: Path) -> None:
    line = order_line(1, 0, anomalous=False)
    (tmp_path / "history.jsonl").write_text(line + "\n")
    (tmp_path / "orders.jsonl").write_text(order_line(2, 5, anomalous=False) + "\n" + line + "\n")
    code, stdout, stderr = run(
        "evaluate", "--history", str(tmp_path / "history.jsonl"),
        "--orders", str(tmp_path / "orders.jsonl"),
    )  # fmt: skip
    assert code == 0, stderr
    figures = json.loads(stdout)
    assert figures["n"] == 1 and figures["history_orders"] == 1
    assert "orders.jsonl:2:" in stderr and "B-1 appears twice" in stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, stderr = run(
        "evaluate", "--history", str(tmp_path / "nope.jsonl"), "--orders", str(tmp_path / "x")
    )
    assert code == 2
    assert "nope.jsonl: no such file" in stderr


# ---- calibrate ----


def test_calibrate_prints_an_operating_point_meeting_the_target(data: Path) -> None:
    code, stdout, stderr = run(
        "calibrate", "--history", str(data / "history.jsonl"),
        "--orders", str(data / "orders.jsonl"), "--target-recall", "0.8", "--flag-budget", "0.1",
    )  # fmt: skip
    assert code == 0, stderr
    point = json.loads(stdout)
    assert point["n"] == len(lines(data / "orders.jsonl"))
    assert point["target"]["recall"] == 0.8 and point["target"]["flag_budget"] == 0.1
    assert point["target_met_on_train"]
    train, holdout = point["train"], point["holdout"]
    assert train["recall"] >= 0.8 and train["flag_rate"] <= 0.1
    assert train["n"] + holdout["n"] == point["n"]
    assert point["incumbent"]["threshold"] == 50.0
    # The printed threshold gives the printed figures when evaluated on all orders.
    code, stdout, _ = run(
        "evaluate", "--history", str(data / "history.jsonl"),
        "--orders", str(data / "orders.jsonl"), "--threshold", str(point["threshold"]),
    )  # fmt: skip
    assert code == 0
    whole = json.loads(stdout)
    assert whole["tp"] == train["tp"] + holdout["tp"]
    assert whole["tp"] + whole["fp"] == train["flagged"] + holdout["flagged"]


def test_calibrate_without_enough_fraud_exits_1(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text("")
    (tmp_path / "orders.jsonl").write_text(
        "\n".join(order_line(n, n, anomalous=False) for n in range(1, 6))
    )
    code, stdout, stderr = run(
        "calibrate", "--history", str(tmp_path / "history.jsonl"),
        "--orders", str(tmp_path / "orders.jsonl"),
    )  # fmt: skip
    assert code == 1
    assert json.loads(stdout)["threshold"] is None
    assert "too few labelled frauds" in stderr


def test_calibrate_a_learned_model_and_evaluate_with_it(data: Path, tmp_path: Path) -> None:
    code, stdout, stderr = run(
        "calibrate", "--history", str(data / "history.jsonl"),
        "--orders", str(data / "orders.jsonl"), "--model", "logistic",
        "--target-recall", "0.8", "--flag-budget", "0.1",
    )  # fmt: skip
    assert code == 0, stderr
    point = json.loads(stdout)
    assert point["model"] == "logistic"
    assert set(point["weights"]) == set(RiskConfig().weights)
    assert point["train"]["recall"] >= 0.8
    saved = tmp_path / "point.json"
    saved.write_text(stdout)
    code, stdout, stderr = run(
        "evaluate", "--history", str(data / "history.jsonl"),
        "--orders", str(data / "orders.jsonl"), "--operating-point", str(saved),
    )  # fmt: skip
    assert code == 0, stderr
    whole = json.loads(stdout)
    # Scored by score_order with the learned weights, the same orders are flagged as the
    # calibration counted from the signals' strengths.
    assert whole["threshold"] == point["threshold"]
    assert whole["tp"] == point["train"]["tp"] + point["holdout"]["tp"]
    assert whole["tp"] + whole["fp"] == point["train"]["flagged"] + point["holdout"]["flagged"]


def test_an_unreadable_operating_point_exits_2(data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "point.json"
    bad.write_text('{"threshold": "high"}')
    code, _, stderr = run(
        "evaluate", "--history", str(data / "history.jsonl"),
        "--orders", str(data / "orders.jsonl"), "--operating-point", str(bad),
    )  # fmt: skip
    assert code == 2 and "expected the JSON of `orderflow risk calibrate`" in stderr
