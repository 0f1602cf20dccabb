"""Returns in the KPI report: return rates by reason and by SKU, refunds for returns per
currency and the time from request to refund, read from PostgreSQL rows (a database of this
module's own, so the period holds exactly these orders), shown by `orderflow report` and
stored with the KPI snapshot."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from activities.kpi import KpiActivities
from app.cli import app
from app.report import build_report
from db.pool import create_pool
from db.repositories import kpi as kpi_sql
from db.repositories import orders
from orderflow.models import Order
from orderflow.settings import get_settings
from policies.kpi import KpiPeriod
from tests.helpers import order_json
from tests.servers import fresh_database, prepare

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(days=6), NOW + timedelta(hours=1)
PLACED = NOW - timedelta(days=5)
DELIVERED = NOW - timedelta(days=4)
REQUESTED = NOW - timedelta(days=3)


@pytest.fixture(scope="module")
async def pool(postgres_server_url: str) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        await _returns_of_a_week(pool)
        yield pool, url
    finally:
        await pool.close()


async def _order(
    pool: asyncpg.Pool,
    items: list[tuple[str, int]],
    *,
    delivered: bool = True,
    currency: str = "EUR",
    placed_at: datetime = PLACED,
) -> str:
    order = Order.model_validate(order_json(items=items, currency=currency))
    async with pool.acquire() as conn, conn.transaction():
        await orders.insert_order(
            conn,
            order,
            workflow_id=f"order-{order.order_id}",
            placed_at=placed_at,
            status="DELIVERED" if delivered else "SHIPPED",
        )
        await conn.execute(
            """INSERT INTO shipments (order_id, carrier, tracking_number, delivery_note,
                   service_level, weight_kg, cost, choice_reason, booked_at, expected_delivery,
                   status, delivered_at, last_event_at)
               VALUES ($1, 'dhl', $2, '', 'standard', 1.0, 4.90, 'cheapest', $3, $4, $5, $6, $4)""",
            order.order_id,
            f"TN-{uuid.uuid4().hex[:10]}",
            placed_at,
            placed_at + timedelta(days=1),
            "DELIVERED" if delivered else "IN_TRANSIT",
            placed_at + timedelta(days=1) if delivered else None,
        )
    return order.order_id


async def _return(
    pool: asyncpg.Pool,
    order_id: str,
    lines: list[tuple[str, int]],
    *,
    reason: str,
    status: str,
    refund: str | None = None,
    closed_at: datetime | None = None,
    arrived: bool = False,
) -> str:
    return_id = f"{order_id}-1"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO returns (return_id, order_id, n, status, reason, requested_by,
                   requested_at, arrived_at, refund_amount, closed_at)
               VALUES ($1, $2, 1, $3, $4, 'customer', $5, $6, $7, $8)""",
            return_id,
            order_id,
            status,
            reason,
            REQUESTED,
            REQUESTED + timedelta(hours=12) if arrived else None,
            Decimal(refund) if refund is not None else None,
            closed_at,
        )
        await conn.executemany(
            """INSERT INTO return_lines (return_id, order_id, sku, quantity, unit_price)
               SELECT $1, $2, $3, $4, unit_price FROM order_lines
               WHERE order_id = $2 AND sku = $3""",
            [(return_id, order_id, sku, quantity) for sku, quantity in lines],
        )
    return return_id


