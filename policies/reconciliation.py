"""Reconciliation: the shop's payment ledger against the PSP's own records, per order.

A pure comparison (`reconcile`); `orderflow payments reconcile` reads both sides. Refunds
are compared as everything asked and not failed (settled plus pending), so a refund whose
settlement webhook has not arrived yet is no mismatch. An order the shop never asked the
PSP anything about, and that the PSP does not list, is not compared: it may have been paid
through another provider account.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

MismatchKind = Literal[
    "captured_not_shipped",
    "shipped_not_captured",
    "refund_missing",
    "refund_doubled",
    "amount_differs",
    "void_differs",
    "missing_at_psp",
    "no_order",
]

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class LedgerFacts:
    """One order's payment as the shop's ledger tells it."""

    order_id: str
    transaction_id: str
    # As checkout left it: authorized or captured (or pending, failed).
    checkout_status: str
    amount: Decimal
    captured: Decimal
    # Settled refunds, and refunds sent and not settled yet.
    refunded: Decimal
    refunding: Decimal
    voided: bool
    # The order's parcel was booked with a carrier.
    shipped: bool
    operations: int


@dataclass(frozen=True)
class PspFacts:
    """One payment as the PSP lists it."""

    transaction_id: str
    status: str
    amount: Decimal
    captured: Decimal
    refunded: Decimal
    refunding: Decimal


class Mismatch(BaseModel):
    order_id: str | None
    transaction_id: str
    kind: MismatchKind
    detail: str
    ledger: str | None = None
    psp: str | None = None


def reconcile(ledger: Iterable[LedgerFacts], psp: Iterable[PspFacts]) -> list[Mismatch]:
    """Every disagreement, order by order (then the PSP's payments no order holds)."""
    at_psp = {p.transaction_id: p for p in psp}
    found: list[Mismatch] = []
    known: set[str] = set()
    for order in sorted(ledger, key=lambda o: o.order_id):
        known.add(order.transaction_id)
        found.extend(compare(order, at_psp.get(order.transaction_id)))
    for payment in sorted(at_psp.values(), key=lambda p: p.transaction_id):
        if payment.transaction_id not in known and payment.captured > 0:
            found.append(
                Mismatch(
                    order_id=None,
                    transaction_id=payment.transaction_id,
                    kind="no_order",
                    detail=f"the PSP captured {payment.captured} for a payment no order holds",
                    psp=str(payment.captured),
                )
            )
    return found


def compare(order: LedgerFacts, payment: PspFacts | None) -> list[Mismatch]:
    """What the order's ledger and the PSP's payment disagree on."""
    found: list[Mismatch] = []

    def add(kind: MismatchKind, detail: str, ledger: object = None, psp: object = None) -> None:
        found.append(
            Mismatch(
                order_id=order.order_id,
                transaction_id=order.transaction_id,
                kind=kind,
                detail=detail,
                ledger=None if ledger is None else str(ledger),
                psp=None if psp is None else str(psp),
            )
        )

    authorised_only = order.checkout_status == "authorized"
    if payment is None:
        if order.operations > 0:
            add("missing_at_psp", "the ledger holds operations on a payment the PSP does not list")
        if authorised_only and order.shipped and order.captured == 0:
            add("shipped_not_captured", "the parcel was booked, the payment never captured")
        return found

    if authorised_only and order.shipped and payment.captured == 0:
        add(
            "shipped_not_captured",
            f"the parcel was booked; the PSP holds the payment as {payment.status}",
            order.captured,
            payment.captured,
        )
    returned = payment.refunded + payment.refunding
    if authorised_only and not order.shipped and payment.captured > returned:
        add(
            "captured_not_shipped",
            f"the PSP captured {payment.captured} of an order not shipped",
            order.captured,
            payment.captured,
        )
    if order.amount != payment.amount:
        add(
            "amount_differs",
            f"authorised: ledger {order.amount}, PSP {payment.amount}",
            order.amount,
            payment.amount,
        )
    if order.captured != payment.captured:
        add(
            "amount_differs",
            f"captured: ledger {order.captured}, PSP {payment.captured}",
            order.captured,
            payment.captured,
        )
    asked = order.refunded + order.refunding
    if asked > returned:
        add(
            "refund_missing",
            f"the ledger refunded {asked}, the PSP {returned}",
            asked,
            returned,
        )
    elif returned > asked:
        add(
            "refund_doubled",
            f"the PSP refunded {returned}, more than the ledger's {asked}",
            asked,
            returned,
        )
    if order.voided != (payment.status == "voided"):
        add(
            "void_differs",
            "voided in the ledger, not at the PSP"
            if order.voided
            else "voided at the PSP, not in the ledger",
            "voided" if order.voided else "not voided",
            payment.status,
        )
    return found


def psp_facts(
    transaction_id: str,
    status: str,
    amount: Decimal,
    captured: Decimal,
    refunded: Decimal,
    pending_refunds: Sequence[Decimal],
) -> PspFacts:
    """The PSP's payment, with its pending refunds summed."""
    return PspFacts(
        transaction_id=transaction_id,
        status=status,
        amount=amount,
        captured=captured,
        refunded=refunded,
        refunding=sum(pending_refunds, ZERO),
    )


__all__ = [
    "LedgerFacts",
    "Mismatch",
    "MismatchKind",
    "PspFacts",
    "compare",
    "psp_facts",
    "reconcile",
]
