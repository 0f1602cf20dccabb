"""The mail outbox against real servers: PostgreSQL, aiosmtpd SMTP servers on loopback, the
embedded mail server, the API and the command line. No SMTP client is mocked.

The module has a database of its own: dispatchers send every due row, so rows queued by
other tests' orders must not reach these servers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from api.app import create_app
from app.cli import app as cli_app
from db.pool import create_pool
from db.repositories import outbox
from notices.headers import message_id
from orderflow.models import OrderPolicy
from orderflow.settings import Settings, get_settings
from simulators.mailserver import create_app as create_mail_server
from stack.supervisor import ManagedProcess, free_port
from tests.mail_support import CapturingSmtp, dispatching, self_signed_certificate
from tests.servers import Stack, fresh_database, prepare, running_stack, serve
from workers.outbox import run_dispatcher
from workers.smtp import (
    DeliveryError,
    OutgoingMail,
    SmtpSession,
    build_message,
    mask_addresses,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
async def mail_db(postgres_server_url: str) -> str:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    return url


@pytest.fixture(scope="module")
async def pool(mail_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(mail_db, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
async def mail_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    """The embedded mail server (simulators/mailserver.py), SMTP and HTTP on free ports."""
    smtp_port, http_port = free_port(), free_port()
    app = create_mail_server(
        Settings(),
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        store_path=tmp_path_factory.mktemp("mailbox") / "mailbox.sqlite3",
    )
    async with serve(app, http_port):
        yield {
            "smtp_port": smtp_port,
            "url": f"http://127.0.0.1:{http_port}",
            "server": app.state.mailserver,
        }


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, mail_db: str, mail_server: dict[str, Any]
) -> AsyncIterator[Stack]:
    """The API (no worker: these tests queue rows themselves) on this module's database."""
    async with running_stack(
        temporal_env,
        mail_db,
        policy=OrderPolicy.instant(),
        with_worker=False,
        mailbox_url=mail_server["url"],
    ) as running:
        yield running


@pytest.fixture(autouse=True)
async def empty_outbox(pool: asyncpg.Pool) -> None:
    await pool.execute("DELETE FROM notifications")


@pytest.fixture
def smtp() -> Iterator[CapturingSmtp]:
    with CapturingSmtp() as server:
        yield server


@pytest.fixture
def cli(
    stack: Stack, mail_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORDERFLOW_API_URL", f"http://127.0.0.1:{stack.settings.api_port}")
    monkeypatch.setenv("ORDERFLOW_MAILBOX_URL", mail_server["url"])
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def mail_settings(database_url: str, **overrides: Any) -> Settings:
    """Fast rounds and short backoff, so tests wait on outcomes, not on the clock."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "outbox_interval_seconds": 0.05,
        "outbox_backoff_seconds": 0.05,
        "outbox_backoff_max_seconds": 0.2,
        "outbox_max_attempts": 3,
        "outbox_lease_seconds": 30,
        "smtp_timeout_seconds": 10,
        "mail_from": "orderflow <orders@shop.test>",
    }
    return Settings(**{**fields, **overrides})


async def has_html_column(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM information_schema.columns
                              WHERE table_name = 'notifications' AND column_name = 'body_html')"""
        )
    )


async def queue_row(
    pool: asyncpg.Pool,
    *,
    recipient: str | None = None,
    order_id: str | None = "O-MAIL-1",
    kind: str = "order_confirmation",
    channel: str = "email",
    subject: str = "Your order",
    body: str = "Thank you for your order.",
    body_html: str | None = None,
) -> asyncpg.Record:
    key = f"test:{uuid.uuid4().hex}"
    row = await pool.fetchrow(
        """INSERT INTO notifications (notification_key, order_id, kind, channel, recipient,
                                      subject, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, notification_key""",
        key,
        order_id,
        kind,
        channel,
        recipient or f"c-{uuid.uuid4().hex[:8]}@example.com",
        subject,
        body,
    )
    assert row is not None
    if body_html is not None:
        await pool.execute(
            "UPDATE notifications SET body_html = $2 WHERE id = $1", row["id"], body_html
        )
    return row


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {result!r})")
        await asyncio.sleep(0.05)


