"""Outbound webhooks without servers: the retry policy, the signature a receiver checks, and
how subscriptions' secrets are kept."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from orderflow.settings import Settings
from orderflow.webhooks import (
    DEVELOPMENT_SECRET_KEY,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SecretUnreadable,
    WebhookKeyMissing,
    event_body,
    open_secret,
    seal_secret,
    secret_hint,
    secret_key,
    signed_headers,
    verify,
)
from policies.webhooks import backoff_seconds, delivered, next_attempt

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    waits = [backoff_seconds(n, base=5, cap=60) for n in range(1, 7)]
    assert waits == [5, 10, 20, 40, 60, 60]
    assert backoff_seconds(10_000, base=5, cap=3600) == 3600


def test_a_retry_past_the_max_age_is_never_made() -> None:
    day = timedelta(hours=24)
    soon = next_attempt(attempt=1, now=T0, age_from=T0, max_age=day, base=5, cap=3600)
    assert soon == T0 + timedelta(seconds=5)
    # An hour's wait would end after the day: dead-lettered now instead.
    late = T0 + timedelta(hours=23, minutes=30)
    assert next_attempt(attempt=20, now=late, age_from=T0, max_age=day, base=5, cap=3600) is None
    # The age counts from `age_from` (an admin's retry starts it afresh).
    assert next_attempt(attempt=20, now=late, age_from=late, max_age=day, base=5, cap=3600)


@pytest.mark.parametrize(
    ("code", "ok"),
    [(200, True), (204, True), (299, True), (301, False), (500, False), (None, False)],
)
def test_any_2xx_is_delivered(code: int | None, ok: bool) -> None:
    assert delivered(code) is ok


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"1"}'
    headers = signed_headers("shh", 17, body, 1_764_000_000)
    expected = hmac.new(b"shh", b'1764000000.{"id":"1"}', hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"v1={expected}"
    assert headers[TIMESTAMP_HEADER] == "1764000000"
    assert headers[EVENT_ID_HEADER] == "17"
    assert verify("shh", body, "1764000000", headers[SIGNATURE_HEADER], now=1_764_000_010)


@pytest.mark.parametrize(
    ("secret", "body", "stamp", "now"),
    [
        ("other", b'{"id":"1"}', "1764000000", 1_764_000_000),
        ("shh", b'{"id":"2"}', "1764000000", 1_764_000_000),
        ("shh", b'{"id":"1"}', "1764000001", 1_764_000_000),
        ("shh", b'{"id":"1"}', "1764000000", 1_764_000_000 + 301),
        ("shh", b'{"id":"1"}', "not a number", 1_764_000_000),
        ("shh", b'{"id":"1"}', None, 1_764_000_000),
    ],
)
def test_a_wrong_secret_body_or_timestamp_does_not_verify(
    secret: str, body: bytes, stamp: str | None, now: int
) -> None:
    good = signed_headers("shh", 1, b'{"id":"1"}', 1_764_000_000)[SIGNATURE_HEADER]
    assert not verify(secret, body, stamp, good, now=now)
    assert not verify("shh", b'{"id":"1"}', "1764000000", "v1=\u00e9", now=1_764_000_000)


def test_the_body_is_the_contract_and_the_same_bytes_every_time() -> None:
    fields = {
        "event_id": 42,
        "event_type": "shipped",
        "order_id": "A-1001",
        "status": "SHIPPED",
        "occurred_at": T0,
        "data": {"tracking_number": "TRK1", "carrier": "dhl"},
    }
    body = event_body(**fields)  # type: ignore[arg-type]
    assert body == event_body(**fields)  # type: ignore[arg-type]
    assert json.loads(body) == {
        "id": "42",
        "type": "shipped",
        "order_id": "A-1001",
        "status": "SHIPPED",
        "occurred_at": "2026-11-25T10:00:00+00:00",
        "data": {"tracking_number": "TRK1", "carrier": "dhl"},
    }


def test_secrets_are_sealed_and_open_only_under_their_key() -> None:
    key = secret_key(Settings(webhook_secret_key="k" * 40))
    sealed = seal_secret(key, "the-receivers-secret")
    assert b"the-receivers-secret" not in sealed
    assert seal_secret(key, "the-receivers-secret") != sealed, "a fresh nonce each time"
    assert open_secret(key, sealed) == "the-receivers-secret"
    with pytest.raises(SecretUnreadable):
        open_secret(secret_key(Settings(webhook_secret_key="j" * 40)), sealed)
    with pytest.raises(SecretUnreadable):
        open_secret(key, sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_development_uses_its_key_and_production_refuses_it() -> None:
    development = secret_key(Settings(mode="development"))
    assert development == hashlib.sha256(DEVELOPMENT_SECRET_KEY.encode()).digest()
    with pytest.raises(WebhookKeyMissing):
        secret_key(Settings(mode="production"))
    weak = Settings(mode="production", webhook_secret_key=DEVELOPMENT_SECRET_KEY)
    assert any("ORDERFLOW_WEBHOOK_SECRET_KEY" in p for p in weak.production_problems())
    short = Settings(mode="production", webhook_secret_key="short")
    assert any("ORDERFLOW_WEBHOOK_SECRET_KEY" in p for p in short.production_problems())
    strong = Settings(mode="production", webhook_secret_key="s" * 40)
    assert not any("WEBHOOK_SECRET_KEY" in p for p in strong.production_problems())


def test_the_hint_never_shows_enough_to_sign_with() -> None:
    assert secret_hint("short-secret") == "****"
    assert secret_hint("a-long-enough-secret-abcd") == "****abcd"


def test_the_max_age_defaults_to_a_day_and_reads_iso_durations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().webhook_max_age == timedelta(hours=24)
    monkeypatch.setenv("ORDERFLOW_WEBHOOK_MAX_AGE", "PT2H")
    assert Settings().webhook_max_age == timedelta(hours=2)
