"""Outbound webhooks: the request a subscriber receives, its signature, and how a
subscription's signing secret is kept at rest.

A subscriber verifies a request with its secret alone: `Orderflow-Signature` is
`v1=<hex HMAC-SHA256(secret, "<Orderflow-Timestamp>." + raw body)>`, the scheme of
`orderflow.signing` (which signs the carriers' webhooks) under the names of this contract.
The `v1=` prefix leaves room for another scheme beside it later.

Secrets are stored encrypted (AES-256-GCM under a key derived from
`ORDERFLOW_WEBHOOK_SECRET_KEY`): the database and its backups hold nothing a reader could sign
with. Without that setting, development uses a fixed key; production refuses to (see
`secret_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orderflow.settings import Settings
from orderflow.signing import sign_body

EVENT_ID_HEADER = "Orderflow-Event-Id"
TIMESTAMP_HEADER = "Orderflow-Timestamp"
SIGNATURE_HEADER = "Orderflow-Signature"
SIGNATURE_VERSION = "v1"
ALL_EVENTS = "*"

DEVELOPMENT_SECRET_KEY = "dev-webhook-secret-key"
_NONCE_BYTES = 12
# Binds a sealed value to its use: a ciphertext copied from elsewhere does not open here.
_AAD = b"orderflow webhook subscription secret"


class WebhookKeyMissing(LookupError):
    """Production mode and no ORDERFLOW_WEBHOOK_SECRET_KEY to encrypt secrets with."""


class SecretUnreadable(ValueError):
    """A sealed secret that does not open under the configured key (the key changed)."""


def secret_key(settings: Settings) -> bytes:
    """The AES-256 key that seals subscriptions' secrets: SHA-256 of the configured key, or
    of the development key outside production (a guessable key never applies there)."""
    configured = settings.webhook_secret_key
    if not configured:
        if settings.mode == "production":
            raise WebhookKeyMissing(
                "ORDERFLOW_WEBHOOK_SECRET_KEY is unset: production stores no webhook secret "
                "under the development key"
            )
        configured = DEVELOPMENT_SECRET_KEY
    return hashlib.sha256(configured.encode("utf-8")).digest()


def seal_secret(key: bytes, secret: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode("utf-8"), _AAD)


def open_secret(key: bytes, sealed: bytes) -> str:
    try:
        plain = AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _AAD)
    except (InvalidTag, ValueError) as exc:
        raise SecretUnreadable(
            "the webhook secret does not open under ORDERFLOW_WEBHOOK_SECRET_KEY"
        ) from exc
    return plain.decode("utf-8")


def secret_hint(secret: str) -> str:
    """What operators are shown of a secret: its length class and, for a long one, its last
    four characters (enough to tell two apart, far from enough to sign with)."""
    if len(secret) < 16:
        return "****"
    return f"****{secret[-4:]}"


def event_body(
    *,
    event_id: int,
    event_type: str,
    order_id: str,
    status: str | None,
    occurred_at: datetime,
    data: dict[str, Any],
) -> bytes:
    """The JSON a subscriber receives for one order event. Canonical (sorted keys, no
    spaces), so every attempt of a delivery sends the same bytes."""
    payload = {
        "id": str(event_id),
        "type": event_type,
        "order_id": order_id,
        "status": status,
        "occurred_at": occurred_at.isoformat(),
        "data": data,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    return f"{SIGNATURE_VERSION}={sign_body(secret, body, timestamp)}"


def signed_headers(secret: str, event_id: int, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: str(event_id),
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: signature(secret, body, timestamp),
    }


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    header: str | None,
    *,
    now: int,
    tolerance_seconds: int = 300,
) -> bool:
    """What a receiver does: True when `header` signs `body` at a recent `timestamp`.
    Compares in constant time; anything malformed is simply not valid."""
    if not header or not timestamp:
        return False
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance_seconds:
        return False
    expected = signature(secret, body, stamp).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8"))
