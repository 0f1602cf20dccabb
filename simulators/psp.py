"""The payment service provider (PSP) simulator: a stand-in for a PSP's HTTP API.

It behaves like a card PSP after checkout: it captures an authorisation (in full or in
parts), voids one of which nothing was captured, renews one before it lapses, refunds what
was captured, and posts signed webhook events for the outcomes that arrive later (an
asynchronous capture, every refund's settlement, a chargeback), retrying with backoff while
the shop's webhook is down. Every money effect happens once per `Idempotency-Key`.

Endpoints (all but `/healthz` require `Authorization: Bearer <ORDERFLOW_PSP_API_KEY>`):
- `POST /payments` (key): checkout, what a storefront does: authorise (`capture: false`) or
  authorise and capture at once; 201;
- `GET /payments/{transaction_id}`; `GET /payments?after=<cursor>&limit=<n>`: every payment,
  oldest first, a page at a time (reconciliation reads it);
- `POST /payments/{id}/captures` (key): 201 (202 `pending` in mode `async`, the outcome
  follows as `capture.succeeded` / `capture.failed`); 402 `authorization_expired` once the
  authorisation has lapsed, 402 `declined` in mode `refuse`;
- `POST /payments/{id}/voids` (key): 200; 409 `already_captured` once something was captured;
- `POST /payments/{id}/refunds` (key): 201 `pending`, then `refund.settled` (or
  `refund.failed`); 409 `insufficient_captured` beyond what was captured and not refunded;
- `POST /payments/{id}/reauthorizations` (key): the authorisation lasts `ttl_seconds` from
  now; 200; 402 in modes `refuse` and `expired`;
- `POST /payments/{id}/disputes`: simulator control, the card holder's bank opens a
  chargeback; the webhook gets `dispute.opened`;
- `GET /payments/{id}/webhook-deliveries`: what the webhook answered (debugging aid);
- `GET /control`, `POST /control`: the behaviour; `GET /healthz`.

A repeated key answers 200 with the object the first request made (as it stands now), a key
reused with another request 422 `idempotency_conflict`; only successes are remembered, so
a declined or failed request may be retried under its key. Every error body is
`{"detail": ..., "code": ...}` (`orderflow.models.psp.PspError`).

Behaviours (simulator-wide, via settings or `POST /control`): `normal`; `slow` does the work
at once but answers only after `slow_seconds` (the case where a client's timeout hides a
capture that happened); `fail` answers 503 to the first N attempts of each idempotency key,
then does the work; `expired` treats every authorisation as lapsed; `refuse` declines
checkouts, captures and reauthorisations; `async` answers captures 202 and settles them by
webhook after `webhook_delay_seconds`, as `capture_outcome` says. Refunds always settle by
webhook, as `refund_outcome` says.

Sandbox adoption: every operation's body carries `payment`, the facts the shop's order holds
from checkout (amount, currency, authorised or captured, expiry). With
`psp_simulator_adopt_unknown` (the default), an operation on a transaction id the simulator
has never seen first creates that payment from those facts, like a sandbox in which every
checkout succeeded, so orders placed without this simulator (or before its restart) can be
captured and refunded. Without it such an operation answers 404 `payment_not_found`. A real
PSP ignores the field.

State lives in memory: this is a simulator, and a restart forgets every payment.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from orderflow.models.psp import (
    CaptureRequest,
    CreatePaymentRequest,
    DisputeRequest,
    PaymentFacts,
    PspCapture,
    PspCaptureStatus,
    PspDispute,
    PspError,
    PspErrorCode,
    PspEventType,
    PspPayment,
    PspPaymentPage,
    PspPaymentStatus,
    PspRefund,
    PspRefundStatus,
    PspWebhookEvent,
    ReauthorizeRequest,
    RefundRequest,
    VoidRequest,
)
from orderflow.settings import Settings, get_settings
from simulators.signed_post import Retries, post_signed

IDEMPOTENCY_HEADER = "Idempotency-Key"
ZERO = Decimal("0.00")

Mode = Literal["normal", "slow", "fail", "expired", "refuse", "async"]
CaptureOutcome = Literal["succeeded", "failed"]
RefundOutcome = Literal["settled", "failed"]


class Behaviour(BaseModel):
    """How the simulator behaves towards every payment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    fail_times: int = Field(ge=0)
    slow_seconds: float = Field(ge=0)
    webhook_delay_seconds: float = Field(ge=0)
    adopt_unknown: bool
    # What an asynchronous capture, and every refund, turn out to be.
    capture_outcome: CaptureOutcome = "succeeded"
    refund_outcome: RefundOutcome = "settled"