async def _returns_of_a_week(pool: asyncpg.Pool) -> None:
    """Four delivered orders (6 mugs, 2 tins), one not delivered, one of the week before."""
    mugs = await _order(pool, [("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)])
    await _return(
        pool,
        mugs,
        [("SKU-RED-MUG", 2)],
        reason="Too small",
        status="REFUNDED",
        refund="25.00",
        closed_at=REQUESTED + timedelta(days=2),
        arrived=True,
    )
    broken = await _order(pool, [("SKU-RED-MUG", 2)])
    await _return(pool, broken, [("SKU-RED-MUG", 1)], reason="broken", status="IN_TRANSIT")
    # Refunded in dollars; the row lacks its closing time, its `return_refunded` event has it.
    dollars = await _order(pool, [("SKU-TEA-TIN", 1)], currency="USD")
    refunded = await _return(
        pool, dollars, [("SKU-TEA-TIN", 1)], reason="too  small", status="REFUNDED", refund="8.90"
    )
    await pool.execute(
        """INSERT INTO order_events (order_id, event_key, step, status, kind, actor, details,
               occurred_at)
           VALUES ($1, $2, 8, NULL, 'return_refunded', 'system', $3, $4)""",
        dollars,
        f"return.{refunded}.refunded",
        {"return_id": refunded, "amount": "8.90"},
        REQUESTED + timedelta(days=1),
    )
    # Refused by customer service: nothing sent back.
    refused = await _order(pool, [("SKU-RED-MUG", 2)])
    await _return(pool, refused, [("SKU-RED-MUG", 2)], reason="changed my mind", status="REJECTED")
    # Not delivered: neither delivered units nor returns.
    await _order(pool, [("SKU-RED-MUG", 5)], delivered=False)
    # Placed the week before: not in the period's cohort.
    earlier = await _order(pool, [("SKU-RED-MUG", 1)], placed_at=START - timedelta(days=1))
    await _return(pool, earlier, [("SKU-RED-MUG", 1)], reason="broken", status="REFUNDED")


async def test_the_report_counts_returns_by_reason_and_sku_and_their_refunds(
    pool: tuple[asyncpg.Pool, str],
) -> None:
    db, _ = pool
    async with db.acquire() as conn:
        report = await build_report(conn, START, END)
    assert report.orders == 5
    assert (report.delivered_orders, report.delivered_units) == (4, 8)
    assert (report.returns, report.orders_returned, report.returned_units) == (3, 3, 4)
    assert (report.order_return_rate, report.return_rate) == (0.75, 0.5)
    assert [
        (r.reason, r.returns, r.units, r.orders, r.share_of_delivered_orders)
        for r in report.returns_by_reason
    ] == [("too small", 2, 3, 2, 0.5), ("broken", 1, 1, 1, 0.25)]
    assert [
        (k.sku, k.delivered_units, k.returned_units, k.return_rate) for k in report.returns_by_sku
    ] == [("SKU-RED-MUG", 6, 3, 0.5), ("SKU-TEA-TIN", 2, 1, 0.5)]
    assert report.return_refunds == 2
    assert {c: (m.refunds, m.amount) for c, m in report.return_refunds_by_currency.items()} == {
        "EUR": (1, Decimal("25.00")),
        "USD": (1, Decimal("8.90")),
    }
    # Two days (closing time of the row) and one day (its event).
    wait = report.time_to_refund_seconds
    assert wait.count == 2
    assert wait.p50 == pytest.approx(1.5 * 86400)
    assert wait.p95 == pytest.approx(1.95 * 86400)


async def test_the_report_command_shows_the_returns(
    pool: tuple[asyncpg.Pool, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = pool
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    page = tmp_path / "kpi.html"
    try:
        window = ["--from", START.isoformat(), "--to", END.isoformat()]
        runner = CliRunner()
        as_json = await asyncio.to_thread(runner.invoke, app, ["report", *window, "--json"])
        as_table = await asyncio.to_thread(
            runner.invoke, app, ["report", *window, "--html", str(page)], terminal_width=160
        )
    finally:
        get_settings.cache_clear()
    assert as_json.exit_code == 0, as_json.output
    period = json.loads(as_json.output)["period"]
    assert period["return_rate"] == 0.5
    assert period["return_refunded_amount"] == "33.90"
    assert period["return_refunds_by_currency"]["USD"] == {"refunds": 1, "amount": "8.90"}
    assert period["returns_by_reason"][0]["reason"] == "too small"

    assert as_table.exit_code == 0, as_table.output
    text = as_table.output
    assert "returns by reason" in text and "too small" in text and "broken" in text
    assert "return rate by SKU" in text and "SKU-RED-MUG" in text and "50.0%" in text
    assert "refunds for returns" in text and "USD" in text and "8.90" in text
    assert "time to refund p50 36.0 h, p95 46.8 h (2 refunds)" in " ".join(text.split())
    assert "return rate (units)" in text

    html = page.read_text()
    assert "<h2>Returns</h2>" in html and "too small" in html
    assert 'alt="Returns by reason"' in html and 'alt="Return rate by SKU"' in html
    assert re.search(r"<td>SKU-TEA-TIN</td><td>2</td><td>1</td><td>50.0%</td>", html)


async def test_the_kpi_snapshot_stores_the_returns(pool: tuple[asyncpg.Pool, str]) -> None:
    db, _ = pool
    result = await KpiActivities(db).store_kpi_snapshot(
        KpiPeriod(period_start=START, period_end=END)
    )
    assert result.orders == 5
    stored = await kpi_sql.snapshot(db, START, END)
    assert stored is not None
    assert (stored["returns"], stored["return_rate"]) == (3, 0.5)
    assert stored["return_refunds_by_currency"]["EUR"]["amount"] == "25.00"
    assert stored["time_to_refund_seconds"]["count"] == 2
