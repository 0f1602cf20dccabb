"""Records order workflow histories for the replay tests: `python -m tests.replay.record`.

Each scenario runs on a fresh embedded stack and its history is saved as JSON beside this
file. Record new ones when the workflow gains a path; never re-record an old one to make a
replay test pass: a failing replay means running orders would break.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from orderflow.models import Order, OrderPolicy, ReviewDecision
from tests.helpers import order_json, wait_for_status
from tests.servers import fresh_database, postgres_url, prepare, running_stack, start_dev_server

HISTORIES = Path(__file__).parent / "histories"


async def _record(name: str, stack, order_id: str) -> None:  # type: ignore[no-untyped-def]
    handle = stack.client.get_workflow_handle(f"order-{order_id}")
    await handle.result()
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, postgres_url(Path(tmp)) as server_url:
        database_url = await fresh_database(server_url)
        await prepare(database_url)
        env = await start_dev_server()
        try:
            async with running_stack(env, database_url, policy=OrderPolicy.instant()) as stack:
                automatic = Order.model_validate(order_json(items=[("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)]))
                await stack.storefront.place_order(automatic)
                await _record("automatic_path_completed", stack, automatic.order_id)

                flagged = Order.model_validate(order_json(payment_status="failed"))
                await stack.storefront.place_order(flagged)
                await wait_for_status(stack.pool, flagged.order_id, "PENDING_REVIEW")
                await stack.storefront.decide_review(
                    flagged.order_id, ReviewDecision(decision="approve", reviewer="rita", note="ok")
                )
                await _record("flagged_then_approved", stack, flagged.order_id)

                rejected = Order.model_validate(order_json(payment_status="failed"))
                await stack.storefront.place_order(rejected)
                await wait_for_status(stack.pool, rejected.order_id, "PENDING_REVIEW")
                await stack.storefront.decide_review(
                    rejected.order_id, ReviewDecision(decision="reject", reviewer="rita", note="fraud")
                )
                await _record("flagged_then_rejected", stack, rejected.order_id)

                manual = OrderPolicy.instant(auto_warehouse=False).model_copy(
                    update={"pick_sla": timedelta(hours=4)}
                )
                cancelled = Order.model_validate(order_json())
                await stack.storefront.place_order(cancelled, policy=manual)
                await wait_for_status(stack.pool, cancelled.order_id, "PICKING")
                await stack.storefront.cancel(cancelled.order_id, "changed my mind")
                await _record("cancelled_while_picking", stack, cancelled.order_id)
        finally:
            await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
