"""Abuse limits of one API process: token buckets per principal and action, and a count of
open event streams per principal and in all.

A principal is the caller behind the bearer token: an operator role's token, or the
customer of one order (a customer token opens one order only). The counts live in memory,
so each API process limits on its own; behind a load balancer of N processes a principal
gets up to N times the rate.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import HTTPException, Request, status
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from orderflow.settings import Settings

Action = Literal["place", "feedback", "cancel"]

# Buckets kept at most: the least recently used go first (a forgotten bucket starts full).
_MAX_BUCKETS = 10_000


@dataclass
class TokenBucket:
    capacity: float
    per_second: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; 0 when taken, else the seconds until one is there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


@dataclass(eq=False)
class StreamSlot:
    """One open stream; `release` frees it (more calls change nothing)."""

    limits: Limits
    key: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limits._stream_closed(self.key)


@dataclass
class Limits:
    settings: Settings
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[tuple[str, str], TokenBucket] = field(default_factory=OrderedDict)
    _streams: dict[str, int] = field(default_factory=dict)

    def _rate(self, action: Action) -> tuple[float, int]:
        s = self.settings
        return {
            "place": (s.rate_limit_place_per_minute, s.rate_limit_place_burst),
            "feedback": (s.rate_limit_feedback_per_minute, s.rate_limit_feedback_burst),
            "cancel": (s.rate_limit_cancel_per_minute, s.rate_limit_cancel_burst),
        }[action]

    def check(self, action: Action, principal: str) -> None:
        """Count one request; 429 with Retry-After when the principal's bucket is empty."""
        now = self.clock()
        key = (action, principal)
        bucket = self._buckets.get(key)
        if bucket is None:
            per_minute, burst = self._rate(action)
            bucket = TokenBucket(burst, per_minute / 60, burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > _MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take(now)
        if wait > 0:
            per_minute, burst = self._rate(action)
            raise too_many(
                f"too many {action} requests: at most {per_minute:g} a minute "
                f"(bursts of {burst}); retry later",
                wait,
            )

    @property
    def open_streams(self) -> int:
        return sum(self._streams.values())

    def open_stream(self, principal: str) -> StreamSlot:
        """A slot for one more stream of `principal`; 429 beyond either cap."""
        if self.open_streams >= self.settings.stream_max_total:
            raise too_many(
                f"the server has {self.settings.stream_max_total} event streams open; retry later",
                5,
            )
        if self._streams.get(principal, 0) >= self.settings.stream_max_per_principal:
            raise too_many(
                f"at most {self.settings.stream_max_per_principal} event streams open at once "
                "per caller; close one first",
                5,
            )
        self._streams[principal] = self._streams.get(principal, 0) + 1
        return StreamSlot(self, principal)

    def _stream_closed(self, principal: str) -> None:
        left = self._streams.get(principal, 0) - 1
        if left > 0:
            self._streams[principal] = left
        else:
            self._streams.pop(principal, None)


class StreamWithSlot(StreamingResponse):
    """A streaming response that frees its stream slot when it ends, however it ends
    (finished, client gone, server stopping), even if its body never started."""

    def __init__(self, content: Any, *, slot: StreamSlot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


def too_many(detail: str, retry_after: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def limits_of(request: Request) -> Limits:
    """The process's limits, made on first use (one event loop: no race)."""
    state = request.app.state
    limits: Limits | None = getattr(state, "limits", None)
    if limits is None:
        limits = Limits(state.settings)
        state.limits = limits
    return limits


def principal_key(request: Request) -> str:
    """Who is asking: the customer's order for a customer token, else the token itself
    (hashed, so no token is kept in memory). On one order's path an operator's token counts
    per order too: the storefront relays every customer's feedback and cancels, and one
    busy order must not use up the budget of all the others."""
    header = request.headers.get("authorization", "")
    token = header.partition(" ")[2].strip()
    order_id = request.path_params.get("order_id")
    if token.startswith("cust_") and order_id:
        return f"order:{order_id}"
    key = "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"{key}:order:{order_id}" if order_id else key


def rate_limited(action: Action) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A dependency counting the request against the principal's `action` bucket. List it
    after the route's `require(...)` so that only admitted callers are counted."""

    async def dependency(request: Request) -> None:
        limits_of(request).check(action, principal_key(request))

    dependency.openapi_statuses = (429,)  # type: ignore[attr-defined]
    return dependency
