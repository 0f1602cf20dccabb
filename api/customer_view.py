"""What the order's customer sees of it, and what the customer may do with it now.

The customer reads the same order and the same event stream as operators, less the shop's
own risk review: its score, its reasons, whether it flagged the order, and the reviewers'
notes, and the PSP's workings (its ids, idempotency keys, failure codes) of the payment
events, of which the customer sees the amount. Statuses and event kinds stay, so both views
tell the same story.

`open_actions` tells the customer's page which buttons to show. It is derived from what
PostgreSQL knows, which trails the workflow by moments; the workflow's validators have the
final word, and the page shows their refusal when the two disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from orderflow.models import SHIPPED_OR_LATER, TERMINAL_STATUSES, OrderStatus, Step

# Events of the risk review itself (step 3). `review_received`/`review_invitation` are the
# customer's product review at step 8, not these.
RISK_REVIEW_KINDS = frozenset(
    {
        "review_flagged",
        "auto_approved",
        "review_escalated",
        "review_approved",
        "review_rejected",
        "review_timeout",
    }
)
# What a customer may know of a risk review's event: the outcome, never the why.
_REVIEW_DETAILS_SHOWN = frozenset({"decision", "timed_out", "auto"})
# Risk keys wherever they turn up (e.g. the workflow's own timeline at PENDING_REVIEW).
_RISK_KEYS = frozenset({"score", "reasons", "flagged", "risk_score", "risk_reasons"})
# What a customer may know of a payment event (`payment_<operation>_<outcome>`).
_PAYMENT_DETAILS_SHOWN = frozenset({"amount"})


def customer_details(
    *, step: int, kind: str | None, status: str | None, details: Mapping[str, Any] | None
) -> dict[str, Any]:
    """An event's details as its customer may see them."""
    if not details:
        return {}
    # Every event of step 3 that sets a status belongs to the review too (the workflow's
    # timeline entries have no kind of their own).
    if kind in RISK_REVIEW_KINDS or (step == Step.REVIEW and status is not None):
        return {k: v for k, v in details.items() if k in _REVIEW_DETAILS_SHOWN}
    if kind is not None and kind.startswith("payment_"):
        return {k: v for k, v in details.items() if k in _PAYMENT_DETAILS_SHOWN}
    return {k: v for k, v in details.items() if k not in _RISK_KEYS}


class OrderActions(BaseModel):
    """Which of the customer's requests the order takes now (the page's buttons)."""

    cancel: bool = False
    feedback: bool = False
    confirm_receipt: bool = False
    review: bool = False
    # Lines may be returned (delivered, within the return window).
    return_items: bool = False


def open_actions(
    status: str,
    *,
    completed_at: datetime | None,
    reviewed: bool,
    review_window: timedelta,
    now: datetime,
    return_until: datetime | None = None,
) -> OrderActions:
    """What the order's workflow would accept in `status`, as far as PostgreSQL tells.

    Mirrors the validators of workflows/order.py: a cancel until the parcel ships; feedback
    until the process ends (with the review window after completion); the receipt
    confirmation while delivered; one review inside the window.
    """
    current = OrderStatus(status)
    window_open = (
        current == OrderStatus.COMPLETED
        and completed_at is not None
        and now < completed_at + review_window
    )
    return OrderActions(
        cancel=current not in SHIPPED_OR_LATER and current not in TERMINAL_STATUSES,
        feedback=current not in TERMINAL_STATUSES or window_open,
        confirm_receipt=current == OrderStatus.DELIVERED,
        review=window_open and not reviewed,
        return_items=return_until is not None and now < return_until,
    )