async def column(pool: asyncpg.Pool, row_id: int, name: str) -> Any:
    """One column of one outbox row, as the repository reads it."""
    row = await outbox.get(pool, row_id)
    assert row is not None, f"no row {row_id}"
    return row[name]


async def status_of(pool: asyncpg.Pool, row_id: int) -> str:
    return str(await pool.fetchval("SELECT status FROM notifications WHERE id = $1", row_id))


async def wait_status(pool: asyncpg.Pool, row_id: int, status: str, timeout: float = 30.0) -> None:
    async def reached() -> bool:
        return await status_of(pool, row_id) == status

    await eventually(reached, timeout=timeout, what=f"row {row_id} {status}")


async def all_sent(pool: asyncpg.Pool) -> bool:
    return not await pool.fetchval("SELECT count(*) FROM notifications WHERE status <> 'sent'")


# ---------------------------------------------------------------- sending
async def test_a_row_is_sent_once_with_text_and_html_parts(
    pool: asyncpg.Pool, mail_db: str, smtp: CapturingSmtp
) -> None:
    plain = await queue_row(pool, subject="Bestätigung", body="Order <O-MAIL-1> & co.\n  2 × mug")
    lead = await queue_row(
        pool,
        recipient="lead@orderflow.local",
        order_id=None,
        kind="low_stock_alert",
        channel="department",
        subject="Low stock",
        body="SKU-RED-MUG is low",
    )
    templated = None
    if await has_html_column(pool):
        templated = await queue_row(pool, body="text part", body_html="<p>html <b>part</b></p>")

    settings = mail_settings(mail_db, **smtp.settings())
    async with dispatching(pool, settings):
        await eventually(lambda: all_sent(pool), what="all rows sent")
        # One more row after the first ones are recorded sent: once it has arrived, the
        # dispatcher has had rounds in between, and none of them sent anything again.
        sentinel = await queue_row(pool, kind="sentinel")
        await eventually(lambda: all_sent(pool), what="sentinel sent")

    expected = 4 if templated else 3
    received = smtp.received
    assert len(received) == expected
    by_id = {r.message_id: r for r in received}
    assert len(by_id) == expected, "each message arrived once"

    mail = by_id[message_id(plain["notification_key"])]
    assert mail.recipients == [
        await pool.fetchval("SELECT recipient FROM notifications WHERE id = $1", plain["id"])
    ]
    assert mail.envelope_from == "orders@shop.test"
    assert mail.message["From"] == "orderflow <orders@shop.test>"
    assert mail.message["Subject"] == "Bestätigung"
    assert mail.message["X-Orderflow-Order"] == "O-MAIL-1"
    assert mail.message["X-Orderflow-Notification"] == "order_confirmation"
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.part("plain") == "Order <O-MAIL-1> & co.\n  2 × mug\n"
    html = mail.part("html")
    assert html is not None and "<pre" in html
    assert "Order &lt;O-MAIL-1&gt; &amp; co." in html

    notice = by_id[message_id(lead["notification_key"])]
    assert notice.recipients == ["lead@orderflow.local"]
    assert "X-Orderflow-Order" not in notice.message
    assert notice.message["X-Orderflow-Notification"] == "low_stock_alert"

    if templated:
        rich = by_id[message_id(templated["notification_key"])]
        assert rich.part("html") == "<p>html <b>part</b></p>\n"
        assert rich.part("plain") == "text part\n"

    assert message_id(sentinel["notification_key"]) in by_id
    rows = await pool.fetch(
        "SELECT status, attempts, accepted_at, sent_at, lease_token FROM notifications"
    )
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    assert all(r["accepted_at"] is not None and r["sent_at"] == r["accepted_at"] for r in rows)
    assert all(r["lease_token"] is None for r in rows)