class ControlUpdate(BaseModel):
    """`POST /control`: change the behaviour (fields left out stay as they are)."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    fail_times: int | None = Field(default=None, ge=0)
    slow_seconds: float | None = Field(default=None, ge=0)
    webhook_delay_seconds: float | None = Field(default=None, ge=0)
    adopt_unknown: bool | None = None
    capture_outcome: CaptureOutcome | None = None
    refund_outcome: RefundOutcome | None = None
    # Back to the settings first (then apply the other fields).
    reset: bool = False


class WebhookDelivery(BaseModel):
    """The outcome of posting one event to the webhook."""

    event_id: str
    type: PspEventType
    attempts: int = 0
    delivered: bool = False
    last_status_code: int | None = None
    last_error: str | None = None


class PspProblem(Exception):
    """An answer other than success, with the PSP's error code."""

    def __init__(
        self,
        status_code: int,
        code: PspErrorCode,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code: PspErrorCode = code
        self.detail = detail
        self.headers = headers


@dataclass
class Capture:
    capture_id: str
    amount: Decimal
    status: PspCaptureStatus
    created_at: datetime
    failure_code: str | None = None

    def view(self) -> PspCapture:
        return PspCapture(
            capture_id=self.capture_id,
            amount=self.amount,
            status=self.status,
            failure_code=self.failure_code,
            created_at=self.created_at,
        )


@dataclass
class Refund:
    refund_id: str
    amount: Decimal
    reason: str
    status: PspRefundStatus
    created_at: datetime
    failure_code: str | None = None

    def view(self) -> PspRefund:
        return PspRefund(
            refund_id=self.refund_id,
            amount=self.amount,
            status=self.status,
            reason=self.reason,
            failure_code=self.failure_code,
            created_at=self.created_at,
        )


@dataclass
class Payment:
    seq: int
    transaction_id: str
    amount: Decimal
    currency: str
    created_at: datetime
    expires_at: datetime | None
    # Created from an operation's facts rather than at checkout.
    adopted: bool = False
    voided: bool = False
    captures: list[Capture] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    disputes: list[PspDispute] = field(default_factory=list)
    deliveries: list[WebhookDelivery] = field(default_factory=list)

    @property
    def captured(self) -> Decimal:
        return sum((c.amount for c in self.captures if c.status == "succeeded"), ZERO)

    @property
    def capture_held(self) -> Decimal:
        """Captured, or being captured: no longer available to another capture."""
        return sum((c.amount for c in self.captures if c.status != "failed"), ZERO)

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds if r.status == "settled"), ZERO)

    @property
    def refund_held(self) -> Decimal:
        """Refunded, or being refunded: no longer available to another refund."""
        return sum((r.amount for r in self.refunds if r.status != "failed"), ZERO)

    def lapsed(self, now: datetime, behaviour: Behaviour) -> bool:
        if behaviour.mode == "expired":
            return True
        return self.expires_at is not None and now > self.expires_at

    def status(self, now: datetime, behaviour: Behaviour) -> PspPaymentStatus:
        if self.voided:
            return "voided"
        captured = self.captured
        if captured > 0:
            refunded = self.refunded
            if refunded >= captured:
                return "refunded"
            return "partially_refunded" if refunded > 0 else "captured"
        return "expired" if self.lapsed(now, behaviour) else "authorized"

    def view(self, now: datetime, behaviour: Behaviour) -> PspPayment:
        return PspPayment(
            transaction_id=self.transaction_id,
            status=self.status(now, behaviour),
            amount=self.amount,
            currency=self.currency,
            authorized_amount=self.amount,
            captured_amount=self.captured,
            refunded_amount=self.refunded,
            authorization_expires_at=self.expires_at,
            created_at=self.created_at,
            captures=[c.view() for c in self.captures],
            refunds=[r.view() for r in self.refunds],
            disputes=list(self.disputes),
        )


