"""The OpenAPI document declares every error an operation answers, with the error body."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from orderflow.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings()).openapi()
    return schema


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]


def test_every_error_status_has_the_error_body(document: dict[str, Any]) -> None:
    for method, path, op in _operations(document):
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")) and path != "/healthz":
                schema = response["content"]["application/json"]["schema"]["$ref"]
                expected = "ValidationErrorBody" if code == "422" else "ErrorBody"
                assert schema.endswith(f"/{expected}"), (method, path, code)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_statuses_follow_from_each_route(document: dict[str, Any]) -> None:
    responses = {(m, p): set(op["responses"]) for m, p, op in _operations(document)}
    assert {"401", "403", "404", "409", "413", "422", "429", "503"} <= responses[
        ("POST", "/orders/{order_id}/cancel")
    ]
    assert {"401", "403", "413", "422", "429"} <= responses[("POST", "/orders")]
    assert {"401", "403", "429"} <= responses[("GET", "/events/stream")]
    assert "404" not in responses[("GET", "/inventory")]
    assert responses[("GET", "/healthz")] == {"200", "503"}


def test_list_limits_and_cursor_are_declared(document: dict[str, Any]) -> None:
    listing = document["paths"]["/warehouse/tasks"]["get"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 200
    assert "X-Next-Cursor" in listing["responses"]["200"]["headers"]
    retry_after = document["paths"]["/orders"]["post"]["responses"]["429"]["headers"]
    assert retry_after["Retry-After"]["schema"]["type"] == "integer"
