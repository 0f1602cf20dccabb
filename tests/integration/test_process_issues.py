"""Process issues on the real stack: staff raise a difficulty with a step over HTTP, it
waits in the owning department's queue, the department's lead receives one mail over SMTP,
only that department (or admin) takes it up and resolves it with a note, and the command
line does the same through the API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from app.cli import app
from orderflow.models import OrderPolicy
from orderflow.settings import get_settings
from tests.helpers import order_json, wait_for_status
from tests.integration.fulfilment_support import wait_until
from tests.mail_support import CapturingSmtp, dispatching
from tests.servers import Stack, fresh_database, prepare, running_stack

pytestmark = pytest.mark.integration

WAREHOUSE_LEAD = "warehouse-lead@shop.example"


@pytest.fixture(scope="module")
def smtp() -> Iterator[CapturingSmtp]:
    with CapturingSmtp() as server:
        yield server


@pytest.fixture(scope="module")
async def own_db(postgres_server_url: str) -> str:
    # A database of its own: the lead's mails and the issue lists are only this module's.
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    return url


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, own_db: str, smtp: CapturingSmtp
) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env, own_db, policy=OrderPolicy.instant(), **smtp.settings()
    ) as running:
        yield running


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def _raise(stack: Stack, role: str = "logistics", **body: Any) -> dict[str, Any]:
    response = await stack.http("POST", "/process-issues", role=role, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _queue(stack: Stack, department: str) -> list[dict[str, Any]]:
    response = await stack.http("GET", f"/departments/{department}/queue", role="admin")
    assert response.status_code == 200, response.text
    return [i for i in response.json()["items"] if i["kind"] == "process_issue"]


async def test_an_issue_reaches_its_department_its_lead_and_is_resolved_with_a_note(
    stack: Stack, smtp: CapturingSmtp
) -> None:
    body = order_json()
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    order_id = body["order_id"]
    await wait_for_status(stack.pool, order_id, "COMPLETED")

    # Raised by logistics against step 5, which the warehouse does: the warehouse owns it.
    issue = await _raise(
        stack,
        step=5,
        order_id=order_id,
        description="Parcels reach the dock without a packing slip.",
        severity="high",
    )
    ticket = issue["ticket_id"]
    assert ticket.startswith("PI-")
    assert issue["department"] == "warehouse" and issue["status"] == "open"
    assert issue["step_name"] == "Picking & packing" and issue["raised_by"] == "logistics"

    queued = await _queue(stack, "warehouse")
    item = next(i for i in queued if i["ref"] == ticket)
    assert item["order_id"] == order_id and item["status"] == "open"
    assert item["details"]["step"] == 5 and item["details"]["severity"] == "high"
    assert item["sla_seconds"] == stack.settings.process_issue_sla_high.total_seconds()
    assert ticket not in {i["ref"] for i in await _queue(stack, "logistics")}

    async def lead_mails() -> list[Any]:
        return [
            m
            for m in smtp.received
            if m.message["X-Orderflow-Notification"] == "process_issue_raised"
            and ticket in str(m.message["Subject"])
        ]

    # The outbox dispatcher runs in `orderflow worker`; here beside the test.
    async with dispatching(stack.pool, stack.settings):
        await wait_until(lead_mails, what="the lead's mail")
        await asyncio.sleep(0.5)  # a second mail, were one queued, would arrive by now
    mails = await lead_mails()
    assert len(mails) == 1
    assert mails[0].recipients == [WAREHOUSE_LEAD]
    text = mails[0].part("plain") or ""
    assert "Parcels reach the dock without a packing slip." in text and order_id in text

    # Logistics raised it but the warehouse owns it: logistics may neither take it up nor
    # resolve it.
    for action, payload in (("start", None), ("resolve", {"note": "not mine to close"})):
        refused = await stack.http(
            "POST", f"/process-issues/{ticket}/{action}", role="logistics", json=payload
        )
        assert refused.status_code == 403, refused.text
        assert "warehouse" in refused.json()["detail"]

    started = await stack.http("POST", f"/process-issues/{ticket}/start", role="warehouse")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in_progress"
    again = await stack.http("POST", f"/process-issues/{ticket}/start", role="warehouse")
    assert again.status_code == 409

    resolved = await stack.http(
        "POST",
        f"/process-issues/{ticket}/resolve",
        role="warehouse",
        json={"note": "Slip printer moved to the packing bench."},
    )
    assert resolved.status_code == 200, resolved.text
    done = resolved.json()
    assert done["status"] == "resolved" and done["resolved_by"] == "warehouse"
    assert done["resolution"] == "Slip printer moved to the packing bench."
    assert ticket not in {i["ref"] for i in await _queue(stack, "warehouse")}
    twice = await stack.http(
        "POST", f"/process-issues/{ticket}/resolve", role="admin", json={"note": "again"}
    )
    assert twice.status_code == 409 and "resolved already" in twice.json()["detail"]

    read = await stack.http("GET", f"/process-issues/{ticket}", role="reviewer")
    assert read.status_code == 200 and read.json()["resolution"] == done["resolution"]
    rows = await stack.pool.fetchval(
        "SELECT count(*) FROM notifications WHERE kind = 'process_issue_raised' AND recipient = $1",
        WAREHOUSE_LEAD,
    )
    assert rows == 1


async def test_listing_filters_and_pages(stack: Stack) -> None:
    mine = [
        await _raise(
            stack,
            role="reviewer",
            step=3,
            description=f"Reasons are hard to read ({n})",
            severity="low",
        )
        for n in range(3)
    ]
    other = await _raise(stack, role="purchasing", step=4, description="Supplier lead times")
    assert {i["department"] for i in mine} == {"risk"} and other["department"] == "warehouse"

    listed = await stack.http(
        "GET", "/process-issues", role="admin", params={"department": "risk", "status": "open"}
    )
    assert listed.status_code == 200
    assert [i["ticket_id"] for i in listed.json()] == [i["ticket_id"] for i in mine]

    first = await stack.http("GET", "/process-issues", role="admin", params={"step": 3, "limit": 2})
    assert len(first.json()) == 2 and first.headers["X-Next-Cursor"]
    rest = await stack.http(
        "GET",
        "/process-issues",
        role="admin",
        params={"step": 3, "limit": 2, "cursor": first.headers["X-Next-Cursor"]},
    )
    paged = [i["ticket_id"] for i in first.json() + rest.json()]
    assert paged == [i["ticket_id"] for i in mine]

    by_severity = await stack.http(
        "GET", "/process-issues", role="warehouse", params={"severity": "medium", "step": 4}
    )
    assert [i["ticket_id"] for i in by_severity.json()] == [other["ticket_id"]]


async def test_bad_requests_are_clear_refusals(stack: Stack) -> None:
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("warehouse", {"step": 9, "description": "x"}, 422),
        ("warehouse", {"step": 5, "description": ""}, 422),
        ("warehouse", {"step": 5, "description": "x", "severity": "urgent"}, 422),
        ("warehouse", {"step": 5, "description": "x", "department": "nowhere"}, 422),
        ("warehouse", {"step": 5, "description": "x", "order_id": "NO-SUCH-ORDER"}, 404),
        ("storefront", {"step": 5, "description": "x"}, 403),
    ]
    for role, body, code in cases:
        response = await stack.http("POST", "/process-issues", role=role, json=body)
        assert response.status_code == code, (body, response.text)
        assert isinstance(response.json()["detail"], str)
    assert (await stack.http("POST", "/process-issues", role=None, json={})).status_code == 401
    missing = await stack.http("GET", "/process-issues/PI-NOPE", role="admin")
    assert missing.status_code == 404
    empty_note = await stack.http(
        "POST", "/process-issues/PI-NOPE/resolve", role="admin", json={"note": ""}
    )
    assert empty_note.status_code == 422
    # Step 8 is customer service's; an issue names it by default.
    issue = await _raise(stack, role="warehouse", step=8, description="Completion mails late")
    assert issue["department"] == "customer_service"
    before = await stack.pool.fetchval("SELECT count(*) FROM process_issues")
    keyed = {"step": 2, "description": "Rule for bulk orders unclear"}
    headers = {"Idempotency-Key": "pi-retry-1"}
    one = await stack.http("POST", "/process-issues", role="admin", json=keyed, headers=headers)
    two = await stack.http("POST", "/process-issues", role="admin", json=keyed, headers=headers)
    assert (one.status_code, two.status_code) == (201, 200)
    assert one.json()["ticket_id"] == two.json()["ticket_id"]
    assert await stack.pool.fetchval("SELECT count(*) FROM process_issues") == before + 1


async def test_the_command_line_adds_lists_and_resolves(stack: Stack, cli: CliRunner) -> None:
    async def run(*args: str) -> Any:
        return await asyncio.to_thread(cli.invoke, app, ["process-issues", *args])

    added = await run(
        "add",
        "--step",
        "6",
        "--description",
        "Carrier cut-off moved to 15:00",
        "--severity",
        "high",
        "--role",
        "warehouse",
    )
    assert added.exit_code == 0, added.output
    issue = json.loads(added.output)
    ticket = issue["ticket_id"]
    assert issue["department"] == "logistics" and issue["raised_by"] == "warehouse"

    listed = await run("list", "--department", "logistics", "--status", "open", "--json")
    assert listed.exit_code == 0, listed.output
    assert ticket in {i["ticket_id"] for i in json.loads(listed.output)}
    table = await run("list", "--step", "6")
    assert table.exit_code == 0 and ticket in table.output

    refused = await run("resolve", ticket, "--note", "done", "--role", "reviewer")
    assert refused.exit_code == 1 and "403" in refused.output
    resolved = await run(
        "resolve", ticket, "--note", "Booking moved earlier", "--role", "logistics"
    )
    assert resolved.exit_code == 0, resolved.output
    assert json.loads(resolved.output)["status"] == "resolved"
    closed = await run("list", "--status", "resolved", "--json")
    assert ticket in {i["ticket_id"] for i in json.loads(closed.output)}