async def test_without_smtp_nothing_is_marked_sent(
    pool: asyncpg.Pool, mail_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    row = await queue_row(pool)
    caplog.set_level(logging.WARNING, logger="orderflow.outbox")
    await asyncio.wait_for(run_dispatcher(pool, mail_settings(mail_db, smtp_host=None)), 10)
    assert "SMTP is not configured" in caplog.text
    state = await pool.fetchrow(
        "SELECT status, attempts, sent_at FROM notifications WHERE id = $1", row["id"]
    )
    assert dict(state) == {"status": "pending", "attempts": 0, "sent_at": None}


async def test_a_broken_row_is_recorded_and_the_others_still_go(
    pool: asyncpg.Pool, mail_db: str, smtp: CapturingSmtp
) -> None:
    # A header may not hold a line break: building this message raises, on every attempt.
    broken = await queue_row(pool, subject="Your order\r\nBcc: someone@else.test")
    good = await queue_row(pool)
    async with dispatching(pool, mail_settings(mail_db, **smtp.settings())):
        await wait_status(pool, broken["id"], "failed")
        await wait_status(pool, good["id"], "sent")
    row = await pool.fetchrow(
        "SELECT attempts, last_error FROM notifications WHERE id = $1", broken["id"]
    )
    assert row["attempts"] == 3
    assert "ValueError" in row["last_error"]
    assert [r.message_id for r in smtp.received] == [message_id(good["notification_key"])]


async def test_the_loop_survives_a_database_outage(
    mail_db: str,
    postgres_server_url: str,
    pool: asyncpg.Pool,
    smtp: CapturingSmtp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="orderflow.outbox")
    name = f"outbox-test-{uuid.uuid4().hex[:6]}"
    database = mail_db.rpartition("/")[2]
    own = await asyncpg.create_pool(
        mail_db, min_size=1, max_size=2, server_settings={"application_name": name}
    )
    assert own is not None
    try:
        async with dispatching(own, mail_settings(mail_db, **smtp.settings())):
            first = await queue_row(pool)
            await wait_status(pool, first["id"], "sent")
            # The database goes away for the dispatcher: its connections are cut and new
            # ones refused (from another database: one cannot lock oneself out).
            admin = await asyncpg.connect(postgres_server_url)
            try:
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = $1",
                    name,
                )

                async def logged() -> bool:
                    return "outbox round failed" in caplog.text

                await eventually(logged, what="the failed round logged")
            finally:
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
                await admin.close()
            second = await queue_row(pool)
            await wait_status(pool, second["id"], "sent")
    finally:
        await own.close()
    assert [r.message_id for r in smtp.received] == [
        message_id(first["notification_key"]),
        message_id(second["notification_key"]),
    ]


# ---------------------------------------------------------------- crash and lease
async def test_rows_of_a_killed_dispatcher_arrive_once(
    pool: asyncpg.Pool, mail_db: str, smtp: CapturingSmtp, tmp_path: Path
) -> None:
    rows = [await queue_row(pool) for _ in range(3)]
    # The first dispatcher's message is held at DATA: it dies holding all three claims.
    smtp.set_mode("stall")
    dispatcher = ManagedProcess(
        "dispatcher",
        [sys.executable, "-m", "workers.outbox"],
        tmp_path / "dispatcher.log",
        {
            "DATABASE_URL": mail_db,
            **smtp.env(),
            # Short enough for the test to wait it out; the message is held for longer.
            "ORDERFLOW_OUTBOX_LEASE_SECONDS": "3",
            "ORDERFLOW_OUTBOX_INTERVAL_SECONDS": "0.1",
            "ORDERFLOW_SMTP_TIMEOUT_SECONDS": "60",
        },
        cwd=ROOT,
    )
    dispatcher.start()
    try:

        async def holding() -> bool:
            claimed = await pool.fetchval(
                "SELECT count(*) FROM notifications WHERE status = 'sending'"
            )
            return smtp.stalling.is_set() and claimed == 3

        await eventually(holding, what="the first dispatcher holding its claims")
    except AssertionError:
        dispatcher.stop()
        raise AssertionError(dispatcher.log_file.read_text()) from None
    dispatcher.kill()
    assert dispatcher.returncode == -signal.SIGKILL

    smtp.set_mode("accept")
    smtp.release()
    # A second dispatcher takes the rows over once the dead one's lease has run out.
    async with dispatching(pool, mail_settings(mail_db, **smtp.settings())):
        await eventually(lambda: all_sent(pool), what="rows sent by the second dispatcher")

    received = smtp.received
    assert sorted(r.message_id for r in received) == sorted(
        message_id(r["notification_key"]) for r in rows
    ), "each mail arrived exactly once"
    assert smtp.stalls == 1
    attempts = await pool.fetch("SELECT attempts FROM notifications ORDER BY id")
    assert [a["attempts"] for a in attempts] == [2, 2, 2], "the lost claim counts as an attempt"


