"""The payment service provider's (PSP) API: what the shop sends and what it reads back.

The adapter (`activities/psp_client.py`) speaks these types to the PSP; the project's
simulator (`simulators/psp.py`) implements them. Amounts are decimals with two places, as
in the order (`orderflow.models.order.Money`); on the wire they are strings ("12.50").

Every operation on a payment (capture, refund, void, reauthorisation) carries `payment`:
the facts the shop's order holds about it from checkout. A real PSP ignores them; the
simulator, which forgets everything on restart, adopts a payment it has never seen from them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from orderflow.models.order import CurrencyCode, Identifier, Money, PositiveMoney, Strict

PaymentFactsStatus = Literal["authorized", "captured"]
PspPaymentStatus = Literal[
    "authorized", "captured", "partially_refunded", "refunded", "voided", "expired"
]
PspCaptureStatus = Literal["succeeded", "pending", "failed"]
PspRefundStatus = Literal["pending", "settled", "failed"]
PspEventType = Literal[
    "capture.succeeded", "capture.failed", "refund.settled", "refund.failed", "dispute.opened"
]
PspErrorCode = Literal[
    "authorization_expired",
    "declined",
    "insufficient_authorized",
    "insufficient_captured",
    "already_captured",
    "payment_voided",
    "payment_not_found",
    "payment_exists",
    "nothing_to_capture",
    "idempotency_key_required",
    "idempotency_conflict",
    "invalid_request",
    "unauthorized",
    "unavailable",
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# At most a year: no PSP holds an authorisation longer.
TtlSeconds = Annotated[int, Field(gt=0, le=366 * 24 * 3600)]


class PaymentFacts(Strict):
    """What the shop's order says was authorised or captured at checkout."""

    amount: PositiveMoney
    currency: CurrencyCode
    status: PaymentFactsStatus
    # None: the PSP's default lifetime from the moment it learns of the payment.
    authorization_expires_at: datetime | None = None


class CreatePaymentRequest(Strict):
    """`POST /payments`: the checkout side, what a storefront does before the order exists."""

    transaction_id: Identifier
    amount: PositiveMoney
    currency: CurrencyCode
    # True: authorise and capture at once (the money moves now); False: authorise only.
    capture: bool = False
    authorization_ttl_seconds: TtlSeconds | None = None


class CaptureRequest(Strict):
    """Capture `amount` of the authorisation (less than what is left is a partial capture)."""

    amount: PositiveMoney
    payment: PaymentFacts


class RefundRequest(Strict):
    amount: PositiveMoney
    reason: Reason
    payment: PaymentFacts


class VoidRequest(Strict):
    """Release an authorisation of which nothing was captured."""

    payment: PaymentFacts


class ReauthorizeRequest(Strict):
    """Renew an authorisation: it then lasts `ttl_seconds` from now."""

    ttl_seconds: TtlSeconds
    payment: PaymentFacts


class DisputeRequest(Strict):
    """Simulator control: the card holder's bank opens a chargeback (None: all captured)."""

    amount: PositiveMoney | None = None
    reason: Reason = "fraudulent"


class PspCapture(Strict):
    capture_id: str
    amount: Money
    status: PspCaptureStatus
    failure_code: str | None = None
    created_at: datetime


class PspRefund(Strict):
    refund_id: str
    amount: Money
    status: PspRefundStatus
    reason: str
    failure_code: str | None = None
    created_at: datetime


class PspDispute(Strict):
    dispute_id: str
    amount: Money
    reason: str
    status: Literal["open"] = "open"
    opened_at: datetime


class PspPayment(Strict):
    """A payment as the PSP sees it.

    `captured_amount` counts succeeded captures, `refunded_amount` settled refunds; pending
    ones are in `captures` / `refunds` and already hold their share of what is left.
    """

    transaction_id: str
    status: PspPaymentStatus
    amount: Money
    currency: CurrencyCode
    authorized_amount: Money
    captured_amount: Money
    refunded_amount: Money
    authorization_expires_at: datetime | None
    created_at: datetime
    captures: list[PspCapture] = Field(default_factory=list)
    refunds: list[PspRefund] = Field(default_factory=list)
    disputes: list[PspDispute] = Field(default_factory=list)


class PspPaymentPage(Strict):
    """`GET /payments?after=<cursor>&limit=<n>`: oldest first; no `next_cursor` at the end."""

    payments: list[PspPayment]
    next_cursor: str | None = None


class PspWebhookEvent(Strict):
    """What the PSP posts, signed, to the shop's webhook when an outcome arrives later."""

    event_id: str
    type: PspEventType
    transaction_id: str
    # The capture, refund or dispute the event is about.
    object_id: str
    amount: Money
    # Why a capture or refund failed, or the dispute's reason.
    reason: str | None = None
    at: datetime


class PspError(Strict):
    """The body of every answer that is not a success."""

    detail: str
    code: PspErrorCode


__all__ = [
    "CaptureRequest",
    "CreatePaymentRequest",
    "DisputeRequest",
    "PaymentFacts",
    "PaymentFactsStatus",
    "PspCapture",
    "PspCaptureStatus",
    "PspDispute",
    "PspError",
    "PspErrorCode",
    "PspEventType",
    "PspPayment",
    "PspPaymentPage",
    "PspPaymentStatus",
    "PspRefund",
    "PspRefundStatus",
    "PspWebhookEvent",
    "ReauthorizeRequest",
    "RefundRequest",
    "VoidRequest",
]
