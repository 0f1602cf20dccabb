"""Which department answers a customer's feedback, and whether it holds the order's completion."""

from __future__ import annotations

from orderflow.models.messages import FeedbackCategory

DEPARTMENT_OF_CATEGORY: dict[str, str] = {
    "delivery": "logistics",
    "product": "quality",
    "payment": "finance",
    "other": "customer_service",
}

# Complaints about what arrived: while one is open, a delivered order is not completed.
COMPLAINT_CATEGORIES = frozenset({"delivery", "product"})


def department_for(category: FeedbackCategory) -> str:
    return DEPARTMENT_OF_CATEGORY[category]


def holds_completion(category: FeedbackCategory, *, delivered: bool, completing: bool) -> bool:
    """A delivery or product complaint after delivery and before completion holds completion."""
    return category in COMPLAINT_CATEGORIES and delivered and not completing