async def test_two_dispatchers_send_fifty_rows_exactly_once(
    pool: asyncpg.Pool, mail_db: str, smtp: CapturingSmtp
) -> None:
    rows = [await queue_row(pool, order_id=f"O-{i}") for i in range(50)]
    settings = mail_settings(mail_db, outbox_batch_size=5, **smtp.settings())
    pool_a = await create_pool(mail_db, min_size=1, max_size=2)
    pool_b = await create_pool(mail_db, min_size=1, max_size=2)
    try:
        async with dispatching(pool_a, settings) as a, dispatching(pool_b, settings) as b:
            await eventually(lambda: all_sent(pool), what="50 rows sent")
    finally:
        await pool_a.close()
        await pool_b.close()
    received = smtp.received
    assert len(received) == 50
    assert {r.message_id for r in received} == {message_id(r["notification_key"]) for r in rows}
    assert a.sent + b.sent == 50
    assert a.sent and b.sent, "both dispatchers took part"
    assert a.failed_attempts == b.failed_attempts == 0
    assert await pool.fetchval("SELECT max(attempts) FROM notifications") == 1


async def test_lease_backoff_and_fencing_in_the_repository(pool: asyncpg.Pool) -> None:
    row = await queue_row(pool)
    rid = row["id"]

    async def make_due() -> None:
        await pool.execute("UPDATE notifications SET next_attempt_at = now() WHERE id = $1", rid)

    async def claim() -> asyncpg.Record:
        claimed = await outbox.claim_due(pool, limit=10, lease_seconds=60, max_attempts=4)
        assert [c["id"] for c in claimed] == [rid]
        return claimed[0]

    delays = []
    for attempt in range(1, 4):
        claimed = await claim()
        assert claimed["attempts"] == attempt
        assert await outbox.claim_due(pool, limit=10, lease_seconds=60, max_attempts=4) == []
        outcome = await outbox.mark_failed_attempt(
            pool,
            rid,
            claimed["lease_token"],
            "451 try later",
            max_attempts=4,
            backoff_seconds=10,
            backoff_max_seconds=25,
        )
        assert outcome is not None and outcome["status"] == "pending"
        delay = await pool.fetchval(
            "SELECT extract(epoch FROM next_attempt_at - now()) FROM notifications WHERE id = $1",
            rid,
        )
        delays.append(round(float(delay)))
        await make_due()
    assert delays == [10, 20, 25], "base * 2^(attempts-1), capped"

    # The fourth attempt is the last: the row fails.
    claimed = await claim()
    outcome = await outbox.mark_failed_attempt(
        pool,
        rid,
        claimed["lease_token"],
        "550 no",
        max_attempts=4,
        backoff_seconds=10,
        backoff_max_seconds=25,
    )
    assert outcome is not None and outcome["status"] == "failed"
    assert await outbox.claim_due(pool, limit=10, lease_seconds=60, max_attempts=4) == []

    # An admin's retry: pending, attempts from zero; a second retry is refused.
    retried = await outbox.retry(pool, rid)
    assert retried is not None and (retried["status"], retried["attempts"]) == ("pending", 0)
    assert await outbox.retry(pool, rid) is None

    # Fencing: after the lease ran out another claim wins; the first holder changes nothing.
    first = await claim()
    await pool.execute(
        """UPDATE notifications SET next_attempt_at = now() - interval '1 s',
                  lease_until = now() - interval '1 s' WHERE id = $1""",
        rid,
    )
    second = await claim()
    assert second["lease_token"] != first["lease_token"]
    assert not await outbox.mark_sent(pool, rid, first["lease_token"])
    assert await outbox.release(pool, [(rid, first["lease_token"])]) == 0
    # Handing back an untried claim does not count it as an attempt.
    assert await outbox.release(pool, [(rid, second["lease_token"])]) == 1
    assert await column(pool, rid, "attempts") == first["attempts"]
    third = await claim()
    assert await outbox.mark_sent(pool, rid, third["lease_token"])
    assert await column(pool, rid, "status") == "sent"

    # A row whose dispatcher died on its last attempt is given up, not claimed again.
    dying = await queue_row(pool)
    await pool.execute(
        """UPDATE notifications SET status = 'sending', attempts = 4, lease_token = gen_random_uuid(),
                  next_attempt_at = now() - interval '1 s', lease_until = now() - interval '1 s'
            WHERE id = $1""",
        dying["id"],
    )
    assert await outbox.claim_due(pool, limit=10, lease_seconds=60, max_attempts=4) == []
    assert await outbox.fail_abandoned(pool, max_attempts=4) == [dying["id"]]
    assert "lease expired" in await column(pool, dying["id"], "last_error")


