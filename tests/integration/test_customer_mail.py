"""The customer's mail over real SMTP: an order through all eight steps sends exactly one
confirmation, one shipping notice and one review invitation, each with text and HTML parts
in the customer's language, and the confirmation's link opens that order's page."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.e2e.order_page_support import PHONE_WIDTH, open_order_page
from tests.helpers import order_json, wait_for_status
from tests.integration.fulfilment_support import wait_until
from tests.mail_support import CapturingSmtp, Received, dispatching
from tests.servers import Stack, fresh_database, prepare, running_stack

pytestmark = pytest.mark.integration

LINK = re.compile(r"(https?://\S+/orders/(\S+)/page)#token=(cust_[0-9a-f]+)")


@pytest.fixture(scope="module")
def smtp() -> Iterator[CapturingSmtp]:
    with CapturingSmtp() as server:
        yield server


@pytest.fixture(scope="module")
async def mail_db(postgres_server_url: str) -> str:
    # A database of its own: the dispatcher sends every pending row it finds.
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    return url


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, mail_db: str, smtp: CapturingSmtp
) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env, mail_db, policy=OrderPolicy.instant(), **smtp.settings()
    ) as running:
        yield running


async def _mails_of(stack: Stack, smtp: CapturingSmtp, order_id: str) -> dict[str, list[Received]]:
    """Once every row of the order is sent: the messages received for it, by kind."""

    async def drained() -> bool:
        unsent = await stack.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE order_id = $1 AND status <> 'sent'",
            order_id,
        )
        return unsent == 0

    await wait_until(drained, what=f"the outbox rows of {order_id} sent")
    kinds: dict[str, list[Received]] = {}
    for mail in smtp.received:
        if mail.message["X-Orderflow-Order"] == order_id:
            kinds.setdefault(str(mail.message["X-Orderflow-Notification"]), []).append(mail)
    return kinds


@pytest.mark.parametrize(
    ("locale", "confirmed"),
    [("de", "ist bestätigt"), ("zh-CN", "已确认"), ("en", "is confirmed"), ("fr", "is confirmed")],
)
async def test_eight_steps_send_one_of_each_customer_mail_in_the_customer_language(
    stack: Stack, smtp: CapturingSmtp, locale: str, confirmed: str
) -> None:
    body = order_json()
    body["customer"]["locale"] = locale
    order_id, email = body["order_id"], body["customer"]["email"]
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    async with dispatching(stack.pool, stack.settings):
        assert await wait_for_status(stack.pool, order_id, "COMPLETED") == "COMPLETED"
        await stack.storefront.handle(order_id).result()
        mails = await _mails_of(stack, smtp, order_id)

    customer = {k: v for k, v in mails.items() if all(m.recipients == [email] for m in v)}
    counts = Counter({k: len(v) for k, v in customer.items()})
    for kind in ("order_confirmation", "shipping_confirmation", "review_invitation"):
        assert counts[kind] == 1, counts
    assert all(n == 1 for n in counts.values()), counts
    for (mail,) in customer.values():
        text, html = mail.part("plain"), mail.part("html")
        assert text and html, mail.message["Subject"]
        assert mail.message["X-Orderflow-Order"] == order_id
        assert LINK.search(text) and "/page#token=" in html
    (confirmation,) = customer["order_confirmation"]
    assert confirmed in str(confirmation.message["Subject"])

    # The link opens the page; the token in its fragment opens this order and no other.
    text = confirmation.part("plain")
    assert text is not None
    found = LINK.search(text)
    assert found is not None
    page_url, linked_order, token = found.groups()
    assert linked_order == order_id
    async with httpx.AsyncClient() as browser:
        page = await browser.get(page_url)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        auth = {"Authorization": f"Bearer {token}"}
        view = await browser.get(f"{stack.settings.public_url}/orders/{order_id}", headers=auth)
        assert (view.status_code, view.json()["status"]) == (200, "COMPLETED")


async def test_a_rejected_order_tells_the_customer_without_the_reviewer_note(
    stack: Stack, smtp: CapturingSmtp
) -> None:
    body = order_json(payment_status="failed")
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")
    decided = await stack.http(
        "POST",
        f"/reviews/{order_id}/decision",
        role="reviewer",
        json={"decision": "reject", "note": "card reported stolen by bank"},
    )
    assert decided.status_code == 200, decided.text
    async with dispatching(stack.pool, stack.settings):
        await wait_for_status(stack.pool, order_id, "REJECTED")
        await stack.storefront.handle(order_id).result()
        mails = await _mails_of(stack, smtp, order_id)
    (rejected,) = mails["order_rejected"]
    for part in ("plain", "html"):
        content = rejected.part(part)
        assert content and "stolen" not in content
    pool: asyncpg.Pool = stack.pool
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE order_id = $1 AND kind = 'order_rejected'",
            order_id,
        )
        == 1
    )


async def test_the_confirmation_link_opens_the_order_page_in_a_browser(
    stack: Stack, smtp: CapturingSmtp
) -> None:
    """As the customer would: the link from the received confirmation, in headless Chromium
    on a phone screen, shows this order."""
    body = order_json(items=[("SKU-RED-MUG", 2)])
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    async with dispatching(stack.pool, stack.settings):
        await wait_for_status(stack.pool, order_id, "COMPLETED")
        await stack.storefront.handle(order_id).result()
        mails = await _mails_of(stack, smtp, order_id)
    (confirmation,) = mails["order_confirmation"]
    found = LINK.search(confirmation.part("plain") or "")
    assert found is not None
    async with open_order_page(found.group(0), phone=True) as page:
        await page.wait_status("COMPLETED")
        assert order_id in await page.text()
        assert "Main St" in await page.text()
        assert await page.scroll_width() <= PHONE_WIDTH
