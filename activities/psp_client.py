"""The adapter in front of the payment service provider's (PSP) HTTP API.

It speaks the API of `orderflow.models.psp` (the project's simulator, `simulators/psp.py`,
implements it) with the configured API key as a Bearer token. Every call that moves money
carries the caller's `Idempotency-Key`, so the call retries transient failures (connection
errors and timeouts, 5xx, 429) with bounded exponential backoff under the same key, and the
PSP counts the effect once. What cannot succeed by retrying surfaces as a typed error:
`PaymentRefused` (402: the PSP or the card issuer said no, e.g. `authorization_expired`),
`PaymentNotFound` (404) and `PaymentRejected` (any other 4xx: the request is wrong as sent);
`PspUnavailable` when the transient failures outlast the attempts.

The client imports nothing of Temporal: the activities that use it decide what each error
means for an order (retry later, ask a person, give up).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from orderflow.models.psp import (
    CaptureRequest,
    PaymentFacts,
    PspCapture,
    PspPayment,
    PspPaymentPage,
    PspRefund,
    ReauthorizeRequest,
    RefundRequest,
    VoidRequest,
)
from orderflow.redact import mask_addresses
from orderflow.settings import Settings

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Worth another attempt under the same key: the PSP may not have seen it, or is overloaded.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class PspClientError(Exception):
    """A PSP call that did not succeed; `code` is the PSP's error code when it sent one."""

    def __init__(self, status_code: int | None, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}" if code else detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail


class PaymentRefused(PspClientError):
    """402: the PSP or the card issuer refused (`authorization_expired`, `declined`)."""


class PaymentNotFound(PspClientError):
    """404: the PSP knows no such payment."""


class PaymentRejected(PspClientError):
    """A permanent refusal of the request as sent (400, 401, 403, 409, 422, ...)."""


class PspUnavailable(PspClientError):
    """Transient failures (no connection, timeouts, 5xx, 429) outlasted every attempt."""


class PspClient:
    """Calls to the PSP; use as `async with PspClient(settings) as psp:` or `aclose()` it."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.psp_api_url.rstrip("/"),
            transport=transport,
            timeout=settings.psp_http_timeout_seconds,
            headers={"Authorization": f"Bearer {settings.psp_api_key}"},
        )

    async def __aenter__(self) -> PspClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- money ---

    async def capture(
        self, transaction_id: str, amount: Decimal, payment: PaymentFacts, idempotency_key: str
    ) -> PspCapture:
        """Capture `amount` (all or part of what is left of the authorisation).

        The capture may come back `pending` (the outcome follows by webhook).
        """
        body = CaptureRequest(amount=amount, payment=payment)
        response = await self._request(
            "POST", f"{_path(transaction_id)}/captures", payload=body, key=idempotency_key
        )
        return PspCapture.model_validate(response.json())

    async def void(
        self, transaction_id: str, payment: PaymentFacts, idempotency_key: str
    ) -> PspPayment:
        """Release an authorisation of which nothing was captured."""
        body = VoidRequest(payment=payment)
        response = await self._request(
            "POST", f"{_path(transaction_id)}/voids", payload=body, key=idempotency_key
        )
        return PspPayment.model_validate(response.json())

    async def refund(
        self,
        transaction_id: str,
        amount: Decimal,
        payment: PaymentFacts,
        idempotency_key: str,
        *,
        reason: str,
    ) -> PspRefund:
        """Refund `amount` of what was captured; it settles later (webhook `refund.settled`)."""
        body = RefundRequest(amount=amount, reason=reason, payment=payment)
        response = await self._request(
            "POST", f"{_path(transaction_id)}/refunds", payload=body, key=idempotency_key
        )
        return PspRefund.model_validate(response.json())

    async def reauthorize(
        self,
        transaction_id: str,
        payment: PaymentFacts,
        idempotency_key: str,
        ttl: timedelta | None = None,
    ) -> PspPayment:
        """Renew the authorisation for `ttl` from now (default: the configured lifetime)."""
        lifetime = ttl if ttl is not None else self._settings.payment_authorization_ttl
        body = ReauthorizeRequest(ttl_seconds=int(lifetime.total_seconds()), payment=payment)
        response = await self._request(
            "POST", f"{_path(transaction_id)}/reauthorizations", payload=body, key=idempotency_key
        )
        return PspPayment.model_validate(response.json())

    # --- reading ---

    async def get(self, transaction_id: str) -> PspPayment:
        response = await self._request("GET", _path(transaction_id))
        return PspPayment.model_validate(response.json())

    async def list_payments(self, page_size: int = 100) -> list[PspPayment]:
        """Every payment the PSP holds, oldest first, following the cursors page by page."""
        payments: list[PspPayment] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor is not None:
                params["after"] = cursor
            response = await self._request("GET", "/payments", params=params)
            page = PspPaymentPage.model_validate(response.json())
            payments.extend(page.payments)
            if page.next_cursor is None or not page.payments:
                return payments
            cursor = page.next_cursor

    # --- transport ---

    async def _request(
        self,
        method: str,
        path: str,
        *,
        payload: BaseModel | None = None,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        s = self._settings
        headers = {IDEMPOTENCY_HEADER: key} if key is not None else {}
        content = payload.model_dump_json().encode() if payload is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        last: str = ""
        last_status: int | None = None
        for attempt in range(1, s.psp_client_attempts + 1):
            retry_after = 0.0
            try:
                response = await self._http.request(
                    method, path, content=content, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                last, last_status = f"{type(exc).__name__}: {exc}", None
            else:
                if response.is_success:
                    return response
                if response.status_code not in TRANSIENT_STATUS:
                    raise _error(response)
                last_status = response.status_code
                last = f"{response.status_code} {response.text[:200]}"
                retry_after = _retry_after(response)
            if attempt < s.psp_client_attempts:
                backoff = max(s.psp_client_backoff_seconds * 2 ** (attempt - 1), retry_after)
                log.info("PSP %s %s failed (%s); retrying", method, path, mask_addresses(last))
                await asyncio.sleep(min(backoff, s.psp_client_backoff_max_seconds))
        raise PspUnavailable(
            last_status,
            "unavailable",
            f"{method} {path} failed {s.psp_client_attempts} times; last: {last}",
        )


def _path(transaction_id: str) -> str:
    return f"/payments/{quote(transaction_id, safe='')}"


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "0")), 0.0)
    except ValueError:
        return 0.0


def _error(response: httpx.Response) -> PspClientError:
    # Read loosely rather than as `PspError`: a code this client does not know yet must
    # still reach the caller, and a proxy's page in place of the PSP's body keeps its text.
    code, detail = f"http_{response.status_code}", response.text[:200]
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        code = str(problem.get("code") or code)
        detail = str(problem.get("detail") or detail)
    status = response.status_code
    if status == 402:
        return PaymentRefused(status, code, detail)
    if status == 404:
        return PaymentNotFound(status, code, detail)
    return PaymentRejected(status, code, detail)


__all__ = [
    "IDEMPOTENCY_HEADER",
    "PaymentNotFound",
    "PaymentRefused",
    "PaymentRejected",
    "PspClient",
    "PspClientError",
    "PspUnavailable",
]
