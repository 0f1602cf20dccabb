"""The PSP's wire types refuse what a PSP would, and its settings derive the webhook address."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from orderflow.models.psp import CaptureRequest, PaymentFacts, PspError, PspWebhookEvent
from orderflow.settings import Settings

FACTS = {"amount": "40.00", "currency": "EUR", "status": "authorized"}


def test_a_capture_keeps_its_amount_exact_and_round_trips_as_a_string() -> None:
    request = CaptureRequest.model_validate({"amount": "12.50", "payment": FACTS})
    assert request.amount == Decimal("12.50")
    wire = request.model_dump(mode="json")
    assert wire["amount"] == "12.50"
    assert CaptureRequest.model_validate(wire) == request


@pytest.mark.parametrize(
    "body",
    [
        {"amount": "12.505", "payment": FACTS},  # a third decimal place
        {"amount": "0", "payment": FACTS},  # nothing to capture
        {"amount": "-1.00", "payment": FACTS},
        {"amount": "1.00"},  # the facts are required
        {"amount": "1.00", "payment": {**FACTS, "status": "refunded"}},
        {"amount": "1.00", "payment": {**FACTS, "currency": "eur"}},
        {"amount": "1.00", "payment": FACTS, "currency": "EUR"},  # unknown field
    ],
)
def test_malformed_capture_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CaptureRequest.model_validate(body)


def test_events_and_errors_name_only_known_kinds() -> None:
    with pytest.raises(ValidationError):
        PspWebhookEvent.model_validate(
            {
                "event_id": "e",
                "type": "refund.lost",
                "transaction_id": "t",
                "object_id": "r",
                "amount": "1.00",
                "at": "2025-01-01T00:00:00Z",
            }
        )
    with pytest.raises(ValidationError):
        PspError.model_validate({"detail": "x", "code": "teapot"})
    assert PaymentFacts.model_validate(FACTS).authorization_expires_at is None


def test_the_webhook_address_follows_the_api_port_unless_set() -> None:
    assert Settings(api_port=8123).psp_webhook_url == "http://127.0.0.1:8123/payments/events"
    assert Settings(psp_webhook_url="https://shop.example/psp").psp_webhook_url == (
        "https://shop.example/psp"
    )
    # The public address keeps being derived alongside.
    assert Settings(api_port=8123).public_url == "http://localhost:8123"
