"""HMAC signatures of carrier webhook bodies: the carrier signs, the API's webhook verifies.

The signature is hex HMAC-SHA256, keyed with the carrier's secret, over
`"<timestamp>." + body` (the raw request bytes). Signing the timestamp with the body means a
captured request cannot be replayed later with a fresh timestamp; the receiver refuses
timestamps outside a tolerance and still de-duplicates by event id within it.
"""

from __future__ import annotations

import hashlib
import hmac

from orderflow.settings import Settings

SIGNATURE_HEADER = "X-Orderflow-Signature"
TIMESTAMP_HEADER = "X-Orderflow-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


class CarrierSecretMissing(LookupError):
    """Production mode and no webhook secret configured for this carrier."""


def carrier_secret(settings: Settings, code: str) -> str:
    """The webhook secret of carrier `code`: configured, or `dev-carrier-secret-<code>`.

    The development default never applies in production mode, where a carrier without a
    configured secret is an error rather than a guessable key.
    """
    secret = settings.carrier_webhook_secrets.get(code)
    if secret:
        return secret
    if settings.mode == "production":
        raise CarrierSecretMissing(f"no webhook secret configured for carrier {code!r}")
    return f"dev-carrier-secret-{code}"


def sign_body(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The two headers a sender adds to a request carrying `body`."""
    return {
        SIGNATURE_HEADER: sign_body(secret, body, timestamp),
        TIMESTAMP_HEADER: str(int(timestamp)),
    }


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: int | str | None,
    signature: str | None,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when `signature` signs `body` at `timestamp` and the timestamp is recent.

    Takes header values as they arrive (strings, possibly missing or malformed): anything
    that does not parse is simply not a valid signature. The comparison is constant-time.
    """
    if signature is None or timestamp is None:
        return False
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - stamp) > tolerance_seconds:
        return False
    expected = sign_body(secret, body, stamp).encode("ascii")
    # Bytes, not str: compare_digest refuses non-ASCII strings, and a forged header may be any.
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8"))
