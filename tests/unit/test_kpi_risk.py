"""The risk operating point in the KPI report: flag rate, overturned flags and the recall on
orders known to be fraud, with the versions that scored the period's orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policies.kpi import KpiInputs, KpiReport, OrderFacts, compute_kpis, headlines

START = datetime(2026, 11, 2, tzinfo=UTC)
END = START + timedelta(days=7)


def assessed(order_id: str, *, flagged: bool) -> OrderFacts:
    return OrderFacts(
        order_id=order_id,
        order_type="normal",
        channel="web",
        status="APPROVED",
        placed_at=START + timedelta(hours=1),
        lines=1,
        kinds=frozenset({"review_flagged" if flagged else "auto_approved"}),
    )


def test_recall_counts_the_known_fraud_that_was_flagged() -> None:
    orders = [
        assessed("F1", flagged=True),  # rejected by the reviewer: fraud, caught
        assessed("F2", flagged=True),  # approved: overturned
        assessed("A1", flagged=False),  # reported as fraud later: missed
        assessed("A2", flagged=False),
        assessed("A3", flagged=False),
    ]
    report = compute_kpis(
        START,
        END,
        KpiInputs(
            orders=orders,
            review_task_statuses={"F1": "rejected", "F2": "approved"},
            fraud=frozenset({"F1", "A1", "NOT-IN-COHORT"}),
            risk_versions={"F1": 3, "F2": 3, "A1": None, "A2": 3, "A3": 3},
        ),
    )
    assert report.flag_rate == 0.4 and report.overturn_rate == 0.5
    assert (report.labelled_fraud, report.fraud_flagged, report.risk_recall) == (2, 1, 0.5)
    assert report.risk_versions == {"3": 4, "settings": 1}
    assert {h.key: h.value for h in headlines(report)}["risk_recall"] == 0.5


def test_no_known_fraud_has_no_recall_and_old_snapshots_still_load() -> None:
    report = compute_kpis(START, END, KpiInputs(orders=[assessed("A", flagged=False)]))
    assert report.labelled_fraud == 0 and report.risk_recall is None
    stored = report.model_dump(mode="json")
    for key in ("labelled_fraud", "fraud_flagged", "risk_recall", "risk_versions"):
        stored.pop(key)
    assert KpiReport.model_validate(stored).risk_recall is None


def test_forecast_accuracy_per_sku_and_overall() -> None:
    from datetime import date

    from policies.kpi import ForecastFacts, forecast_accuracy

    day = date(2026, 1, 5)
    rows, wape = forecast_accuracy(
        [
            ForecastFacts("A", day, "AutoETS", 2.0, 7, 7),  # forecast 2, sold 1 a day
            ForecastFacts("A", day, "AutoETS", 1.0, 14, 7),  # forecast 1, sold 2 a day
            ForecastFacts("B", day, "Croston", 0.5, 0, 7),  # nothing sold
            ForecastFacts("C", day, "AutoETS", 3.0, 3, 0),  # no days to judge: left out
        ]
    )
    a, b = rows
    assert (a.sku, a.forecasts, a.mean_absolute_error, a.bias) == ("A", 2, 1.0, 0.0)
    assert (b.sku, b.actual_daily, b.bias) == ("B", 0.0, 0.5)
    # Absolute errors 1 + 1 + 0.5 over 1 + 2 + 0 sold a day.
    assert wape == round(2.5 / 3, 4)
    assert forecast_accuracy([]) == ([], None)
