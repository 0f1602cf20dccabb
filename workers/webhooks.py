"""Sends outbound webhooks: every order event, signed, to each subscription that wants it.

One round: dead-letter what outlived `webhook_max_age`, claim due deliveries with a lease
(db/repositories/webhooks.py) and POST each in a task of its own, so a slow or dead
subscriber holds only its own deliveries (at most `webhook_concurrency` on the wire per
dispatcher), never another subscriber's. A delivery is `delivered` on any 2xx; anything else
is retried with exponential backoff (policies/webhooks.py) until the max age, then it is
`dead` and waits for an admin's retry. The claim only hands out the earliest undelivered
event of an order per subscription, so events arrive in order per order.

Several dispatchers (one per worker) share the deliveries; a dispatcher that dies leaves
its claims to be taken over once their lease has run out, and one that stops hands back
what it has not sent. Delivery is at least once: a receiver de-duplicates by
`Orderflow-Event-Id`.

Logs name deliveries by id, subscription, event type and order; URLs lose their secrets
(`redact_url`), and no signing secret is ever logged.

Run alone with `python -m workers.webhooks`, e.g. when workers run with
ORDERFLOW_WEBHOOK_DISPATCH=false.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import Counter
from datetime import timedelta

import asyncpg
import httpx

from db.repositories import webhooks as repo
from orderflow.logs import configure_logging
from orderflow.redact import redact_url
from orderflow.settings import Settings, get_settings
from orderflow.webhooks import (
    SecretUnreadable,
    WebhookKeyMissing,
    event_body,
    open_secret,
    secret_key,
    signed_headers,
)
from policies.webhooks import delivered, next_attempt

log = logging.getLogger("orderflow.webhooks")

_ERROR_PAUSE_SECONDS = 1.0
_ERROR_PAUSE_MAX_SECONDS = 30.0
# Of a receiver's refusal, what is kept on the delivery: enough to see why.
_BODY_EXCERPT = 200


def _what(row: asyncpg.Record) -> str:
    return (
        f"webhook delivery {row['id']} (subscription {row['subscription_id']}, "
        f"{row['event_type']} of order {row['order_id']})"
    )


class WebhookDispatcher:
    """Claims, sends and records; `run` loops until cancelled (or `stop` is set)."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient | None = None
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.http = http
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0
        self._in_flight: dict[int, tuple[uuid.UUID, asyncio.Task[None]]] = {}
        # Deliveries on the wire per subscription: the claims serve the least busy first.
        self._busy: Counter[int] = Counter()
        # Set when a delivery ends, so the next event of its order goes out at once rather
        # than a polling interval later.
        self._wake = asyncio.Event()

    async def dispatch_once(self) -> int:
        """One round; returns how many deliveries it claimed."""
        s = self.settings
        free = s.webhook_concurrency - len(self._in_flight)
        async with self.pool.acquire() as conn:
            expired = await repo.dead_letter_expired(conn, max_age=s.webhook_max_age)
            rows = (
                await repo.claim_due(
                    conn, limit=free, lease_seconds=s.webhook_lease_seconds, busy=self._busy
                )
                if free > 0
                else []
            )
        for gone in expired:
            self.dead += 1
            log.error(
                "webhook delivery %s (subscription %s, order %s) dead-lettered: older than %s",
                gone["id"],
                gone["subscription_id"],
                gone["order_id"],
                s.webhook_max_age,
            )
        for row in rows:
            task = asyncio.create_task(self._deliver_one(row))
            self._in_flight[row["id"]] = (row["lease_token"], task)
            self._busy[row["subscription_id"]] += 1
            task.add_done_callback(functools.partial(self._done, row["id"], row["subscription_id"]))
        return len(rows)

    def _done(self, row_id: int, subscription_id: int, _: asyncio.Task[None]) -> None:
        self._in_flight.pop(row_id, None)
        self._busy[subscription_id] -= 1
        if self._busy[subscription_id] <= 0:
            del self._busy[subscription_id]
        self._wake.set()

    async def _deliver_one(self, row: asyncpg.Record) -> None:
        s = self.settings
        assert self.http is not None
        claimed = time.monotonic()
        status_code: int | None = None
        error = ""
        try:
            secret = open_secret(secret_key(s), row["secret_sealed"])
            body = event_body(
                event_id=row["event_id"],
                event_type=row["event_type"],
                order_id=row["order_id"],
                status=row["order_status"],
                occurred_at=row["occurred_at"],
                data=row["details"],
            )
            headers = signed_headers(secret, row["event_id"], body, int(time.time()))
            response = await self.http.post(
                row["url"], content=body, headers=headers, timeout=s.webhook_timeout_seconds
            )
            status_code = response.status_code
            if not delivered(status_code):
                error = f"HTTP {status_code}: {response.text[:_BODY_EXCERPT]}"
        except (SecretUnreadable, WebhookKeyMissing) as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = int((time.monotonic() - claimed) * 1000)
        if delivered(status_code):
            assert status_code is not None
            if await repo.mark_delivered(
                self.pool,
                row["id"],
                row["lease_token"],
                status_code=status_code,
                latency_ms=latency_ms,
            ):
                self.delivered += 1
                log.info("%s delivered (%s, %d ms)", _what(row), status_code, latency_ms)
            else:
                log.warning("%s delivered, but its lease had been taken over", _what(row))
            return
        self.failed_attempts += 1
        # The database's clock, as the claim saw it, moved on by the time the attempt took.
        now = row["db_now"] + timedelta(seconds=time.monotonic() - claimed)
        retry_at = next_attempt(
            attempt=row["attempts"],
            now=now,
            age_from=row["age_from"],
            max_age=s.webhook_max_age,
            base=s.webhook_backoff_seconds,
            cap=s.webhook_backoff_max_seconds,
        )
        outcome = await repo.mark_failed(
            self.pool,
            row["id"],
            row["lease_token"],
            status_code=status_code,
            error=error,
            latency_ms=latency_ms,
            next_attempt_at=retry_at,
        )
        if outcome is None:
            log.warning("%s: attempt failed after its lease was taken over", _what(row))
        elif outcome["status"] == "dead":
            self.dead += 1
            log.error(
                "%s dead-lettered after %d attempts: %s", _what(row), outcome["attempts"], error
            )
        else:
            log.warning(
                "%s attempt %d to %s failed, next at %s: %s",
                _what(row),
                outcome["attempts"],
                redact_url(row["url"]),
                outcome["next_attempt_at"].isoformat(timespec="seconds"),
                error,
            )

    async def _finish(self) -> None:
        """Let deliveries on the wire end (within the timeout), then hand back the rest."""
        tasks = [task for _, task in self._in_flight.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.webhook_timeout_seconds + 1)
        await self._abandon()

    async def _abandon(self) -> None:
        claims = [(row_id, token) for row_id, (token, _) in self._in_flight.items()]
        for _, task in self._in_flight.values():
            task.cancel()
        if not claims:
            return
        # Also on cancellation (a stopping worker): shielded, and bounded in time.
        try:
            released = await asyncio.shield(
                asyncio.wait_for(repo.release(self.pool, claims), timeout=5)
            )
        except Exception as exc:
            log.warning(
                "could not hand back %d webhook deliveries (sent after their lease): %s",
                len(claims),
                exc,
            )
            return
        if released:
            log.info("handed back %d webhook deliveries untried", released)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Dispatch until cancelled or `stop` is set; a failing round is logged and retried."""
        s = self.settings
        if s.webhook_lease_seconds < 2 * s.webhook_timeout_seconds:
            log.warning(
                "webhook_lease_seconds (%g) is under twice webhook_timeout_seconds (%g): a "
                "slow receiver may outlast the lease and get the event twice",
                s.webhook_lease_seconds,
                s.webhook_timeout_seconds,
            )
        stop = stop or asyncio.Event()
        own_http = self.http is None
        if own_http:
            # Redirects are not followed: a subscription's URL is where events go, and a
            # redirect elsewhere would carry the signed event to a host nobody subscribed.
            self.http = httpx.AsyncClient(
                follow_redirects=False,
                limits=httpx.Limits(max_connections=s.webhook_concurrency),
            )
        pause = _ERROR_PAUSE_SECONDS
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    claimed = await self.dispatch_once()
                except Exception as exc:
                    log.warning(
                        "webhook round failed, retrying in %.0f s: %s: %s",
                        pause,
                        type(exc).__name__,
                        exc,
                    )
                    await _sleep_unless(stop, pause)
                    pause = min(pause * 2, _ERROR_PAUSE_MAX_SECONDS)
                    continue
                pause = _ERROR_PAUSE_SECONDS
                if claimed == 0 or len(self._in_flight) >= s.webhook_concurrency:
                    await _sleep_unless(stop, s.webhook_interval_seconds, self._wake)
            await self._finish()
        except asyncio.CancelledError:
            await self._abandon()
            raise
        finally:
            if own_http and self.http is not None:
                await self.http.aclose()
                self.http = None


async def _sleep_unless(
    stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None
) -> None:
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)


async def run_webhook_dispatcher(
    pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """The worker's webhook dispatcher task (workers/order_worker.py)."""
    await WebhookDispatcher(pool, settings).run(stop)


async def main() -> None:
    from db.pool import create_pool

    settings = get_settings()
    settings.require_safe_for_production()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set")
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        await run_webhook_dispatcher(pool, settings)
    finally:
        await pool.close()


if __name__ == "__main__":
    configure_logging(get_settings())
    asyncio.run(main())
