"""Sends what the notification outbox holds: e-mails to customers and department notices
(a department's notice is an e-mail to its lead), over SMTP.

One round: claim due rows with a lease (db/repositories/outbox.py), send each, and mark a
row sent only after the server answered 250. A failure of any kind is recorded on the row
(retried with backoff, `failed` after `outbox_max_attempts`); it never stops the loop, and
the loop outlives database outages. Rows of a dispatcher that died are claimed again by
another once their lease has run out; rows a dispatcher has no lease time left for, or
that it holds when it is stopped, are handed back untried. Several dispatchers (one per
worker) share the outbox, and each row is sent once in normal operation.

Without `ORDERFLOW_SMTP_HOST` nothing is sent and nothing is marked: rows wait.

Logs name rows by id, kind and order, never by a customer's address.

Run alone with `python -m workers.outbox` (DATABASE_URL and the SMTP settings from the
environment), e.g. when workers run with ORDERFLOW_OUTBOX_DISPATCH=false.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence

import asyncpg

from db.repositories import outbox
from orderflow.logs import configure_logging
from orderflow.settings import Settings, get_settings
from workers.smtp import OutgoingMail, SmtpSession, build_message, describe_error, mask_addresses

log = logging.getLogger("orderflow.outbox")

# Pause after an unexpected error of a round (database down, ...), growing up to the max.
_ERROR_PAUSE_SECONDS = 1.0
_ERROR_PAUSE_MAX_SECONDS = 30.0


def _mail_of(row: asyncpg.Record) -> OutgoingMail:
    return OutgoingMail(
        notification_key=row["notification_key"],
        order_id=row["order_id"],
        kind=row["kind"],
        recipient=row["recipient"],
        subject=row["subject"],
        body=row["body"],
        body_html=row["body_html"],
    )


def _what(row: asyncpg.Record) -> str:
    """A row as logs name it: id, kind and order, no address."""
    order = f" of order {row['order_id']}" if row["order_id"] else ""
    return f"mail {row['id']} ({row['channel']} {row['kind']}{order})"


class OutboxDispatcher:
    """Claims, sends and records; `run` loops until cancelled (or `stop` is set)."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.sent = 0
        self.failed_attempts = 0

    async def dispatch_once(self) -> int:
        """One round; returns how many rows it claimed (0: nothing was due)."""
        s = self.settings
        # Measured before the claim: the lease runs from the database's clock at the claim,
        # so this end is never later than the real one.
        lease_ends = time.monotonic() + s.outbox_lease_seconds
        async with self.pool.acquire() as conn:
            abandoned = await outbox.fail_abandoned(conn, max_attempts=s.outbox_max_attempts)
            rows = await outbox.claim_due(
                conn,
                limit=s.outbox_batch_size,
                lease_seconds=s.outbox_lease_seconds,
                max_attempts=s.outbox_max_attempts,
            )
        for row_id in abandoned:
            log.warning("mail %s failed: its dispatcher stopped on the last attempt", row_id)
        if rows:
            await self._deliver(rows, lease_ends)
        return len(rows)

    async def _deliver(self, rows: Sequence[asyncpg.Record], lease_ends: float) -> None:
        s = self.settings
        # A send may take up to the SMTP timeout; never start one the lease may not cover,
        # or another dispatcher could take the row over while it is on the wire.
        margin = min(s.smtp_timeout_seconds, s.outbox_lease_seconds / 2)
        pending: dict[int, uuid.UUID] = {row["id"]: row["lease_token"] for row in rows}
        try:
            async with SmtpSession(s) as smtp:
                for row in rows:
                    if time.monotonic() + margin > lease_ends:
                        break
                    del pending[row["id"]]
                    await self._deliver_one(smtp, row)
        finally:
            if pending:
                await self._hand_back(pending)

    async def _deliver_one(self, smtp: SmtpSession, row: asyncpg.Record) -> None:
        s = self.settings
        try:
            message = build_message(_mail_of(row), s)
            await smtp.send(message, row["recipient"])
        except Exception as exc:
            error = describe_error(exc)
            self.failed_attempts += 1
            outcome = await outbox.mark_failed_attempt(
                self.pool,
                row["id"],
                row["lease_token"],
                str(error),
                max_attempts=s.outbox_max_attempts,
                backoff_seconds=s.outbox_backoff_seconds,
                backoff_max_seconds=s.outbox_backoff_max_seconds,
            )
            if outcome is None:
                log.warning("%s: attempt failed after its lease was taken over", _what(row))
            elif outcome["status"] == "failed":
                log.error(
                    "%s failed for good after %d attempts: %s",
                    _what(row),
                    outcome["attempts"],
                    mask_addresses(str(error)),
                )
            else:
                log.warning(
                    "%s attempt %d failed, next at %s: %s",
                    _what(row),
                    outcome["attempts"],
                    outcome["next_attempt_at"].isoformat(timespec="seconds"),
                    mask_addresses(str(error)),
                )
            return
        # Accepted (250). A database error here leaves the row `sending`: it is sent again
        # after the lease, with the same Message-ID, which receivers de-duplicate.
        if await outbox.mark_sent(self.pool, row["id"], row["lease_token"]):
            self.sent += 1
            log.info("%s accepted by the SMTP server", _what(row))
        else:
            log.warning("%s accepted, but its lease had been taken over meanwhile", _what(row))

    async def _hand_back(self, claims: dict[int, uuid.UUID]) -> None:
        # Also on cancellation (a stopping worker): shielded, and bounded in time.
        try:
            released = await asyncio.shield(
                asyncio.wait_for(outbox.release(self.pool, list(claims.items())), timeout=5)
            )
        except asyncio.CancelledError:
            log.warning("stopped while handing back %d claimed mails", len(claims))
            raise
        except Exception as exc:
            log.warning(
                "could not hand back %d claimed mails (they are sent after their lease): %s",
                len(claims),
                mask_addresses(str(exc)),
            )
            return
        if released:
            log.info("handed back %d claimed mails untried", released)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Dispatch until cancelled or `stop` is set; a failing round is logged and retried."""
        s = self.settings
        if not s.smtp_host:
            log.warning(
                "SMTP is not configured (ORDERFLOW_SMTP_HOST): no mail is sent, the outbox "
                "keeps every notification pending"
            )
            return
        security = s.smtp_security
        log.info("outbox dispatcher sending via %s:%s (%s)", s.smtp_host, s.smtp_port, security)
        if s.outbox_lease_seconds < 2 * s.smtp_timeout_seconds:
            log.warning(
                "outbox_lease_seconds (%g) is under twice smtp_timeout_seconds (%g): a slow "
                "send may outlast its lease, and another dispatcher send the mail again",
                s.outbox_lease_seconds,
                s.smtp_timeout_seconds,
            )
        pause = _ERROR_PAUSE_SECONDS
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                claimed = await self.dispatch_once()
            except Exception as exc:
                log.warning(
                    "outbox round failed, retrying in %.0f s: %s: %s",
                    pause,
                    type(exc).__name__,
                    mask_addresses(str(exc)),
                )
                await _sleep_unless(stop, pause)
                pause = min(pause * 2, _ERROR_PAUSE_MAX_SECONDS)
                continue
            pause = _ERROR_PAUSE_SECONDS
            # A full batch means more may be due: go again at once.
            if claimed < s.outbox_batch_size:
                await _sleep_unless(stop, s.outbox_interval_seconds)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_dispatcher(
    pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """The worker's dispatcher task (workers/order_worker.py)."""
    await OutboxDispatcher(pool, settings).run(stop)


async def main() -> None:
    from db.pool import create_pool

    settings = get_settings()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set")
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await run_dispatcher(pool, settings)
    finally:
        await pool.close()


if __name__ == "__main__":
    configure_logging(get_settings())
    asyncio.run(main())
