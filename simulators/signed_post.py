"""How the simulators post their signed webhooks, as the outside parties they stand in for
do: the body signed with HMAC over a timestamp (`orderflow/signing.py`), signed afresh on
every attempt (the receiver refuses stale timestamps), and retried with exponential backoff
until a 2xx or the attempts run out. Each attempt is written on the delivery record, which
the simulator lists for debugging."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import httpx

from orderflow.signing import signed_headers

log = logging.getLogger(__name__)


class DeliveryRecord(Protocol):
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered: bool


@dataclass(frozen=True)
class Retries:
    attempts: int
    backoff_seconds: float
    backoff_max_seconds: float

    def backoff(self, attempt: int) -> float:
        """The wait after the `attempt`-th failed attempt."""
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.backoff_max_seconds)


async def post_signed(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    secret: str,
    retries: Retries,
    delivery: DeliveryRecord,
    what: str,
) -> None:
    """Post `body` to `url`, signed with `secret`, until it is taken or `retries` are spent;
    `what` names the event in the log line of a delivery given up on."""
    for attempt in range(1, retries.attempts + 1):
        delivery.attempts = attempt
        headers = {
            "Content-Type": "application/json",
            **signed_headers(secret, body, int(time.time())),
        }
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            delivery.last_error = f"{type(exc).__name__}: {exc}"
        else:
            delivery.last_status_code = response.status_code
            if response.is_success:
                delivery.delivered = True
                delivery.last_error = None
                return
            delivery.last_error = response.text[:200]
        if attempt == retries.attempts:
            log.warning(
                "gave up posting %s to %s after %d attempts: %s",
                what,
                url,
                attempt,
                delivery.last_error,
            )
        else:
            await asyncio.sleep(retries.backoff(attempt))
