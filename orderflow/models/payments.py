"""What the payment activities take and give back: capture, void, refund and renew the
order's payment at the PSP (`activities/payments.py`).

A refusal by the PSP or the card issuer is an answer, not an error: the result says
`ok=False` with the PSP's `code`, and the workflow decides what follows (ask finance,
cancel, try again after a reauthorisation).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from orderflow.models.order import Identifier, Money, PositiveMoney, Strict
from orderflow.models.psp import Reason

PaymentOperationKind = Literal["capture", "void", "refund", "reauthorization"]
# pending: sent, the outcome follows (a refund settles later); nothing: there was nothing to
# do (no money captured to refund).
PaymentOperationStatus = Literal["pending", "succeeded", "settled", "failed", "refused", "nothing"]


class CaptureInput(Strict):
    order_id: Identifier
    amount: PositiveMoney
    # The n-th capture the order asks for: with the order it makes the idempotency key, so a
    # retried activity sends the same key and a later capture a new one.
    sequence: int = Field(default=1, ge=1, le=1000)


class RefundInput(Strict):
    order_id: Identifier
    # None: all that was captured and is not refunded or being refunded.
    amount: PositiveMoney | None = None
    reason: Reason
    sequence: int = Field(default=1, ge=1, le=1000)


class PaymentResult(Strict):
    """The outcome of one operation on the order's payment."""

    ok: bool
    operation: PaymentOperationKind
    status: PaymentOperationStatus
    # The PSP's error code when it refused or failed (`authorization_expired`, `declined`).
    code: str | None = None
    idempotency_key: str | None = None
    # The PSP's id of the capture or refund.
    psp_id: str | None = None
    amount: Money | None = None
    # After a reauthorisation: when the renewed authorisation lapses.
    authorization_expires_at: datetime | None = None


class CaptureResult(PaymentResult):
    operation: PaymentOperationKind = "capture"


class VoidResult(PaymentResult):
    operation: PaymentOperationKind = "void"


class RefundResult(PaymentResult):
    operation: PaymentOperationKind = "refund"


class ReauthorizeResult(PaymentResult):
    operation: PaymentOperationKind = "reauthorization"


ZERO = Decimal("0.00")

__all__ = [
    "ZERO",
    "CaptureInput",
    "CaptureResult",
    "PaymentOperationKind",
    "PaymentOperationStatus",
    "PaymentResult",
    "ReauthorizeResult",
    "RefundInput",
    "RefundResult",
    "VoidResult",
]