# ---------------------------------------------------------------- refusals and retry
async def test_a_refused_mail_fails_is_queued_for_customer_service_and_retried_by_an_admin(
    pool: asyncpg.Pool,
    mail_db: str,
    smtp: CapturingSmtp,
    stack: Stack,
    cli: CliRunner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orderflow.outbox")
    secret_address = "ann.secret-person@example.com"
    row = await queue_row(pool, recipient=secret_address, order_id="O-REFUSED")
    rid = row["id"]
    smtp.set_mode("reject", code=550)
    async with dispatching(pool, mail_settings(mail_db, **smtp.settings())):
        await wait_status(pool, rid, "failed")

        state = await pool.fetchrow(
            "SELECT attempts, last_error FROM notifications WHERE id = $1", rid
        )
        assert state["attempts"] == 3
        assert smtp.refusals == 3
        assert "permanent refusal" in state["last_error"] and "550" in state["last_error"]
        assert smtp.received == []

        queue = await stack.http("GET", "/departments/customer_service/queue", role="admin")
        assert queue.status_code == 200, queue.text
        items = [i for i in queue.json()["items"] if i["kind"] == "failed_mail"]
        assert [(i["ref"], i["order_id"], i["status"]) for i in items] == [
            (str(rid), "O-REFUSED", "failed")
        ]
        assert items[0]["details"]["attempts"] == 3

        listed = await stack.http("GET", "/mail/outbox?status=failed", role="admin")
        assert [r["id"] for r in listed.json()] == [rid]
        assert listed.json()[0]["message_id"] == message_id(row["notification_key"])
        forbidden = await stack.http("GET", "/mail/outbox", role="warehouse")
        assert forbidden.status_code == 403

        unknown = await stack.http("POST", "/mail/outbox/999999999/retry", role="admin")
        assert unknown.status_code == 404 and "999999999" in unknown.json()["detail"]

        outbox_cli = await asyncio.to_thread(
            cli.invoke, cli_app, ["mail", "outbox", "--status", "failed", "--json"]
        )
        assert outbox_cli.exit_code == 0, outbox_cli.output
        assert f'"id": {rid}' in outbox_cli.output

        # The server takes mail again; the admin sends the failed row once more.
        smtp.set_mode("accept")
        retried = await asyncio.to_thread(cli.invoke, cli_app, ["mail", "retry", str(rid)])
        assert retried.exit_code == 0, retried.output
        await wait_status(pool, rid, "sent")

        again = await asyncio.to_thread(cli.invoke, cli_app, ["mail", "retry", str(rid)])
        assert again.exit_code == 1
        assert "409" in again.output and "not failed" in again.output

    assert [r.message_id for r in smtp.received] == [message_id(row["notification_key"])]
    queue = await stack.http("GET", "/departments/customer_service/queue", role="admin")
    assert not [i for i in queue.json()["items"] if i["kind"] == "failed_mail"]
    assert "O-REFUSED" in caplog.text
    assert "ann.secret-person" not in caplog.text, "logs never show a customer's address"


async def test_temporary_refusals_retry_until_the_server_takes_the_mail(
    pool: asyncpg.Pool, mail_db: str, smtp: CapturingSmtp
) -> None:
    row = await queue_row(pool)
    smtp.set_mode("tempfail", code=450, stage="rcpt")
    async with dispatching(pool, mail_settings(mail_db, outbox_max_attempts=20, **smtp.settings())):

        async def refused_twice() -> bool:
            return smtp.refusals >= 2

        await eventually(refused_twice, what="two refusals")
        error = await pool.fetchval("SELECT last_error FROM notifications WHERE id = $1", row["id"])
        assert error.startswith("temporary refusal, recipient refused: 450")
        smtp.set_mode("accept")
        await wait_status(pool, row["id"], "sent")
    assert len(smtp.received) == 1


# ---------------------------------------------------------------- TLS and login
@pytest.mark.parametrize("security", ["tls", "starttls"])
# aiosmtpd counts only STARTTLS as TLS; with implicit TLS the login is encrypted all the same.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_tls_and_login(security: str, tmp_path: Path) -> None:
    cert = self_signed_certificate(tmp_path)
    if cert is None:
        pytest.skip("openssl is not installed")
    context = cert.server_context()
    kwargs: dict[str, Any] = (
        {"implicit_tls": context} if security == "tls" else {"starttls": context}
    )
    with CapturingSmtp(login=("shop", "s3cret"), **kwargs) as server:
        settings = Settings(
            **server.settings(),
            smtp_security=security,
            smtp_username="shop",
            smtp_password="s3cret",
            smtp_ca_file=cert.cert,
        )
        mail = OutgoingMail(
            "tls:1", "O-TLS", "order_confirmation", "tls@example.com", "Hi", "Hello"
        )
        async with SmtpSession(settings) as session:
            reply = await session.send(build_message(mail, settings), mail.recipient)
        assert "kept" in reply
        assert server.logins == ["shop"]
        assert [r.message_id for r in server.received] == [message_id("tls:1")]

        wrong = settings.model_copy(update={"smtp_password": "wrong"})
        with pytest.raises(DeliveryError) as refused:
            async with SmtpSession(wrong) as session:
                await session.send(build_message(mail, wrong), mail.recipient)
        assert refused.value.permanent and refused.value.code == 535
        assert "authentication failed" in str(refused.value)


def test_addresses_are_masked_in_log_text() -> None:
    text = "550 5.1.1 <ann.lee+shop@example.co.uk>: no such user; bob@x.org too"
    assert mask_addresses(text) == "550 5.1.1 <***@example.co.uk>: no such user; ***@x.org too"


# ---------------------------------------------------------------- the embedded mail server
async def test_the_mail_server_keeps_what_it_receives_and_people_read_it(
    pool: asyncpg.Pool,
    mail_db: str,
    mail_server: dict[str, Any],
    stack: Stack,
    cli: CliRunner,
) -> None:
    base = mail_server["url"]
    async with httpx.AsyncClient(base_url=base) as http:
        await http.delete("/messages")
        # The next message is refused once (as a real server may), then accepted.
        control = await http.post("/control", json={"mode": "tempfail", "times": 1})
        assert control.status_code == 200 and control.json()["mode"] == "tempfail"
        bad = await http.post("/control", json={"mode": "reject", "code": 451})
        assert bad.status_code == 422

        to_ann = await queue_row(
            pool,
            recipient="ann@example.com",
            order_id="O-ANN",
            subject="Ann's order",
            body="Dear Ann,\nthanks.",
        )
        to_bob = await queue_row(
            pool, recipient="bob@example.com", order_id="O-BOB", subject="Bob's order"
        )
        settings = mail_settings(mail_db, smtp_host="127.0.0.1", smtp_port=mail_server["smtp_port"])
        async with dispatching(pool, settings):
            await eventually(lambda: all_sent(pool), what="both rows sent")
        assert (await http.get("/control")).json()["refused"] >= 1
        assert (await http.get("/control")).json()["mode"] == "accept"

        listed = (await http.get("/messages", params={"to": "ANN@example.com"})).json()
        assert [(m["subject"], m["to"], m["order_id"]) for m in listed] == [
            ("Ann's order", ["ann@example.com"], "O-ANN")
        ]
        assert listed[0]["message_id"] == message_id(to_ann["notification_key"])
        ann_id = listed[0]["id"]
        detail = (await http.get(f"/messages/{ann_id}")).json()
        assert detail["text"] == "Dear Ann,\nthanks.\n"
        assert "<pre" in detail["html"]
        assert ["X-Orderflow-Order", "O-ANN"] in detail["headers"]
        raw = await http.get(f"/messages/{ann_id}/raw")
        assert raw.headers["content-type"].startswith("message/rfc822")
        assert (await http.get("/messages/999999")).status_code == 404

    # The command line reads the mailbox.
    listed_cli = await asyncio.to_thread(
        cli.invoke, cli_app, ["mail", "list", "--to", "bob@example.com"]
    )
    assert listed_cli.exit_code == 0, listed_cli.output
    assert "Bob's order" in listed_cli.output and "Ann's order" not in listed_cli.output
    shown = await asyncio.to_thread(cli.invoke, cli_app, ["mail", "show", str(ann_id)])
    assert shown.exit_code == 0, shown.output
    assert "Dear Ann," in shown.output and "X-Orderflow-Order: O-ANN" in shown.output
    missing = await asyncio.to_thread(cli.invoke, cli_app, ["mail", "show", "999999"])
    assert missing.exit_code == 1 and "404" in missing.output

    # The API reads it for the admin mailbox page.
    messages = await stack.http("GET", "/mailbox/messages?to=bob@example.com", role="admin")
    assert messages.status_code == 200
    assert [m["message_id"] for m in messages.json()] == [message_id(to_bob["notification_key"])]
    one = await stack.http("GET", f"/mailbox/messages/{ann_id}", role="admin")
    assert one.status_code == 200 and one.json()["text"] == "Dear Ann,\nthanks.\n"
    assert (await stack.http("GET", "/mailbox/messages/999999", role="admin")).status_code == 404
    assert (await stack.http("GET", "/mailbox/messages", role="reviewer")).status_code == 403
    stats = await stack.http("GET", "/mail/outbox/stats", role="admin")
    assert stats.status_code == 200, stats.text
    assert stats.json()["counts"] == {"pending": 0, "sending": 0, "sent": 2, "failed": 0}
    assert stats.json()["accepted_in_window"] == 2
    assert stats.json()["lag_p95_seconds"] >= stats.json()["lag_p50_seconds"] >= 0
    assert stats.json()["oldest_unsent_seconds"] is None
    page = await stack.http("GET", "/ui/mailbox.html", role=None)
    assert page.status_code == 200 and 'sandbox=""' in page.text
    assert (await stack.http("GET", "/ui/mailbox.js", role=None)).status_code == 200


async def test_an_unreachable_mailbox_is_a_503_and_exit_2(
    pool: asyncpg.Pool, stack: Stack, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    settings = stack.settings.model_copy(update={"mailbox_url": nowhere, "api_port": port})
    async with serve(create_app(settings, pool=pool, storefront=stack.storefront), port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            answer = await http.get(
                "/mailbox/messages", headers={"Authorization": "Bearer dev-admin"}
            )
    assert answer.status_code == 503
    assert "not reachable" in answer.json()["detail"]

    monkeypatch.setenv("ORDERFLOW_MAILBOX_URL", nowhere)
    get_settings.cache_clear()
    result = await asyncio.to_thread(cli.invoke, cli_app, ["mail", "list"])
    assert result.exit_code == 2
    assert "cannot reach the mailbox" in result.output
