"""The KPI report's money: captured, refunded and disputed amounts of the orders placed in a
period, read from the payment ledger in PostgreSQL (a database of this module's own, so the
period holds exactly these orders)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.report import build_report
from db.pool import create_pool
from db.repositories import orders, payments, refunds
from orderflow.models import Order
from orderflow.settings import get_settings
from tests.helpers import order_json
from tests.servers import fresh_database, prepare

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(postgres_server_url: str) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        yield pool, url
    finally:
        await pool.close()


async def _order(pool: asyncpg.Pool, *, authorised: bool, placed_at: datetime) -> Order:
    body = order_json()  # 25.00 EUR
    if authorised:
        body["payment"] |= {
            "status": "authorized",
            "authorization_expires_at": (placed_at + timedelta(days=7)).isoformat(),
        }
    order = Order.model_validate(body)
    async with pool.acquire() as conn, conn.transaction():
        await orders.insert_order(
            conn,
            order,
            workflow_id=f"order-{order.order_id}",
            placed_at=placed_at,
            status="SHIPPED",
        )
    return order


async def _operation(
    pool: asyncpg.Pool, order_id: str, kind: str, amount: str, status: str, n: int = 1
) -> None:
    key = f"{kind}-{order_id}-{n}"
    async with pool.acquire() as conn, conn.transaction():
        await payments.claim_operation(
            conn, order_id=order_id, kind=kind, idempotency_key=key, amount=Decimal(amount)
        )
        await payments.record_outcome(conn, key, status=status, psp_id=f"psp-{key}")


async def test_the_report_counts_captured_refunded_and_disputed_money(
    pool: tuple[asyncpg.Pool, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, url = pool
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)

    # Captured at checkout, partly refunded through the PSP (one refund settled, one still
    # pending, one failed), and disputed.
    checkout = await _order(db, authorised=False, placed_at=now)
    await _operation(db, checkout.order_id, "refund", "10.00", "settled", 1)
    await _operation(db, checkout.order_id, "refund", "5.00", "pending", 2)
    await _operation(db, checkout.order_id, "refund", "3.00", "failed", 3)
    async with db.acquire() as conn, conn.transaction():
        await payments.open_dispute(
            conn,
            dispute_id="dp_report_1",
            order_id=checkout.order_id,
            amount=Decimal("15.00"),
            reason="fraudulent",
            opened_at=now,
        )
    # Authorised, captured at shipment; a capture the card issuer refused counts nothing.
    captured = await _order(db, authorised=True, placed_at=now)
    await _operation(db, captured.order_id, "capture", "25.00", "refused", 1)
    await _operation(db, captured.order_id, "capture", "25.00", "succeeded", 2)
    # Authorised and voided: nothing captured.
    voided = await _order(db, authorised=True, placed_at=now)
    await _operation(db, voided.order_id, "void", "0", "succeeded")
    # Refunded before the ledger had PSP refunds: its refunds row counts.
    legacy = await _order(db, authorised=False, placed_at=now)
    async with db.acquire() as conn, conn.transaction():
        await refunds.refund(conn, refunds.RefundRequest(order_id=legacy.order_id, reason="old"))
    # Placed before the period: not in its cohort.
    await _order(db, authorised=False, placed_at=start - timedelta(days=1))

    async with db.acquire() as conn:
        report = await build_report(conn, start, end)
    assert report.orders == 4
    assert report.captured_amount == Decimal("75.00")  # checkout, capture, legacy
    assert report.refunded_amount == Decimal("35.00")  # 10.00 settled + the legacy 25.00
    assert report.disputed_amount == Decimal("15.00")
    assert report.money_by_currency["EUR"].captured == Decimal("75.00")

    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        window = ["--from", start.isoformat(), "--to", end.isoformat()]
        as_json = await asyncio.to_thread(CliRunner().invoke, app, ["report", *window, "--json"])
        as_table = await asyncio.to_thread(
            CliRunner().invoke, app, ["report", *window], terminal_width=160
        )
    finally:
        get_settings.cache_clear()
    assert as_json.exit_code == 0, as_json.output
    period = json.loads(as_json.output)["period"]
    assert (period["captured_amount"], period["refunded_amount"], period["disputed_amount"]) == (
        "75.00",
        "35.00",
        "15.00",
    )
    assert as_table.exit_code == 0, as_table.output
    assert "captured" in as_table.output and "75.00" in as_table.output
    assert "disputed" in as_table.output and "15.00" in as_table.output
