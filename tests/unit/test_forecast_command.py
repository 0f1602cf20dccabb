"""`orderflow forecast backtest|generate` through Typer's CliRunner, and the sales generator."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.commands.forecast import app, read_daily_sales
from app.datagen.sales import generate_sales

runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sales_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sales") / "sales.csv"
    result = runner.invoke(app, ["generate", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_generate_writes_date_sku_quantity_rows(sales_csv: Path) -> None:
    with sales_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    histories = generate_sales(days=365, skus=12, seed=7)
    assert list(rows[0]) == ["date", "sku", "quantity"]
    assert len(rows) == sum(1 for history in histories for _ in history.rows())
    assert {row["sku"] for row in rows} == {f"SKU-{n:04d}" for n in range(1, 13)}
    assert all(int(row["quantity"]) > 0 for row in rows)


@pytest.fixture(scope="module")
def small_sales_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sales") / "small.csv"
    arguments = ["generate", "--out", str(path), "--skus", "4", "--days", "150"]
    assert runner.invoke(app, arguments).exit_code == 0
    return path


def test_backtest_reports_per_sku_and_overall_mase_beside_auto_ets(small_sales_csv: Path) -> None:
    arguments = ["backtest", "--sales", str(small_sales_csv), "--horizon", "14", "--json"]
    result = runner.invoke(app, arguments)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    skus = report["skus"]
    overall = report["overall"]
    assert report["horizon"] == 14
    assert len(skus) == 4
    assert set(skus[0]) == {"sku", "mase", "mase_seasonal_naive", "mase_auto_ets", "method"}
    assert overall["skus"] == overall["scored_skus"] == 4
    assert overall["mase"] == pytest.approx(sum(s["mase"] for s in skus) / 4, abs=1e-3)
    assert overall["mase_auto_ets"] == pytest.approx(
        sum(s["mase_auto_ets"] for s in skus) / 4, abs=1e-3
    )
    assert overall["beats_seasonal_naive"] == sum(
        s["mase"] < s["mase_seasonal_naive"] for s in skus
    )
    assert overall["beats_auto_ets"] == sum(s["mase"] < s["mase_auto_ets"] for s in skus)
    assert overall["mase"] < overall["mase_seasonal_naive"]

    table = runner.invoke(app, ["backtest", "--sales", str(small_sales_csv), "--horizon", "14"])

    assert table.exit_code == 0, table.output
    assert "AutoETS" in table.stdout
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line}
    for s in skus:
        assert rows[s["sku"]][1] == s["method"]
        assert float(rows[s["sku"]][4]) == pytest.approx(s["mase_auto_ets"], abs=1e-3)


def test_read_daily_sales_fills_gaps_and_adds_up_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.csv",
        "date,sku,quantity\n"
        "2024-03-01,A,2\n"
        "2024-03-01,A,3\n"
        "2024-03-04,A,1\n"
        "2024-03-03,B,7\n"
        "2024-03-05,B,1\n",
    )

    series = read_daily_sales(path)

    # A runs from its first sale to the last date in the file; B from its own first sale.
    assert series == {"A": [5.0, 0.0, 0.0, 1.0, 0.0], "B": [7.0, 0.0, 1.0]}


def test_short_skus_are_skipped_not_fatal(tmp_path: Path) -> None:
    days = [f"2024-01-{day:02d}" for day in range(1, 32)]
    lines = [f"{day},LONG,{3 + index % 7}" for index, day in enumerate(days)]
    lines.append("2024-01-30,NEW,4")
    path = write(tmp_path / "s.csv", "date,sku,quantity\n" + "\n".join(lines) + "\n")

    result = runner.invoke(app, ["backtest", "--sales", str(path), "--horizon", "7", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["sku"] for s in report["skus"]] == ["LONG"]
    assert report["overall"]["skipped"] == [{"sku": "NEW", "days": 2}]


def test_missing_file_exits_with_code_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "--sales", str(tmp_path / "absent.csv")])

    assert result.exit_code == 2
    assert "not found" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date,sku,quantity\n2024-01-01,A,1\n2024-13-01,A,2\n", "line 3: date"),
        ("date,sku,quantity\n2024-01-01,A,many\n", "line 2: quantity 'many' is not a number"),
        ("date,sku,quantity\n2024-01-01,A,-3\n", "line 2: quantity '-3' must be zero or more"),
        ("date,sku,quantity\n2024-01-01,,3\n", "line 2: empty sku"),
        ("date,sku,quantity\n2024-01-01,A\n", "line 2: expected 3 fields"),
        ("day,sku,units\n2024-01-01,A,1\n", "header must name date,sku,quantity"),
        ("date,sku,quantity\n", "no sales rows"),
        ("", "header must name"),
    ],
)
def test_bad_rows_exit_with_code_2_and_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.csv", text)

    result = runner.invoke(app, ["backtest", "--sales", str(path)])

    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(("horizon", "message"), [("0", "at least 1"), ("400", "too long")])
def test_bad_horizon_exits_with_code_2(sales_csv: Path, horizon: str, message: str) -> None:
    result = runner.invoke(app, ["backtest", "--sales", str(sales_csv), "--horizon", horizon])

    assert result.exit_code == 2
    assert message in result.stderr


def test_generate_is_reproducible_by_seed(tmp_path: Path) -> None:
    first, again, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((first, "3"), (again, "3"), (other, "4")):
        arguments = ["generate", "--out", str(path), "--days", "60", "--skus", "4", "--seed", seed]
        assert runner.invoke(app, arguments).exit_code == 0

    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_generated_sales_have_the_shapes_a_shop_sees() -> None:
    histories = generate_sales(days=365, skus=12, seed=7)
    regular = [h for h in histories if h.kind == "regular"]
    intermittent = [h for h in histories if h.kind == "intermittent"]

    assert len(regular) == 9 and len(intermittent) == 3
    for history in intermittent:
        assert history.quantities.count(0) > 0.5 * 365
    for history in regular:
        assert history.quantities.count(0) < 0.1 * 365
    promoted = [history for history in regular if history.promotion_days]
    assert len(promoted) >= 6
    # Promotion days sell clearly more than an average day of the same SKU.
    for history in promoted:
        on_promotion = [history.quantities[day] for day in history.promotion_days]
        assert sum(on_promotion) / len(on_promotion) > 1.5 * sum(history.quantities) / 365


def test_constant_history_is_reported_but_not_averaged(tmp_path: Path) -> None:
    days = [f"2024-01-{day:02d}" for day in range(1, 29)]
    steady = [f"{day},STEADY,5" for day in days[:-1]] + [f"{days[-1]},STEADY,9"]
    weekly = [f"{day},WEEKLY,{2 + index % 7}" for index, day in enumerate(days)]
    path = write(tmp_path / "s.csv", "date,sku,quantity\n" + "\n".join(steady + weekly) + "\n")

    result = runner.invoke(app, ["backtest", "--sales", str(path), "--horizon", "7", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_sku = {s["sku"]: s for s in report["skus"]}
    assert by_sku["STEADY"]["mase"] is None
    assert report["overall"]["skus"] == 2
    assert report["overall"]["scored_skus"] == 1
    assert report["overall"]["mase"] == by_sku["WEEKLY"]["mase"]
