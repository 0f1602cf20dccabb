"""The KPI report over real event data: orders run through the real stack (one flagged and
approved by a reviewer, one rejected, one backordered until goods arrive), on a database
of this module's own so the period holds exactly these orders."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from app.cli import app
from app.report import build_report, report_html, tables
from db.pool import connect
from db.repositories import catalogue
from orderflow.models import OrderPolicy
from orderflow.settings import get_settings
from policies.kpi import KpiReport, step_durations
from tests.helpers import order_json, wait_for_status
from tests.servers import Stack, fresh_database, prepare, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def own_database(postgres_server_url: str) -> str:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    return url


@pytest.fixture(scope="module")
async def period(
    temporal_env: WorkflowEnvironment, own_database: str
) -> AsyncIterator[tuple[Stack, datetime, datetime, dict[str, str]]]:
    """Run a small day of the shop and return (stack, start, end, order ids by role)."""
    start = datetime.now(UTC) - timedelta(seconds=1)
    async with running_stack(temporal_env, own_database, policy=OrderPolicy.instant()) as stack:
        ids = await _run_orders(stack)
        end = datetime.now(UTC) + timedelta(seconds=1)
        yield stack, start, end, ids


async def _place(stack: Stack, body: dict) -> str:
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    return str(body["order_id"])


async def _run_orders(stack: Stack) -> dict[str, str]:
    sku = f"SKU-RPT-{uuid.uuid4().hex[:6].upper()}"
    async with stack.pool.acquire() as conn:
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name="Report kettle",
            unit_price=Decimal("12.50"),
            weight_kg=Decimal("1.0"),
            bin_location="R-1",
        )
        await catalogue.ensure_stock(conn, sku=sku, on_hand=1, reorder_point=0, order_up_to=0)
    ids = {
        "web": await _place(stack, order_json(channel="web")),
        "mobile": await _place(stack, order_json(channel="mobile", items=[("SKU-TEA-TIN", 2)])),
        "approved": await _place(stack, order_json(payment_status="failed")),
        "rejected": await _place(stack, order_json(payment_status="failed", channel="marketplace")),
        "backordered": await _place(stack, order_json(items=[(sku, 3), ("SKU-RED-MUG", 1)])),
    }
    for role, note in (("approved", "called the customer"), ("rejected", "stolen card")):
        await wait_for_status(stack.pool, ids[role], "PENDING_REVIEW")
        decision = "approve" if role == "approved" else "reject"
        response = await stack.http(
            "POST",
            f"/reviews/{ids[role]}/decision",
            role="reviewer",
            json={"decision": decision, "note": note},
        )
        assert response.status_code == 200, response.text
    await wait_for_status(stack.pool, ids["backordered"], "BACKORDERED")
    receipt = await stack.http(
        "POST",
        "/purchasing/receipts",
        role="purchasing",
        json={"sku": sku, "quantity": 5},
        headers={"Idempotency-Key": f"receipt-{sku}"},
    )
    assert receipt.status_code == 201, receipt.text
    for role in ("web", "mobile", "approved", "backordered"):
        await wait_for_status(stack.pool, ids[role], "COMPLETED")
    await wait_for_status(stack.pool, ids["rejected"], "REJECTED")

    # Customers' feedback and reviews of the period (their own endpoints belong to step 7/8).
    async with stack.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO feedback_tickets (ticket_id, order_id, request_key, category,
                   department, message, status, created_at, resolved_at)
               VALUES ('T-R1', $1, 'T-R1', 'delivery', 'logistics', 'late', 'resolved',
                       now() - interval '3 hours', now() - interval '1 hour'),
                      ('T-R2', $2, 'T-R2', 'product', 'quality', 'chipped', 'open', now(), NULL)""",
            ids["web"],
            ids["mobile"],
        )
        await conn.execute(
            "INSERT INTO product_reviews (order_id, rating, comment) VALUES ($1, 5, ''), ($2, 2, '')",
            ids["web"],
            ids["approved"],
        )
    return ids


