"""An honest OpenAPI document: every operation lists the error statuses it can answer, each
with the project's error body `{"detail": "..."}`.

The statuses are derived in one place from what each route is made of, so a new route
declares them by using the usual parts:

- `require(...)` (bearer token) → 401, 403; `rate_limited(...)` → 429 (dependencies that
  carry `openapi_statuses`);
- a path parameter → 404; any parameter or body → 422 (the project's validation body,
  `detail` a string and `errors` the list of problems);
- a body (POST) → 413 (the body size limit, `api.errors.BodySizeLimit`);
- a message to an order's workflow (POST on `/orders/{order_id}/…` and the other order
  paths) → 409 (wrong state) and 503 (the order service busy);
- what a route answers beyond that is listed in `_EXTRA`.
"""

from __future__ import annotations

import json
from typing import Any, cast

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.pagination import NEXT_CURSOR_HEADER


class ErrorBody(BaseModel):
    """Every error: a human-readable `detail`."""

    detail: str


class ValidationProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class ValidationErrorBody(BaseModel):
    """A request that breaks the API's rules: `detail` says what, `errors` (when the body or
    a parameter failed validation) lists each problem."""

    detail: str
    errors: list[ValidationProblem] = []


class Health(BaseModel):
    status: str
    api: str
    postgres: str
    temporal: str


_DESCRIPTIONS = {
    401: "no or unknown bearer token",
    403: "the token's role (or customer token) may not do this",
    404: "not found",
    409: "the order (or resource) is not in a state that allows this",
    413: "request body too large",
    422: "invalid request",
    429: "too many requests: retry after `Retry-After` seconds",
    502: "an upstream service answered wrongly",
    503: "a service this depends on is unavailable: retry",
}

# Statuses particular to one operation, beyond what its parts declare.
_EXTRA: dict[tuple[str, str], set[int]] = {
    ("POST", "/mail/outbox/{row_id}/retry"): {409},
    ("GET", "/mailbox/messages"): {502, 503},
    ("GET", "/mailbox/messages/{message}"): {502, 503},
    ("POST", "/orders/{order_id}/feedback"): {409, 503},
    ("POST", "/carriers/{carrier}/events"): {401, 422},
    ("POST", "/purchasing/receipts"): {404, 409, 422},
    ("POST", "/payments/events"): {401, 404, 409},
    ("POST", "/payments/{order_id}/refunds/retry"): {409, 503},
    ("POST", "/payments/{order_id}/capture/retry"): {409, 503},
    ("POST", "/channels/exceptions/{marketplace}/{external_order_id}/place"): {409, 422, 503},
    ("POST", "/channels/exceptions/{marketplace}/{external_order_id}/reject"): {409, 503},
    ("POST", "/purchasing/releases"): {404},
    # A return refused by the rules (409 wrong state, 422 bad lines); inspection refused.
    ("POST", "/warehouse/returns/{return_id}/inspection"): {409, 503},
    ("POST", "/returns/{return_id}/decision"): {409, 503},
    ("GET", "/orders/{order_id}/events/stream"): {429},
    ("GET", "/events/stream"): {429},
    # An unknown order named in the body; an Idempotency-Key reused with another body.
    ("POST", "/process-issues"): {404, 409},
    ("POST", "/process-issues/{ticket_id}/start"): {409},
    ("POST", "/process-issues/{ticket_id}/resolve"): {409},
    # Production without ORDERFLOW_WEBHOOK_SECRET_KEY; a delivery that is not dead.
    ("POST", "/webhooks/subscriptions"): {409},
    ("POST", "/webhooks/deliveries/{delivery_id}/retry"): {409},
}

# Prefixes of paths whose POSTs message an order's workflow.
_WORKFLOW_PATHS = ("/orders/{order_id}/", "/reviews/{order_id}/", "/warehouse/tasks/{order_id}/")
_WORKFLOW_PATHS_LOGISTICS = "/logistics/{order_id}/"


def _dependency_statuses(dependant: Dependant) -> set[int]:
    found: set[int] = set(getattr(dependant.call, "openapi_statuses", ()))
    for sub in dependant.dependencies:
        found |= _dependency_statuses(sub)
    return found


def _has_parameters(dependant: Dependant) -> bool:
    if (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    ):
        return True
    return any(_has_parameters(sub) for sub in dependant.dependencies)


def _messages_workflow(method: str, path: str) -> bool:
    return method == "POST" and (
        path.startswith(_WORKFLOW_PATHS) or path.startswith(_WORKFLOW_PATHS_LOGISTICS)
    )


def error_statuses(route: APIRoute, method: str) -> set[int]:
    """The error statuses `route` answers to `method`."""
    statuses = _dependency_statuses(route.dependant)
    if route.dependant.path_params:
        statuses.add(404)
    if _has_parameters(route.dependant):
        statuses.add(422)
    if method in ("POST", "PUT", "PATCH"):
        statuses.add(413)
    if _messages_workflow(method, route.path_format):
        statuses |= {409, 422, 503}
    statuses |= _EXTRA.get((method, route.path_format), set())
    return statuses


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _components(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, ValidationErrorBody, Health):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    # FastAPI's own validation body is never sent (errors.py answers every 422): drop it
    # once no operation refers to it any more.
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'#/components/schemas/{unused}"' not in json.dumps(schema):
            schemas.pop(unused, None)


def _augment(route: APIRoute, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = error_statuses(route, method)
    if route.path_format == "/healthz":
        json_health = {"application/json": {"schema": _ref("Health")}}
        responses["200"] = {"description": "healthy", "content": json_health}
        responses["503"] = {"description": "degraded", "content": json_health}
        statuses.discard(503)
    for code in sorted(statuses):
        name = "ValidationErrorBody" if code == 422 else "ErrorBody"
        entry = responses.get(str(code), {})
        responses[str(code)] = {
            "description": entry.get("description") or _DESCRIPTIONS.get(code, "error"),
            "content": {"application/json": {"schema": _ref(name)}},
        }
        if code == 429:
            responses[str(code)]["headers"] = {
                "Retry-After": {
                    "description": "seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            }
    # A second success status (e.g. 200 "existed already" beside 202) has the same body.
    successes = [c for c in responses if c.startswith("2")]
    with_body = next((responses[c] for c in successes if "content" in responses[c]), None)
    for ok in successes:
        if "content" not in responses[ok] and with_body is not None:
            responses[ok]["content"] = with_body["content"]
    if any(p.get("name") == "cursor" for p in operation.get("parameters", [])):
        for ok in successes:
            responses[ok].setdefault("headers", {})[NEXT_CURSOR_HEADER] = {
                "description": "the next page's cursor; absent on the last page",
                "schema": {"type": "string"},
            }


def _api_routes(app: FastAPI) -> list[APIRoute]:
    """The app's API routes as the OpenAPI generator sees them: an included router's routes
    with that router's dependencies added (FastAPI includes routers lazily)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [
        cast(APIRoute, context)
        for context in contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def install_openapi(app: FastAPI) -> None:
    """Serve the document built from the app's routes when it is first asked for (so routes
    added after this call are in it too)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for route in _api_routes(app):
            if not route.include_in_schema:
                continue
            item = schema.get("paths", {}).get(route.path_format, {})
            for method in route.methods or ():
                operation = item.get(method.lower())
                if operation is not None:
                    _augment(route, method, operation)
        _components(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
