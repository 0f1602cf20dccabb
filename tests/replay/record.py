"""Records order workflow histories for the replay tests: `python -m tests.replay.record`.

Each scenario runs on a fresh embedded stack and its history is saved as JSON beside this
file. Only scenarios without a file are recorded: never re-record an old one to make a
replay test pass, since a failing replay means orders already running would break. Add a
scenario when the workflow gains a path.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from db.repositories import catalogue, inventory, pre_orders
from orderflow.models import (
    CancelRequest,
    Order,
    OrderPolicy,
    PackedReport,
    PickedReport,
    ReviewDecision,
    StockReceived,
)
from orderflow.models.marketplace import MarketplaceConfig
from orderflow.models.messages import (
    CaptureRetry,
    FeedbackRequest,
    ProductReview,
    ReleaseDateChange,
)
from orderflow.models.risk import RiskCalibrationRequest
from orderflow.settings import Settings
from policies.kpi import KpiSnapshotRequest
from simulators.marketplaces import create_app as create_marketplace
from stack.supervisor import free_port
from starter.marketplace_pollers import start_marketplace_pollers
from starter.process_review_schedule import REVIEW_WORKFLOW_ID, build_review_now
from starter.replenishment import scheduled_input
from tests.helpers import order_json, wait_for_status
from tests.servers import (
    Stack,
    fresh_database,
    postgres_url,
    prepare,
    running_stack,
    serve,
    start_dev_server,
)
from workflows.kpi_snapshot import KpiSnapshotWorkflow
from workflows.marketplace_poller import poller_id
from workflows.replenishment import ReplenishmentWorkflow
from workflows.risk_calibration import RiskCalibrationWorkflow

HISTORIES = Path(__file__).parent / "histories"
MANUAL = OrderPolicy.instant(auto_warehouse=False)


async def _save(name: str, stack: Stack, order_id: str, *, wait: bool = True) -> None:
    handle = stack.client.get_workflow_handle(f"order-{order_id}")
    if wait:
        await handle.result()
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def automatic_path_completed(stack: Stack) -> str:
    order = Order.model_validate(order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)]))
    await stack.storefront.place_order(order)
    return order.order_id


async def _flagged(stack: Stack, decision: ReviewDecision) -> str:
    order = Order.model_validate(order_json(payment_status="failed"))
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order.order_id, "PENDING_REVIEW")
    await stack.storefront.decide_review(order.order_id, decision)
    return order.order_id


async def flagged_then_approved(stack: Stack) -> str:
    return await _flagged(stack, ReviewDecision(decision="approve", reviewer="rita", note="ok"))


async def flagged_then_rejected(stack: Stack) -> str:
    return await _flagged(stack, ReviewDecision(decision="reject", reviewer="rita", note="fraud"))


async def cancelled_while_picking(stack: Stack) -> str:
    order = Order.model_validate(order_json())
    await stack.storefront.place_order(order, policy=MANUAL)
    await wait_for_status(stack.pool, order.order_id, "PICKING")
    await stack.storefront.cancel(order.order_id, "changed my mind")
    return order.order_id


async def cancel_requested_before_recorded(stack: Stack) -> str:
    """A cancel left with the order (the API's "pending" path) before step 1 has run."""
    order = Order.model_validate(order_json())
    await stack.storefront.place_order(order, policy=MANUAL)
    await stack.storefront.request_cancel(
        order.order_id, CancelRequest(reason="ordered by mistake", requested_by="storefront")
    )
    await wait_for_status(stack.pool, order.order_id, "CANCELLED")
    return order.order_id


async def _out_of_stock(stack: Stack, prefix: str) -> str:
    """A product of its own with nothing on hand."""
    sku = f"{prefix}-{uuid.uuid4().hex[:6].upper()}"
    async with stack.pool.acquire() as conn:
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name="Recorded item",
            unit_price=Decimal("12.50"),
            weight_kg=Decimal("0.5"),
            bin_location="R-1",
        )
        await catalogue.ensure_stock(conn, sku=sku, on_hand=0, reorder_point=0, order_up_to=0)
    return sku


async def backordered_then_received(stack: Stack) -> str:
    sku = await _out_of_stock(stack, "SKU-REC")
    order = Order.model_validate(order_json(items=[(sku, 1)]))
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order.order_id, "BACKORDERED")
    async with stack.pool.acquire() as conn, conn.transaction():
        await inventory.receive_stock(
            conn, sku=sku, quantity=1, receipt_key=uuid.uuid4().hex, received_by="recorder"
        )
    await stack.storefront.stock_received(order.order_id, StockReceived(sku=sku, quantity=1))
    return order.order_id