ResultKind = Literal["payment", "capture", "refund"]


@dataclass(frozen=True)
class Outcome:
    """What a keyed request did: enough to answer a repeat of it with the same object."""

    fingerprint: str
    transaction_id: str
    kind: ResultKind
    object_id: str = ""


class PspSimulator:
    """The simulator's state and behaviour, independent of HTTP (the app is a thin shell)."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.behaviour = self._behaviour_from_settings()
        self.payments: dict[str, Payment] = {}
        self.events: list[PspWebhookEvent] = []
        # Every attempt per idempotency key, answered or not (debugging and tests).
        self.attempts: dict[str, int] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._failures: dict[str, int] = {}
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    def _behaviour_from_settings(self) -> Behaviour:
        s = self.settings
        return Behaviour(
            mode=s.psp_simulator_mode,
            fail_times=s.psp_simulator_fail_times,
            slow_seconds=s.psp_simulator_slow_seconds,
            webhook_delay_seconds=s.psp_simulator_webhook_delay_seconds,
            adopt_unknown=s.psp_simulator_adopt_unknown,
        )

    # --- control ---

    def control(self, update: ControlUpdate) -> Behaviour:
        if update.reset:
            self.behaviour = self._behaviour_from_settings()
        changes = update.model_dump(exclude_none=True, exclude={"reset"})
        if changes:
            self.behaviour = self.behaviour.model_copy(update=changes)
        return self.behaviour

    # --- idempotent operations ---

    async def keyed(
        self, key: str, fingerprint: str, act: Callable[[Behaviour], tuple[int, Outcome]]
    ) -> tuple[int, BaseModel]:
        """Run `act` once per key; a repeat answers 200 with the object the first one made.

        `act` checks and changes state without awaiting, so two requests under different
        keys cannot both spend the same authorised or captured money.
        """
        self.attempts[key] = self.attempts.get(key, 0) + 1
        behaviour = self.behaviour
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        async with lock:
            done = self._outcomes.get(key)
            if done is not None:
                if done.fingerprint != fingerprint:
                    raise PspProblem(
                        422,
                        "idempotency_conflict",
                        f"{IDEMPOTENCY_HEADER} {key!r} was used for a different request",
                    )
                return 200, self.render(done)
            if behaviour.mode == "fail":
                failed = self._failures.get(key, 0)
                if failed < behaviour.fail_times:
                    self._failures[key] = failed + 1
                    raise PspProblem(
                        503,
                        "unavailable",
                        f"payment service temporarily unavailable "
                        f"(simulated, {failed + 1} of {behaviour.fail_times})",
                        headers={"Retry-After": "1"},
                    )
            status_code, outcome = act(behaviour)
            self._outcomes[key] = outcome
            self._failures.pop(key, None)
            answer = self.render(outcome)
        if behaviour.mode == "slow":
            # Done and remembered already: a retry after a client's timeout finds it.
            await asyncio.sleep(behaviour.slow_seconds)
        return status_code, answer

    def render(self, outcome: Outcome) -> BaseModel:
        payment = self.payments[outcome.transaction_id]
        if outcome.kind == "capture":
            return next(c for c in payment.captures if c.capture_id == outcome.object_id).view()
        if outcome.kind == "refund":
            return next(r for r in payment.refunds if r.refund_id == outcome.object_id).view()
        return payment.view(datetime.now(UTC), self.behaviour)

    def checkout(self, request: CreatePaymentRequest, fingerprint: str, b: Behaviour) -> Outcome:
        if request.transaction_id in self.payments:
            raise PspProblem(
                409, "payment_exists", f"payment {request.transaction_id!r} exists already"
            )
        if b.mode == "refuse":
            raise PspProblem(402, "declined", "the card issuer declined the payment (simulated)")
        now = datetime.now(UTC)
        ttl = (
            timedelta(seconds=request.authorization_ttl_seconds)
            if request.authorization_ttl_seconds is not None
            else self.settings.payment_authorization_ttl
        )
        payment = self._add(request.transaction_id, request.amount, request.currency, now + ttl)
        if request.capture:
            payment.captures.append(Capture(_id("cap"), request.amount, "succeeded", now))
        return Outcome(fingerprint, payment.transaction_id, "payment")

    def capture(
        self, transaction_id: str, request: CaptureRequest, fingerprint: str, b: Behaviour
    ) -> tuple[int, Outcome]:
        now = datetime.now(UTC)
        payment = self._payment_for(transaction_id, request.payment, now)
        if payment.voided:
            raise PspProblem(409, "payment_voided", "the authorisation was voided")
        if payment.lapsed(now, b):
            raise PspProblem(
                402,
                "authorization_expired",
                f"the authorisation expired at {_at(payment.expires_at)}",
            )
        if b.mode == "refuse":
            raise PspProblem(402, "declined", "the card issuer declined the capture (simulated)")
        left = payment.amount - payment.capture_held
        if request.amount > left:
            raise PspProblem(
                409,
                "insufficient_authorized",
                f"{request.amount} exceeds what is left of the authorisation ({left})",
            )
        pending = b.mode == "async"
        capture = Capture(_id("cap"), request.amount, "pending" if pending else "succeeded", now)
        payment.captures.append(capture)
        if pending:
            self._later(b.webhook_delay_seconds, self._settle_capture, payment, capture, b)
        outcome = Outcome(fingerprint, transaction_id, "capture", capture.capture_id)
        return (202 if pending else 201), outcome

    def void(self, transaction_id: str, request: VoidRequest, fingerprint: str) -> Outcome:
        payment = self._payment_for(transaction_id, request.payment, datetime.now(UTC))
        if payment.capture_held > 0:
            raise PspProblem(
                409,
                "already_captured",
                "money was captured: refund it instead of voiding the authorisation",
            )
        payment.voided = True
        return Outcome(fingerprint, transaction_id, "payment")

    def refund(
        self, transaction_id: str, request: RefundRequest, fingerprint: str, b: Behaviour
    ) -> Outcome:
        now = datetime.now(UTC)
        payment = self._payment_for(transaction_id, request.payment, now)
        left = payment.captured - payment.refund_held
        if request.amount > left:
            raise PspProblem(
                409,
                "insufficient_captured",
                f"{request.amount} exceeds what was captured and not refunded ({left})",
            )
        refund = Refund(_id("re"), request.amount, request.reason, "pending", now)
        payment.refunds.append(refund)
        self._later(b.webhook_delay_seconds, self._settle_refund, payment, refund, b)
        return Outcome(fingerprint, transaction_id, "refund", refund.refund_id)

    def reauthorize(
        self, transaction_id: str, request: ReauthorizeRequest, fingerprint: str, b: Behaviour
    ) -> Outcome:
        now = datetime.now(UTC)
        payment = self._payment_for(transaction_id, request.payment, now)
        if payment.voided:
            raise PspProblem(409, "payment_voided", "the authorisation was voided")
        if payment.capture_held >= payment.amount:
            raise PspProblem(409, "nothing_to_capture", "the whole authorisation was captured")
        if payment.lapsed(now, b):
            raise PspProblem(
                402,
                "authorization_expired",
                f"the authorisation expired at {_at(payment.expires_at)}: ask for a new payment",
            )
        if b.mode == "refuse":
            raise PspProblem(402, "declined", "the card issuer declined the reauthorisation")
        renewed = now + timedelta(seconds=request.ttl_seconds)
        # Renewing never shortens what the card issuer granted before.
        if payment.expires_at is None or renewed > payment.expires_at:
            payment.expires_at = renewed
        return Outcome(fingerprint, transaction_id, "payment")

    def open_dispute(self, transaction_id: str, request: DisputeRequest) -> PspDispute:
        payment = self.payment(transaction_id)
        left = payment.captured - payment.refunded
        amount = request.amount if request.amount is not None else left
        if left <= 0 or amount > left:
            raise PspProblem(
                409,
                "insufficient_captured",
                f"a chargeback of {amount} exceeds what was captured and not refunded ({left})",
            )
        dispute = PspDispute(
            dispute_id=_id("dp"), amount=amount, reason=request.reason, opened_at=datetime.now(UTC)
        )
        payment.disputes.append(dispute)
        event = self._event("dispute.opened", payment, dispute.dispute_id, amount, request.reason)
        self._later(0.0, self._post, payment, event)
        return dispute

    # --- payments ---

    def payment(self, transaction_id: str) -> Payment:
        payment = self.payments.get(transaction_id)
        if payment is None:
            raise PspProblem(404, "payment_not_found", f"no payment {transaction_id!r}")
        return payment

    def page(self, after: str | None, limit: int) -> PspPaymentPage:
        try:
            start = int(after) if after else 0
        except ValueError:
            raise PspProblem(400, "invalid_request", f"not a cursor: {after!r}") from None
        # Insertion order is creation order: sequence numbers only grow.
        later = [p for p in self.payments.values() if p.seq > start]
        now = datetime.now(UTC)
        page = later[:limit]
        more = len(later) > limit
        return PspPaymentPage(
            payments=[p.view(now, self.behaviour) for p in page],
            next_cursor=str(page[-1].seq) if more else None,
        )

    def _payment_for(self, transaction_id: str, facts: PaymentFacts, now: datetime) -> Payment:
        payment = self.payments.get(transaction_id)
        if payment is not None:
            return payment
        if not self.behaviour.adopt_unknown:
            raise PspProblem(404, "payment_not_found", f"no payment {transaction_id!r}")
        expires = facts.authorization_expires_at or now + self.settings.payment_authorization_ttl
        payment = self._add(transaction_id, facts.amount, facts.currency, expires, adopted=True)
        if facts.status == "captured":
            payment.captures.append(Capture(_id("cap"), facts.amount, "succeeded", now))
        return payment

    def _add(
        self,
        transaction_id: str,
        amount: Decimal,
        currency: str,
        expires_at: datetime | None,
        *,
        adopted: bool = False,
    ) -> Payment:
        self._seq += 1
        payment = Payment(
            seq=self._seq,
            transaction_id=transaction_id,
            amount=amount,
            currency=currency,
            created_at=datetime.now(UTC),
            expires_at=expires_at,
            adopted=adopted,
        )
        self.payments[transaction_id] = payment
        return payment

    # --- outcomes that arrive later, and the webhook ---

    def _later(self, delay: float, post: Callable[..., Any], *args: Any) -> None:
        """Run `post(*args)` in the background after `delay` (tasks end on `aclose`)."""
        if self._closed:
            return

        async def run() -> None:
            if delay:
                await asyncio.sleep(delay)
            await post(*args)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle_capture(self, payment: Payment, capture: Capture, b: Behaviour) -> None:
        kind: PspEventType
        if b.capture_outcome == "failed":
            capture.status, capture.failure_code = "failed", "card_declined"
            kind = "capture.failed"
        else:
            capture.status, kind = "succeeded", "capture.succeeded"
        event = self._event(kind, payment, capture.capture_id, capture.amount, capture.failure_code)
        await self._post(payment, event)

    async def _settle_refund(self, payment: Payment, refund: Refund, b: Behaviour) -> None:
        kind: PspEventType
        if b.refund_outcome == "failed":
            refund.status, refund.failure_code = "failed", "account_closed"
            kind = "refund.failed"
        else:
            refund.status, kind = "settled", "refund.settled"
        event = self._event(kind, payment, refund.refund_id, refund.amount, refund.failure_code)
        await self._post(payment, event)

    def _event(
        self,
        kind: PspEventType,
        payment: Payment,
        object_id: str,
        amount: Decimal,
        reason: str | None,
    ) -> PspWebhookEvent:
        event = PspWebhookEvent(
            event_id=_id("evt"),
            type=kind,
            transaction_id=payment.transaction_id,
            object_id=object_id,
            amount=amount,
            reason=reason,
            at=datetime.now(UTC),
        )
        self.events.append(event)
        return event

    async def _post(self, payment: Payment, event: PspWebhookEvent) -> None:
        """Post one event, signed, retrying with backoff until a 2xx or the attempts run out."""
        body = event.model_dump_json().encode()
        delivery = WebhookDelivery(event_id=event.event_id, type=event.type)
        payment.deliveries.append(delivery)
        s = self.settings
        await post_signed(
            self.client,
            s.psp_webhook_url,
            body,
            secret=s.psp_webhook_secret,
            retries=Retries(
                s.psp_simulator_webhook_attempts,
                s.psp_simulator_webhook_backoff_seconds,
                s.psp_simulator_webhook_backoff_max_seconds,
            ),
            delivery=delivery,
            what=f"{event.event_id} {event.type}",
        )

    @property
    def posting(self) -> int:
        """Outcomes still waiting to settle or be posted."""
        return len(self._tasks)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=self.settings.psp_http_timeout_seconds
            )
        return self._client

    async def idle(self) -> None:
        """Wait until every background outcome has been posted (for tests and orderly stops)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop posting: cancel what is under way, wait for it, close the HTTP client."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _id(prefix: str) -> str:
    # Random, not counted: a restarted simulator must not hand out ids the shop has stored.
    return f"{prefix}_{secrets.token_hex(8)}"