async def _report(stack: Stack, start: datetime, end: datetime) -> KpiReport:
    conn = await connect(stack.database_url)
    try:
        return await build_report(conn, start, end)
    finally:
        await conn.close()


async def test_report_turns_the_event_data_into_kpis(
    period: tuple[Stack, datetime, datetime, dict[str, str]],
) -> None:
    stack, start, end, ids = period
    report = await _report(stack, start, end)

    assert report.orders == 5
    assert report.by_channel == {"marketplace": 1, "mobile": 1, "web": 3}
    assert report.by_type == {"normal": 5}
    assert report.by_status == {"COMPLETED": 4, "REJECTED": 1}
    assert (report.assessed, report.auto_approved, report.flagged) == (5, 3, 2)
    assert report.auto_approval_rate == pytest.approx(0.6)
    assert report.flag_rate == pytest.approx(0.4)
    assert (report.reviewer_decisions, report.overturned) == (2, 1)
    assert report.overturn_rate == 0.5
    assert report.review_decision_seconds.count == 2
    # Stock was tried for the four orders past review; one line of one order was short.
    assert (report.stock_checked, report.backordered) == (4, 1)
    assert report.lines_checked == 5 and report.lines_short == 1
    assert report.skus_short[0].startswith("SKU-RPT-")
    # The simulated carrier delivers at once: on time.
    assert (report.shipments, report.delivered, report.on_time) == (4, 4, 4)
    assert report.on_time_rate == 1.0 and report.follow_ups == 0
    assert [(f.department, f.category, f.tickets, f.open) for f in report.feedback] == [
        ("logistics", "delivery", 1, 0),
        ("quality", "product", 1, 1),
    ]
    assert report.feedback[0].resolution_seconds.p50 == pytest.approx(7200, abs=5)
    assert report.reviews == 2 and report.average_rating == 3.5
    # Delivered: 2 + 2 + 2 + 4 units of four orders; nothing sent back (yet).
    assert (report.delivered_orders, report.delivered_units) == (4, 10)
    assert (report.returns, report.return_rate, report.order_return_rate) == (0, 0.0, 0.0)
    assert report.returns_by_sku == [] and report.time_to_refund_seconds.count == 0

    # Every step of the four completed orders has a cycle time; the rejected one stops at 2.
    assert report.step_cycle_seconds["1"].count == 5
    assert report.step_cycle_seconds["3"].count == 4
    assert report.step_cycle_seconds["8"].count == 4
    assert report.lead_time_seconds.count == 4
    lead_p50 = report.lead_time_seconds.p50
    assert lead_p50 is not None and 0 < lead_p50 <= (end - start).total_seconds()
    # Step 4 of the backordered order includes its wait for goods: the slowest step 4.
    rows = await stack.pool.fetch(
        """SELECT status, min(occurred_at) AS at FROM order_events
           WHERE order_id = $1 AND status IS NOT NULL GROUP BY status""",
        ids["backordered"],
    )
    placed = await stack.pool.fetchval(
        "SELECT placed_at FROM orders WHERE order_id = $1", ids["backordered"]
    )
    durations = step_durations(placed, {r["status"]: r["at"] for r in rows})
    step4 = report.step_cycle_seconds["4"]
    assert step4.count == 4 and step4.p50 is not None and step4.p95 is not None
    assert durations[4] >= step4.p95 > step4.p50
    assert sum(durations.values()) == pytest.approx(
        ({r["status"]: r["at"] for r in rows}["COMPLETED"] - placed).total_seconds()
    )

    # An earlier, empty period: nothing to count, no rates.
    empty = await _report(stack, start - timedelta(days=7), start)
    assert empty.orders == 0 and empty.flag_rate is None


