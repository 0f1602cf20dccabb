"""The customer's own order page: `GET /orders/{order_id}/page`, static HTML and JavaScript.

The page holds no order data and needs no token to load: customers open it from the link in
their e-mails, `/orders/{id}/page#token=cust_...` (`orderflow.access.order_page_url`). The
token rides in the URL fragment, which the browser never sends to a server, and the page's
script sends it as the Bearer token of its API calls. The headers keep it that way should
anything go wrong: no Referer leaves the page, and the Content-Security-Policy admits only
this origin's own scripts, styles and API (no inline script, no third party that could read
the fragment).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

# Assets live under their own prefix: a relative name next to the page would be
# /orders/{id}/order.js, in the orders' namespace.
ASSET_PREFIX = "/order-page"

_TYPES = {
    "order.html": "text/html; charset=utf-8",
    "order.js": "text/javascript; charset=utf-8",
    "order.css": "text/css; charset=utf-8",
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # /ui/style.css (the operators' base look) and the page's own stylesheet.
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        # Every form is sent by the script; a plain submission (with the form's contents
        # in a URL) must never happen.
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> Response:
    if name not in _TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such file: {name}")
    body = (resources.files("api") / "static" / name).read_bytes()
    return Response(body, media_type=_TYPES[name], headers=SECURITY_HEADERS)


@router.get("/orders/{order_id}/page")
async def order_page(order_id: str) -> Response:
    """The same page for every order id, known or not: it tells nothing until the API has
    seen the order's token."""
    return _asset("order.html")


@router.get(ASSET_PREFIX + "/{name}")
async def order_page_asset(name: str) -> Response:
    if name == "order.html":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such file: {name}")
    return _asset(name)