def _at(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "an unknown time"


def _fingerprint(operation: str, body: BaseModel) -> str:
    return f"{operation} {body.model_dump_json()}"


def _require_key(key: str | None) -> str:
    if not key or not key.strip():
        raise PspProblem(
            400, "idempotency_key_required", f"the {IDEMPOTENCY_HEADER} header is required"
        )
    return key.strip()


IdempotencyKey = Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=200)]


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The simulator as an ASGI app; `app.state.simulator` is its `PspSimulator`.

    `transport` replaces the network for webhook posts (e.g. `httpx.ASGITransport` of the API).
    """
    simulator = PspSimulator(settings or get_settings(), transport=transport)
    expected = f"Bearer {simulator.settings.psp_api_key}".encode()

    async def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        given = (authorization or "").strip().encode()
        if not hmac.compare_digest(given, expected):
            raise PspProblem(
                401,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await simulator.aclose()

    app = FastAPI(
        title="orderflow payment service provider simulator",
        description="Captures, voids, refunds and chargebacks, like a real PSP.",
        lifespan=lifespan,
    )
    app.state.simulator = simulator

    @app.exception_handler(PspProblem)
    async def problem(request: Request, exc: PspProblem) -> JSONResponse:
        body = PspError(detail=exc.detail, code=exc.code)
        return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        body = PspError(detail=detail or "invalid request", code="invalid_request")
        return JSONResponse(body.model_dump(), status_code=422)

    api = APIRouter(dependencies=[Depends(authorised)])
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": PspError} for code in (400, 401, 402, 404, 409, 422, 503)
    }

    @api.post("/payments", status_code=201, response_model=PspPayment, responses=errors)
    async def create_payment(
        request: CreatePaymentRequest, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        key = _require_key(idempotency_key)
        fingerprint = _fingerprint("checkout", request)
        status_code, answer = await simulator.keyed(
            key, fingerprint, lambda b: (201, simulator.checkout(request, fingerprint, b))
        )
        return _answer(status_code, answer)

    @api.get("/payments", response_model=PspPaymentPage, responses=errors)
    async def list_payments(
        after: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> PspPaymentPage:
        return simulator.page(after, limit)

    @api.get("/payments/{transaction_id}", response_model=PspPayment, responses=errors)
    async def get_payment(transaction_id: str) -> PspPayment:
        return simulator.payment(transaction_id).view(datetime.now(UTC), simulator.behaviour)

    @api.post(
        "/payments/{transaction_id}/captures",
        status_code=201,
        response_model=PspCapture,
        responses={**errors, 202: {"model": PspCapture, "description": "pending (async)"}},
    )
    async def capture(
        transaction_id: str, request: CaptureRequest, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        key = _require_key(idempotency_key)
        fingerprint = _fingerprint(f"capture {transaction_id}", request)
        status_code, answer = await simulator.keyed(
            key, fingerprint, lambda b: simulator.capture(transaction_id, request, fingerprint, b)
        )
        return _answer(status_code, answer)

    @api.post("/payments/{transaction_id}/voids", response_model=PspPayment, responses=errors)
    async def void(
        transaction_id: str, request: VoidRequest, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        key = _require_key(idempotency_key)
        fingerprint = _fingerprint(f"void {transaction_id}", request)
        status_code, answer = await simulator.keyed(
            key, fingerprint, lambda b: (200, simulator.void(transaction_id, request, fingerprint))
        )
        return _answer(status_code, answer)

    @api.post(
        "/payments/{transaction_id}/refunds",
        status_code=201,
        response_model=PspRefund,
        responses=errors,
    )
    async def refund(
        transaction_id: str, request: RefundRequest, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        key = _require_key(idempotency_key)
        fingerprint = _fingerprint(f"refund {transaction_id}", request)
        status_code, answer = await simulator.keyed(
            key,
            fingerprint,
            lambda b: (201, simulator.refund(transaction_id, request, fingerprint, b)),
        )
        return _answer(status_code, answer)

    @api.post(
        "/payments/{transaction_id}/reauthorizations", response_model=PspPayment, responses=errors
    )
    async def reauthorize(
        transaction_id: str, request: ReauthorizeRequest, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        key = _require_key(idempotency_key)
        fingerprint = _fingerprint(f"reauthorize {transaction_id}", request)
        status_code, answer = await simulator.keyed(
            key,
            fingerprint,
            lambda b: (200, simulator.reauthorize(transaction_id, request, fingerprint, b)),
        )
        return _answer(status_code, answer)

    @api.post(
        "/payments/{transaction_id}/disputes",
        status_code=201,
        response_model=PspDispute,
        responses=errors,
    )
    async def open_dispute(transaction_id: str, request: DisputeRequest) -> PspDispute:
        return simulator.open_dispute(transaction_id, request)

    @api.get("/payments/{transaction_id}/webhook-deliveries", responses=errors)
    async def webhook_deliveries(transaction_id: str) -> list[WebhookDelivery]:
        return list(simulator.payment(transaction_id).deliveries)

    @api.get("/control", response_model=Behaviour)
    async def get_control() -> Behaviour:
        return simulator.behaviour

    @api.post("/control", response_model=Behaviour)
    async def post_control(update: ControlUpdate) -> Behaviour:
        return simulator.control(update)

    app.include_router(api)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "mode": simulator.behaviour.mode,
            "payments": len(simulator.payments),
            "posting": simulator.posting,
        }

    return app


def _answer(status_code: int, body: BaseModel) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code)


def run(host: str | None = None, port: int | None = None, settings: Settings | None = None) -> None:
    """Serve the simulator with uvicorn (blocking), on the configured host and port by default."""
    settings = settings or get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.psp_simulator_host,
        port=port or settings.psp_simulator_port,
        log_level="info",
    )


if __name__ == "__main__":
    run()


__all__ = [
    "IDEMPOTENCY_HEADER",
    "Behaviour",
    "ControlUpdate",
    "PspProblem",
    "PspSimulator",
    "WebhookDelivery",
    "create_app",
    "run",
]
