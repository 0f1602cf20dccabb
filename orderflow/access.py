"""Per-order customer access tokens: an HMAC of the order id, so none need storing."""

from __future__ import annotations

import hashlib
import hmac


def customer_token(secret: str, order_id: str) -> str:
    digest = hmac.new(secret.encode(), f"order:{order_id}".encode(), hashlib.sha256).hexdigest()
    return f"cust_{digest}"


def is_customer_token(secret: str, order_id: str, token: str) -> bool:
    return hmac.compare_digest(customer_token(secret, order_id), token)
