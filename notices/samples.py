"""An example context for every kind: what its template may use, with realistic values.

The customer contexts have the shape `db/repositories/notifications.customer_context`
builds from an order's rows, plus each kind's own values (what its call site passes);
department contexts are what their call sites pass plus `department`. Tests render every
kind from these, and `python -m notices preview KIND` shows one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orderflow.access import order_page_url

ORDER_ID = "A-1001"

SHIPMENT: dict[str, Any] = {
    "carrier": "dhl",
    "carrier_name": "DHL Paket",
    "tracking_number": "DHL00340434161094042557",
    "expected_delivery": datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
}

# What every customer mail gets: the order, its customer and the link to its page.
ORDER: dict[str, Any] = {
    "order_id": ORDER_ID,
    "customer_name": "Ann Lee",
    "order_url": order_page_url("http://localhost:8000", ORDER_ID, "cust_0123456789abcdef"),
    "currency": "EUR",
    "total": Decimal("33.90"),
    "placed_at": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    "items": [
        {
            "sku": "SKU-RED-MUG",
            "name": "Red ceramic mug",
            "quantity": 2,
            "unit_price": Decimal("12.50"),
            "line_total": Decimal("25.00"),
        },
        {
            "sku": "SKU-TEA-TIN",
            "name": "Loose-leaf tea tin",
            "quantity": 1,
            "unit_price": Decimal("8.90"),
            "line_total": Decimal("8.90"),
        },
    ],
    "shipping_address": {
        "name": "Ann Lee",
        "line1": "1 Main St",
        "line2": None,
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    # The order's current parcel, None before it ships.
    "shipment": SHIPMENT,
}

CUSTOMER: dict[str, dict[str, Any]] = {
    "order_confirmation": {**ORDER, "shipment": None},
    "backorder_notice": {**ORDER, "shipment": None, "shortages": {"SKU-TEA-TIN": 1}},
    "pre_order_waiting": {
        **ORDER,
        "shipment": None,
        "release_at": "2026-12-15T09:00:00+00:00",
        "pre_sale_skus": ["SKU-TEA-TIN"],
    },
    "release_date_moved": {
        **ORDER,
        "shipment": None,
        "release_at": "2027-01-10T09:00:00+00:00",
        "pre_sale_skus": ["SKU-TEA-TIN"],
    },
    "backorder_reminder": {
        **ORDER,
        "shipment": None,
        "reminder_no": 3,
        "offer_cancellation": True,
    },
    "shipping_confirmation": ORDER,
    "delivery_delayed": ORDER,
    "parcel_lost": ORDER,
    "replacement_shipped": ORDER,
    "delivered": ORDER,
    "review_invitation": ORDER,
    "order_cancelled": {
        **ORDER,
        "shipment": None,
        "cause": "request",
        "reason": "ordered twice by mistake",
        "refunded": Decimal("33.90"),
    },
    "order_rejected": {**ORDER, "shipment": None, "refunded": Decimal("33.90")},
    "return_label": {
        **ORDER,
        "return_id": f"{ORDER_ID}-1",
        "return_lines": [{"sku": "SKU-TEA-TIN", "name": "Loose-leaf tea tin", "quantity": 1}],
        "return_tracking_number": "DHL00340434161094099999",
        "label_url": "http://localhost:8001/carriers/dhl/returns/DHL00340434161094099999/label",
        "send_back_by": "2026-12-20T10:00:00+00:00",
    },
    "return_closed": {**ORDER, "return_id": f"{ORDER_ID}-1"},
    "return_exchange": {
        **ORDER,
        "return_id": f"{ORDER_ID}-1",
        "replacement_order_id": f"{ORDER_ID}-1-EX",
        "return_lines": [{"sku": "SKU-TEA-TIN", "name": "Loose-leaf tea tin", "quantity": 1}],
    },
    "return_rejected": {
        **ORDER,
        "return_id": f"{ORDER_ID}-1",
        "return_lines": [{"sku": "SKU-TEA-TIN", "name": "Loose-leaf tea tin", "quantity": 1}],
    },
    "return_completed": {
        **ORDER,
        "return_id": f"{ORDER_ID}-1",
        "return_lines": [
            {
                "sku": "SKU-TEA-TIN",
                "name": "Loose-leaf tea tin",
                "quantity": 1,
                "outcome": "restock",
            }
        ],
        "refund_amount": Decimal("8.90"),
    },
    "feedback_acknowledged": {
        **ORDER,
        "ticket_id": "FB-7F3A2C",
        "department": "logistics",
        "message": "The box arrived dented.\nThe mugs are fine though.",
        "holds_completion": True,
    },
    "feedback_resolved": {
        **ORDER,
        "ticket_id": "FB-7F3A2C",
        "note": "We are sorry about the box; a voucher is on its way.",
    },
}

DEPARTMENT: dict[str, dict[str, Any]] = {
    "department_assignment": {
        "order_id": ORDER_ID,
        "department": "sales",
        "order_type": "standard",
        "rule": "no special handling applies",
    },
    "review_task_opened": {
        "order_id": ORDER_ID,
        "department": "risk",
        "score": 72.4,
        "reasons": ["new customer with a large first order", "billing and shipping differ"],
    },
    "review_escalated": {"order_id": ORDER_ID, "department": "risk_supervisor"},
    "pick_task_overdue": {"order_id": ORDER_ID, "department": "warehouse"},
    "return_decision_needed": {
        "order_id": ORDER_ID,
        "department": "customer_service",
        "return_id": f"{ORDER_ID}-1",
        "why": "not returnable: SKU-TEA-TIN",
    },
    "return_inspection_overdue": {
        "order_id": ORDER_ID,
        "department": "warehouse",
        "return_id": f"{ORDER_ID}-1",
    },
    "marketplace_push_refused": {
        "order_id": ORDER_ID,
        "department": "customer_service",
        "marketplace": "mkt-a",
        "what": "shipment",
        "answer": "mkt-a refused POST /orders/MA-1/shipment: 409 the order is cancelled",
    },
    "booking_refused": {
        "order_id": ORDER_ID,
        "department": "logistics",
        "reason": "no active carrier ships 42.0 kg to DE",
        "attempt": 1,
    },
    "delivery_follow_up": {
        "order_id": ORDER_ID,
        "department": "logistics",
        "attempt": 2,
        "escalated": False,
        "carrier": "dhl",
        "tracking_number": SHIPMENT["tracking_number"],
        "expected_delivery": SHIPMENT["expected_delivery"],
        "carrier_status": "IN_TRANSIT",
    },
    "parcel_lost": {
        "order_id": ORDER_ID,
        "department": "logistics",
        "carrier": "dhl",
        "tracking_number": SHIPMENT["tracking_number"],
        "reason": "the carrier reports the parcel lost",
        "case_no": 1,
    },
    "feedback_ticket": {
        "order_id": ORDER_ID,
        "department": "logistics",
        "ticket_id": "FB-7F3A2C",
        "category": "delivery",
        "message": "The box arrived dented.",
        "holds_completion": True,
    },
    "low_stock_alert": {
        "order_id": None,
        "department": "purchasing",
        "sku": "SKU-RED-MUG",
        "position": 48,
        "reorder_point": 50,
        "order_up_to": 400,
        "request_id": 17,
        "quantity": 352,
        "reason": "reorder_point",
    },
    "payment_problem": {
        "order_id": ORDER_ID,
        "department": "finance",
        "operation": "refund",
        "amount": Decimal("33.90"),
        "currency": "EUR",
        "failure_code": "card_closed",
        "idempotency_key": f"refund-{ORDER_ID}-1",
    },
    "payment_dispute": {
        "order_id": ORDER_ID,
        "department": "finance",
        "dispute_id": "dsp_5c1e2a9b0d3f4e67",
        "amount": Decimal("33.90"),
        "currency": "EUR",
        "reason": "fraudulent",
    },
    "process_issue_raised": {
        "order_id": ORDER_ID,
        "department": "warehouse",
        "ticket_id": "PI-3B9D1E",
        "step": 5,
        "step_name": "Picking & packing",
        "severity": "medium",
        "description": "Bin Z-9 labels are swapped: pickers walk twice.",
        "raised_by": "warehouse",
    },
    "process_review_ready": {
        "order_id": None,
        "department": "warehouse",
        "week_start": "2026-11-16",
        "week_end": "2026-11-23",
        "orders": 412,
        "changes": 2,
        "steps": [
            {
                "step": 4,
                "name": "Inventory confirmation",
                "open_issues": 1,
                "issues_raised": 1,
                "sla_breaches": 0,
                "changes": 0,
            },
            {
                "step": 5,
                "name": "Picking & packing",
                "open_issues": 2,
                "issues_raised": 1,
                "sla_breaches": 3,
                "changes": 1,
            },
        ],
    },
    "replenishment_request": {
        "order_id": None,
        "department": "purchasing",
        "sku": "SKU-RED-MUG",
        "position": 48,
        "reorder_point": 60,
        "order_up_to": 420,
        "request_id": 18,
        "quantity": 372,
        "reason": "forecast",
    },
}

SAMPLES: dict[str, dict[str, dict[str, Any]]] = {"email": CUSTOMER, "department": DEPARTMENT}
