"""The customer's view, as pure functions: which details of an event its customer sees, and
which requests an order takes in each status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.customer_view import customer_details, open_actions
from orderflow.models import OrderStatus

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=14)


def test_risk_review_events_keep_the_outcome_only() -> None:
    flagged = {"score": 72.5, "flagged": True, "reasons": [{"code": "payment", "points": 60}]}
    assert (
        customer_details(step=3, kind="review_flagged", status="PENDING_REVIEW", details=flagged)
        == {}
    )
    decided = {"decision": "reject", "note": "stolen card pattern", "timed_out": False}
    assert customer_details(step=3, kind="review_rejected", status="REJECTED", details=decided) == {
        "decision": "reject",
        "timed_out": False,
    }
    escalated = {"reason": "review SLA passed"}
    assert customer_details(step=3, kind="review_escalated", status=None, details=escalated) == {}
    # The workflow's own timeline entries of step 3 carry no kind of their own.
    assert customer_details(
        step=3, kind=None, status="APPROVED", details={"note": "ok", "auto": False}
    ) == {"auto": False}


@pytest.mark.parametrize(
    "kind", ["payment_refund_failed", "payment_dispute_opened", "payment_capture_succeeded"]
)
def test_payment_events_show_the_customer_the_amount_only(kind: str) -> None:
    details = {
        "amount": "25.00",
        "psp_id": "re_1",
        "idempotency_key": "refund-A-1",
        "code": "account_closed",
        "dispute_id": "dp_9",
    }
    shown = customer_details(step=6, kind=kind, status=None, details=details)
    assert shown == {"amount": "25.00"}


def test_other_events_keep_their_details_but_any_risk_key() -> None:
    shipped = {"carrier": "dhl", "tracking_number": "DHL123"}
    assert customer_details(step=6, kind="shipped", status="SHIPPED", details=shipped) == shipped
    # Feedback recorded while the review waits is step 3 without a status: the customer's own.
    ticket = {"ticket_id": "FB-1", "category": "other"}
    assert customer_details(step=3, kind="feedback_received", status=None, details=ticket) == ticket
    assert customer_details(
        step=8, kind="order_completed", status="COMPLETED", details={"how": "x", "score": 1}
    ) == {"how": "x"}
    assert customer_details(step=1, kind="order_received", status="RECEIVED", details=None) == {}


@pytest.mark.parametrize(
    ("status", "cancel", "feedback", "confirm"),
    [
        ("RECEIVED", True, True, False),
        ("PENDING_REVIEW", True, True, False),
        ("BACKORDERED", True, True, False),
        ("PACKED", True, True, False),
        ("SHIPPED", False, True, False),
        ("OUT_FOR_DELIVERY", False, True, False),
        ("DELIVERED", False, True, True),
        ("REJECTED", False, False, False),
        ("CANCELLED", False, False, False),
    ],
)
def test_actions_by_status(status: str, cancel: bool, feedback: bool, confirm: bool) -> None:
    actions = open_actions(status, completed_at=None, reviewed=False, review_window=WINDOW, now=NOW)
    assert (actions.cancel, actions.feedback, actions.confirm_receipt, actions.review) == (
        cancel,
        feedback,
        confirm,
        False,
    )


def test_review_and_feedback_inside_the_review_window_only() -> None:
    def after_completion(ago: timedelta, *, reviewed: bool = False) -> tuple[bool, bool]:
        a = open_actions(
            OrderStatus.COMPLETED,
            completed_at=NOW - ago,
            reviewed=reviewed,
            review_window=WINDOW,
            now=NOW,
        )
        assert not a.cancel and not a.confirm_receipt
        return a.review, a.feedback

    assert after_completion(timedelta(days=1)) == (True, True)
    assert after_completion(timedelta(days=1), reviewed=True) == (False, True)
    assert after_completion(timedelta(days=15)) == (False, False)
    no_window = open_actions(
        "COMPLETED", completed_at=NOW, reviewed=False, review_window=timedelta(0), now=NOW
    )
    assert not any(no_window.model_dump().values())
