"""Webhook body signatures: what verifies, what does not, and whose secret applies."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderflow.settings import Settings
from orderflow.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CarrierSecretMissing,
    carrier_secret,
    sign_body,
    signed_headers,
    verify_signature,
)

SECRET = "s3cret"
BODY = (
    b'{"event_id":"e1","tracking_number":"DHL1","status":"DELIVERED","at":"2026-11-25T10:00:00Z"}'
)
NOW = 1_795_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_body(SECRET, BODY, NOW) == expected


def test_a_fresh_signature_verifies() -> None:
    signature = sign_body(SECRET, BODY, NOW)
    assert verify_signature(SECRET, BODY, NOW, signature, now=NOW)
    # Header values arrive as strings.
    assert verify_signature(SECRET, BODY, str(NOW), signature, now=NOW + 10)
    assert verify_signature(SECRET, BODY, NOW, signature.upper(), now=NOW)


def test_tampering_with_body_timestamp_secret_or_signature_fails() -> None:
    signature = sign_body(SECRET, BODY, NOW)
    assert not verify_signature(
        SECRET, BODY.replace(b"DELIVERED", b"LOST"), NOW, signature, now=NOW
    )
    assert not verify_signature(SECRET, BODY, NOW + 1, signature, now=NOW)
    assert not verify_signature("other", BODY, NOW, signature, now=NOW)
    other_last = "1" if signature.endswith("0") else "0"
    assert not verify_signature(SECRET, BODY, NOW, signature[:-1] + other_last, now=NOW)
    assert not verify_signature(SECRET, BODY, NOW, "", now=NOW)


def test_missing_or_malformed_headers_fail_without_raising() -> None:
    signature = sign_body(SECRET, BODY, NOW)
    assert not verify_signature(SECRET, BODY, None, signature, now=NOW)
    assert not verify_signature(SECRET, BODY, NOW, None, now=NOW)
    assert not verify_signature(SECRET, BODY, "yesterday", signature, now=NOW)
    assert not verify_signature(SECRET, BODY, NOW, "ünïcode-forgery", now=NOW)


def test_timestamps_outside_the_tolerance_are_refused() -> None:
    signature = sign_body(SECRET, BODY, NOW)
    assert verify_signature(SECRET, BODY, NOW, signature, now=NOW + 300)
    assert not verify_signature(SECRET, BODY, NOW, signature, now=NOW + 301)
    assert not verify_signature(SECRET, BODY, NOW, signature, now=NOW - 301)
    assert verify_signature(SECRET, BODY, NOW, signature, now=NOW + 3000, tolerance_seconds=3600)


def test_signed_headers_carry_what_verify_needs() -> None:
    headers = signed_headers(SECRET, BODY, NOW)
    assert set(headers) == {SIGNATURE_HEADER, TIMESTAMP_HEADER}
    assert verify_signature(
        SECRET, BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], now=NOW
    )


@given(body=st.binary(max_size=2000), flip=st.integers(min_value=0), bit=st.integers(0, 7))
def test_property_any_single_bit_flip_in_the_body_is_detected(
    body: bytes, flip: int, bit: int
) -> None:
    signature = sign_body(SECRET, body, NOW)
    assert verify_signature(SECRET, body, NOW, signature, now=NOW)
    if body:
        position = flip % len(body)
        tampered = bytearray(body)
        tampered[position] ^= 1 << bit
        assert not verify_signature(SECRET, bytes(tampered), NOW, signature, now=NOW)


def test_carrier_secret_prefers_configuration_then_the_development_default() -> None:
    configured = Settings(carrier_webhook_secrets={"dhl": "from-config"})
    assert carrier_secret(configured, "dhl") == "from-config"
    assert carrier_secret(configured, "dpd") == "dev-carrier-secret-dpd"


def test_production_never_falls_back_to_the_development_secret() -> None:
    production = Settings(mode="production", carrier_webhook_secrets={"dhl": "from-config"})
    assert carrier_secret(production, "dhl") == "from-config"
    with pytest.raises(CarrierSecretMissing, match="dpd"):
        carrier_secret(production, "dpd")