async def manual_path_feedback_and_review(stack: Stack) -> str:
    policy = MANUAL.model_copy(
        update={"quiet_period": timedelta(hours=1), "review_window": timedelta(seconds=3)}
    )
    order = Order.model_validate(order_json())
    await stack.storefront.place_order(order, policy=policy)
    await wait_for_status(stack.pool, order.order_id, "PICKING")
    await stack.storefront.report_picked(order.order_id, PickedReport(by="pia"))
    await stack.storefront.report_packed(order.order_id, PackedReport(weight_kg=1.0, by="pia"))
    await wait_for_status(stack.pool, order.order_id, "DELIVERED")
    await stack.storefront.submit_feedback(
        order.order_id,
        FeedbackRequest(category="other", message="lovely", request_key=uuid.uuid4().hex),
    )
    await stack.storefront.confirm_receipt(order.order_id)
    await stack.storefront.submit_review(order.order_id, ProductReview(rating=5, comment="great"))
    return order.order_id


async def unprocessable_order_rejected(stack: Stack) -> str:
    """Step 1 can never record the order (a time PostgreSQL cannot store): rejected."""
    order = Order.model_validate(
        order_json(placed_at=datetime.fromisoformat("0001-01-01T00:00:00+01:00"))
    )
    await stack.storefront.place_order(order)
    return order.order_id


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the order never got there")


def _authorised(lasts: timedelta = timedelta(days=7)) -> Order:
    body = order_json()
    expires = datetime.now(UTC) + lasts
    body["payment"] |= {"status": "authorized", "authorization_expires_at": expires.isoformat()}
    return Order.model_validate(body)


async def authorised_captured_at_shipment(stack: Stack) -> str:
    order = _authorised()
    await stack.storefront.place_order(order)
    return order.order_id


async def capture_refused_then_retried(stack: Stack) -> str:
    await stack.psp.control(mode="refuse")
    order = _authorised()
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order.order_id, "PACKED")

    async def held() -> bool:
        view = await stack.storefront.get_status(order.order_id)
        return view.awaiting == "payment_capture"

    await _until(held)
    await stack.psp.control(mode="normal")
    await stack.storefront.retry_capture(order.order_id, CaptureRetry(by="fay", note="card ok"))
    return order.order_id


async def authorised_cancelled_voided(stack: Stack) -> str:
    order = _authorised()
    await stack.storefront.place_order(order, policy=MANUAL)
    await wait_for_status(stack.pool, order.order_id, "PICKING")
    await stack.storefront.cancel(order.order_id, "changed my mind")
    return order.order_id


async def captured_cancelled_refunded(stack: Stack) -> str:
    order = Order.model_validate(order_json())
    await stack.storefront.place_order(order, policy=MANUAL)
    await wait_for_status(stack.pool, order.order_id, "PICKING")
    await stack.storefront.cancel(order.order_id, "changed my mind")
    return order.order_id


async def _backordered(stack: Stack, order_lasts: timedelta) -> tuple[str, Order]:
    sku = await _out_of_stock(stack, "SKU-AUT")
    body = order_json(items=[(sku, 1)])
    body["payment"] |= {
        "status": "authorized",
        "authorization_expires_at": (datetime.now(UTC) + order_lasts).isoformat(),
    }
    return sku, Order.model_validate(body)


async def authorisation_renewed_while_backordered(stack: Stack) -> str:
    """The authorisation lapses within the renewal margin: renewed at once, then the goods
    come and the order ships."""
    sku, order = await _backordered(stack, timedelta(hours=12))
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order.order_id, "BACKORDERED")

    async def renewed() -> bool:
        return bool(
            await stack.pool.fetchval(
                """SELECT count(*) FROM payment_operations
                   WHERE order_id = $1 AND kind = 'reauthorization' AND status = 'succeeded'""",
                order.order_id,
            )
        )

    await _until(renewed)
    async with stack.pool.acquire() as conn, conn.transaction():
        await inventory.receive_stock(
            conn, sku=sku, quantity=1, receipt_key=uuid.uuid4().hex, received_by="recorder"
        )
    await stack.storefront.stock_received(order.order_id, StockReceived(sku=sku, quantity=1))
    return order.order_id


async def authorisation_refused_cancelled(stack: Stack) -> str:
    """The PSP will not renew an authorisation about to lapse: the order is cancelled."""
    await stack.psp.control(mode="refuse")
    _, order = await _backordered(stack, timedelta(hours=12))
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order.order_id, "CANCELLED")
    await stack.storefront.handle(order.order_id).result()
    await stack.psp.control(reset=True)
    return order.order_id