async def test_report_command_prints_json_table_and_html(
    period: tuple[Stack, datetime, datetime, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack, start, end, _ = period
    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        window = ["--from", start.isoformat(), "--to", end.isoformat()]
        before = ["--compare-from", (start - timedelta(days=7)).isoformat()]
        before += ["--compare-to", start.isoformat()]
        # The command runs its own event loop: off this test's loop, in a thread.
        result = await asyncio.to_thread(runner.invoke, app, ["report", *window, *before, "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["period"]["orders"] == 5
        assert data["compared_with"]["orders"] == 0
        rows = {r["key"]: r for r in data["comparison"]}
        assert rows["orders"]["before"] == 0 and rows["orders"]["after"] == 5
        assert rows["flag_rate"]["after"] == pytest.approx(0.4)

        page = tmp_path / "kpi.html"
        table = await asyncio.to_thread(
            runner.invoke, app, ["report", *window, "--html", str(page)], terminal_width=160
        )
        assert table.exit_code == 0, table.output
        assert "cycle time of every step" in table.output
        assert "flags overturned" in table.output and "50.0%" in table.output
        assert "returns by reason" in table.output and "refunds for returns" in table.output
        images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page.read_text())
        assert len(images) == 5
        assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)

        bad = await asyncio.to_thread(runner.invoke, app, ["report", "--from", "yesterday"])
        assert bad.exit_code != 0
    finally:
        get_settings.cache_clear()


async def test_html_and_tables_compare_two_periods(
    period: tuple[Stack, datetime, datetime, dict[str, str]],
) -> None:
    stack, start, end, _ = period
    after = await _report(stack, start, end)
    before = await _report(stack, start - timedelta(days=7), start)
    page = report_html(after, before)
    assert "(before) vs" in page and page.count("<img") == 5
    titles = [str(t.title) for t in tables(after, before)]
    assert titles[0].startswith("KPIs: ") and " vs " in titles[0]


async def test_forecasts_are_judged_against_the_week_that_sold_after_them(
    period: tuple[Stack, datetime, datetime, dict[str, str]],
) -> None:
    stack = period[0]
    sku = f"SKU-FC-{uuid.uuid4().hex[:6].upper()}"
    first = datetime(2020, 3, 2, tzinfo=UTC)
    async with stack.pool.acquire() as conn:
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name="Forecast item",
            unit_price=Decimal("5.00"),
            weight_kg=Decimal("0.2"),
            bin_location="F-1",
        )
        for day in range(14):
            await conn.execute(
                "INSERT INTO sales_history (sku, day, quantity) VALUES ($1, $2, $3)",
                sku,
                (first + timedelta(days=day)).date(),
                3 if day < 7 else 5,
            )

        async def plan(run_key: str, as_of: datetime, daily: float, minutes: int = 0) -> None:
            await conn.execute(
                """INSERT INTO replenishment_plans (run_key, sku, as_of, method,
                       mean_daily_demand, sigma, safety_stock, reorder_point, order_up_to,
                       inventory_position, planned_at)
                   VALUES ($1, $2, $3, 'AutoETS', $4, 1, 1, 1, 1, 0,
                           now() + make_interval(mins => $5))""",
                run_key,
                sku,
                as_of.date(),
                daily,
                minutes,
            )

        await plan(f"{sku}-a", first, 2.0)
        # Run again the same day: the later plan is the one judged.
        await plan(f"{sku}-b", first, 4.0, minutes=5)
        await plan(f"{sku}-c", first + timedelta(days=7), 5.0)
        # Its week is not over by the period's end: not judged yet.
        await plan(f"{sku}-d", first + timedelta(days=10), 9.0)

    report = await _report(stack, first, first + timedelta(days=14))
    (row,) = [r for r in report.forecast_accuracy if r.sku == sku]
    # Week one: 4 forecast, 3 sold a day; week two: 5 and 5.
    assert (row.forecasts, row.method) == (2, "AutoETS")
    assert (row.forecast_daily, row.actual_daily) == (4.5, 4.0)
    assert (row.mean_absolute_error, row.bias) == (0.5, 0.5)
    assert report.forecast_wape == pytest.approx(1 / 8)
    titles = [t.title for t in tables(report)]
    assert any(title and title.startswith("forecast against actual") for title in titles)
