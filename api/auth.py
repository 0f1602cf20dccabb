"""Bearer tokens: operator roles from configuration, and per-order customer tokens.

Wrong role 403, no token 401. A customer token opens only its own order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from orderflow.access import is_customer_token
from orderflow.settings import Settings

CUSTOMER = "customer"


@dataclass(frozen=True)
class Principal:
    role: str
    order_id: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.order_id}" if self.order_id else self.role


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def require(*roles: str, customer: bool = False) -> Callable[[Request], Principal]:
    """A dependency admitting the given operator roles (and the order's customer token)."""

    def dependency(request: Request) -> Principal:
        settings: Settings = request.app.state.settings
        token = _bearer(request)
        role = settings.effective_tokens().get(token)
        if role is not None:
            if role in roles:
                return Principal(role=role)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role '{role}' may not do this; allowed: {', '.join(roles) or 'none'}",
            )
        if token.startswith("cust_"):
            order_id = request.path_params.get("order_id")
            if (
                customer
                and order_id
                and is_customer_token(settings.customer_token_secret, order_id, token)
            ):
                return Principal(role=CUSTOMER, order_id=order_id)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "this customer token does not open this resource"
            )
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown token", headers={"WWW-Authenticate": "Bearer"}
        )

    # What api/openapi.py declares for every route behind this dependency.
    dependency.openapi_statuses = (401, 403)  # type: ignore[attr-defined]
    return dependency


OPERATORS = ("storefront", "reviewer", "warehouse", "purchasing", "logistics", "admin")
# The shop's people, not its machines: the storefront's token sits in a web server and
# has no business reading every customer's data out of the histories.
STAFF = tuple(role for role in OPERATORS if role != "storefront")