async def _pre_order(stack: Stack, release_in: timedelta) -> Order:
    sku = await _out_of_stock(stack, "SKU-PRE")
    async with stack.pool.acquire() as conn:
        await conn.execute("UPDATE inventory SET on_hand = 5 WHERE sku = $1", sku)
        await pre_orders.set_release(conn, sku, datetime.now(UTC) + release_in)
    order = Order.model_validate(order_json(items=[(sku, 1)]))
    await stack.storefront.place_order(order)
    await _until(lambda: _pre_order_waiting(stack, order.order_id))
    return order


async def _pre_order_waiting(stack: Stack, order_id: str) -> bool:
    status = await stack.pool.fetchval(
        "SELECT status FROM pre_orders WHERE order_id = $1", order_id
    )
    return bool(status == "waiting")


async def pre_order_released(stack: Stack) -> str:
    """A pre-order waits for its product's release, then goes on."""
    return (await _pre_order(stack, timedelta(seconds=3))).order_id


async def pre_order_release_moved(stack: Stack) -> str:
    """Purchasing moves the release a pre-order waits for (sooner); it then goes on."""
    order = await _pre_order(stack, timedelta(days=30))
    sku = order.items[0].sku
    async with stack.pool.acquire() as conn:
        await pre_orders.set_release(conn, sku, datetime.now(UTC) + timedelta(seconds=2))
    await stack.storefront.move_release(order.order_id, ReleaseDateChange(by="pat"))
    return order.order_id


MARKETPLACE = "mkt-rec"
MARKETPLACE_KEY = "recorder-marketplace-key"


