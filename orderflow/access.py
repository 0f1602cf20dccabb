"""Per-order customer access tokens: an HMAC of the order id, so none need storing."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote


def customer_token(secret: str, order_id: str) -> str:
    digest = hmac.new(secret.encode(), f"order:{order_id}".encode(), hashlib.sha256).hexdigest()
    return f"cust_{digest}"


def is_customer_token(secret: str, order_id: str, token: str) -> bool:
    return hmac.compare_digest(customer_token(secret, order_id), token)


def order_page_url(public_url: str, order_id: str, token: str) -> str:
    """The customer's order page. The token rides in the fragment, which browsers never
    send to a server, so it stays out of access logs and Referer headers."""
    return f"{public_url.rstrip('/')}/orders/{quote(order_id, safe='')}/page#token={token}"