async def _from_marketplace(stack: Stack, sku: str) -> str:
    """An order put in the marketplace's feed; its poller places it."""
    external_id = f"R{uuid.uuid4().hex[:8].upper()}"
    (market,) = stack.settings.marketplaces
    body = {
        "order": {
            "id": external_id,
            "created_at": datetime.now(UTC).isoformat(),
            "status": "new",
            "buyer": {"name": "Cy Doe", "email": "cy@example.com"},
            "lines": [{"sku": sku, "quantity": 1, "unit_price": "12.50"}],
            "currency": "EUR",
            "shipping_address": {
                "name": "Cy Doe",
                "line1": "2 Elm St",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
            "total": "12.50",
            "payment": {"reference": f"mp-{external_id}", "status": "paid"},
        }
    }
    headers = {"Authorization": f"Bearer {MARKETPLACE_KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        response = await http.post(f"{market.base_url}/orders", json=body)
        response.raise_for_status()
    order_id = f"{MARKETPLACE}-{external_id}"

    async def placed() -> bool:
        return await stack.pool.fetchval("SELECT 1 FROM orders WHERE order_id = $1", order_id) == 1

    await _until(placed)
    return order_id


async def marketplace_order_shipped(stack: Stack) -> str:
    """A marketplace's order runs the automatic path; its shipment is pushed back."""
    sku = await _out_of_stock(stack, "SKU-MKT")
    async with stack.pool.acquire() as conn, conn.transaction():
        await inventory.receive_stock(
            conn, sku=sku, quantity=5, receipt_key=uuid.uuid4().hex, received_by="recorder"
        )
    return await _from_marketplace(stack, sku)


async def marketplace_order_cancelled_by_shop(stack: Stack) -> str:
    """A marketplace's order the shop cancels while it waits for stock: the marketplace is
    told."""
    order_id = await _from_marketplace(stack, await _out_of_stock(stack, "SKU-MKC"))
    await wait_for_status(stack.pool, order_id, "BACKORDERED")
    await stack.storefront.cancel(order_id, "no stock")
    return order_id


async def _save_run(name: str, stack: Stack, workflow_id: str) -> None:
    """The history of a workflow other than an order's, as it stands (done or waiting)."""
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def kpi_snapshot_taken(stack: Stack) -> str:
    workflow_id = f"kpi-snapshot-recorded-{uuid.uuid4().hex[:6]}"
    await stack.client.execute_workflow(
        KpiSnapshotWorkflow.run,
        KpiSnapshotRequest(),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
    )
    return workflow_id


async def replenishment_run(stack: Stack) -> str:
    workflow_id = f"replenishment-recorded-{uuid.uuid4().hex[:6]}"
    await stack.client.execute_workflow(
        ReplenishmentWorkflow.run,
        scheduled_input(stack.settings),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
    )
    return workflow_id


async def risk_calibration_run(stack: Stack) -> str:
    workflow_id = f"risk-calibration-recorded-{uuid.uuid4().hex[:6]}"
    await stack.client.execute_workflow(
        RiskCalibrationWorkflow.run,
        RiskCalibrationRequest(),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
    )
    return workflow_id


async def process_review_built(stack: Stack) -> str:
    week = datetime.now(UTC).date()
    monday = week - timedelta(days=week.weekday())
    await build_review_now(stack.client, stack.settings, monday)
    return f"{REVIEW_WORKFLOW_ID}-{monday.isoformat()}"


async def marketplace_poller_placed_orders(stack: Stack) -> str:
    """The marketplace's poller, having placed (and acknowledged) an order of its feed; it
    waits for its next poll."""
    await _from_marketplace(stack, "SKU-RED-MUG")
    return poller_id(MARKETPLACE)


async def _returned(
    stack: Stack, *, returnable: bool, resolution: str = "refund", carrier: str | None = None
) -> str:
    """A delivered order's return asked for over the API (its parcel's carrier changed to
    `carrier` first, if given); its return id."""
    sku = f"SKU-RET-{uuid.uuid4().hex[:8].upper()}"
    async with stack.pool.acquire() as conn:
        await catalogue.upsert_product(
            conn,
            sku=sku,
            name="Returned mug",
            unit_price=Decimal("12.50"),
            weight_kg=Decimal("0.400"),
            bin_location="R-01-1",
        )
        await catalogue.ensure_stock(conn, sku=sku, on_hand=5, reorder_point=0, order_up_to=0)
        await conn.execute("UPDATE products SET returnable = $2 WHERE sku = $1", sku, returnable)
    order = Order.model_validate(order_json(items=[(sku, 1)]))
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order.order_id, "COMPLETED")
    if carrier is not None:
        await stack.pool.execute(
            "UPDATE shipments SET carrier = $2 WHERE order_id = $1", order.order_id, carrier
        )
    asked = await stack.http(
        "POST",
        f"/orders/{order.order_id}/returns",
        json={
            "lines": [{"sku": sku, "quantity": 1}],
            "reason": "too small",
            "resolution": resolution,
        },
    )
    assert asked.status_code == 202, asked.text
    return_id: str = asked.json()["return_id"]
    return return_id


async def _return_status(stack: Stack, return_id: str, status: str) -> None:
    async def reached() -> bool:
        found = await stack.pool.fetchval(
            "SELECT status FROM returns WHERE return_id = $1", return_id
        )
        return bool(found == status)

    await _until(reached)


async def return_refunded(stack: Stack) -> str:
    """A return approved at once: label, parcel handed in and back, restocked, refunded."""
    return await _sent_back_and_restocked(stack, await _returned(stack, returnable=True))


async def return_exchanged(stack: Stack) -> str:
    """A return of an exchanged line: the replacement order started on approval, the parcel
    back and restocked, nothing refunded (EXCHANGED)."""
    return_id = await _returned(stack, returnable=True, resolution="exchange")
    return await _sent_back_and_restocked(stack, return_id)


async def return_label_refused_then_approved(stack: Stack) -> str:
    """The carrier refused the return label for good; customer service approved it again
    once the carrier was mended, and the return went on to its refund."""
    return_id = await _returned(stack, returnable=True, carrier="gone")
    await _return_status(stack, return_id, "REQUESTED")
    order_id = await stack.pool.fetchval(
        "SELECT order_id FROM returns WHERE return_id = $1", return_id
    )
    await stack.pool.execute(
        """UPDATE shipments SET carrier = (SELECT code FROM carriers ORDER BY code LIMIT 1)
           WHERE order_id = $1""",
        order_id,
    )
    await stack.http(
        "POST",
        f"/returns/{return_id}/decision",
        role="admin",
        json={"decision": "approve", "note": "carrier mended"},
    )
    return await _sent_back_and_restocked(stack, return_id)


async def exchange_replacement_completed(stack: Stack) -> str:
    """The replacement order an exchange placed: uncharged, through every step."""
    return_id = await _returned(stack, returnable=True, resolution="exchange")
    replacement = f"{return_id}-EX"
    await wait_for_status(stack.pool, replacement, "COMPLETED")
    return replacement


async def _sent_back_and_restocked(stack: Stack, return_id: str) -> str:
    await _return_status(stack, return_id, "LABEL_SENT")
    row = await stack.pool.fetchrow("SELECT * FROM returns WHERE return_id = $1", return_id)
    async with httpx.AsyncClient(base_url=stack.settings.carrier_api_url) as carrier:
        handed = await carrier.post(
            f"/carriers/{row['carrier']}/returns/{row['tracking_number']}/hand-in"
        )
        assert handed.status_code == 202, handed.text
    await _return_status(stack, return_id, "ARRIVED")
    sku = await stack.pool.fetchval("SELECT sku FROM return_lines WHERE return_id = $1", return_id)
    await stack.http(
        "POST",
        f"/warehouse/returns/{return_id}/inspection",
        role="warehouse",
        json={"lines": [{"sku": sku, "outcome": "restock", "note": "as new"}]},
    )
    await stack.client.get_workflow_handle(f"return-{return_id}").result()
    return f"return-{return_id}"


async def return_rejected_by_customer_service(stack: Stack) -> str:
    """A return outside the rules, refused by customer service."""
    return_id = await _returned(stack, returnable=False)
    await _return_status(stack, return_id, "REQUESTED")
    await stack.http(
        "POST",
        f"/returns/{return_id}/decision",
        role="admin",
        json={"decision": "reject", "note": "hygiene article"},
    )
    await stack.client.get_workflow_handle(f"return-{return_id}").result()
    return f"return-{return_id}"


# Workflows other than orders.
SERVICE_SCENARIOS: dict[str, Callable[[Stack], Awaitable[str]]] = {
    "kpi_snapshot_taken": kpi_snapshot_taken,
    "replenishment_run": replenishment_run,
    "risk_calibration_run": risk_calibration_run,
    "process_review_built": process_review_built,
    "marketplace_poller_placed_orders": marketplace_poller_placed_orders,
    "return_refunded": return_refunded,
    "return_rejected_by_customer_service": return_rejected_by_customer_service,
    "return_exchanged": return_exchanged,
    "return_label_refused_then_approved": return_label_refused_then_approved,
}


SCENARIOS: dict[str, Callable[[Stack], Awaitable[str]]] = {
    "automatic_path_completed": automatic_path_completed,
    "flagged_then_approved": flagged_then_approved,
    "flagged_then_rejected": flagged_then_rejected,
    "cancelled_while_picking": cancelled_while_picking,
    "backordered_then_received": backordered_then_received,
    "cancel_requested_before_recorded": cancel_requested_before_recorded,
    "manual_path_feedback_and_review": manual_path_feedback_and_review,
    "unprocessable_order_rejected": unprocessable_order_rejected,
    "authorised_captured_at_shipment": authorised_captured_at_shipment,
    "capture_refused_then_retried": capture_refused_then_retried,
    "authorised_cancelled_voided": authorised_cancelled_voided,
    "captured_cancelled_refunded": captured_cancelled_refunded,
    "authorisation_renewed_while_backordered": authorisation_renewed_while_backordered,
    "authorisation_refused_cancelled": authorisation_refused_cancelled,
    "pre_order_released": pre_order_released,
    "pre_order_release_moved": pre_order_release_moved,
    "marketplace_order_shipped": marketplace_order_shipped,
    "marketplace_order_cancelled_by_shop": marketplace_order_cancelled_by_shop,
    "exchange_replacement_completed": exchange_replacement_completed,
}


async def main(names: list[str]) -> None:
    HISTORIES.mkdir(exist_ok=True)
    every = {**SCENARIOS, **SERVICE_SCENARIOS}
    todo = [n for n in (names or every) if not (HISTORIES / f"{n}.json").exists()]
    if not todo:
        print("every scenario is recorded already")
        return
    with tempfile.TemporaryDirectory() as tmp, postgres_url(Path(tmp)) as server_url:
        database_url = await fresh_database(server_url)
        await prepare(database_url)
        env = await start_dev_server()
        port = free_port()
        market = MarketplaceConfig(
            code=MARKETPLACE,
            base_url=f"http://127.0.0.1:{port}/{MARKETPLACE}",
            api_key=MARKETPLACE_KEY,
            poll_seconds=0.2,
        )
        simulator = Settings(
            marketplace_simulator_port=port,
            marketplace_simulator_api_key=MARKETPLACE_KEY,
            marketplace_simulator_codes=[MARKETPLACE],
            marketplace_simulator_demo_seconds=0,
        )
        try:
            async with (
                serve(create_marketplace(simulator), port),
                running_stack(
                    env, database_url, policy=OrderPolicy.instant(), marketplaces=[market]
                ) as stack,
            ):
                await start_marketplace_pollers(stack.client, stack.settings)
                for name in todo:
                    if name in SCENARIOS:
                        await _save(name, stack, await SCENARIOS[name](stack))
                for name in todo:
                    if name in SERVICE_SCENARIOS:
                        await _save_run(name, stack, await SERVICE_SCENARIOS[name](stack))
                await stack.client.get_workflow_handle(poller_id(MARKETPLACE)).terminate("done")
        finally:
            await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
