"""How the command line talks to the HTTP API: one call as a role, refusals printed with
their `detail` and turned into exit codes (1 refused, 2 unreachable)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import typer
from rich.console import Console

from orderflow.redact import redact_url
from orderflow.settings import get_settings

console = Console()


def call_api(
    method: str,
    path: str,
    *,
    role: str | None = None,
    body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    return send_request(method, path, role=role, body=body, content=content, headers=headers).json()


def call_api_pages(
    path: str, *, role: str | None = None, filters: dict[str, Any] | None = None
) -> list[Any]:
    """Every row of a paginated list endpoint, following `X-Next-Cursor` page by page;
    `filters` are query parameters sent with every page (not in `path`: they would be lost)."""
    rows: list[Any] = []
    params: dict[str, Any] = {**(filters or {}), "limit": 200}
    while True:
        response = send_request("GET", path, role=role, params=params)
        rows.extend(response.json())
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            return rows
        params = {**(filters or {}), "limit": 200, "cursor": cursor}


def send_request(
    method: str,
    path: str,
    *,
    role: str | None = None,
    body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    """One request to the API as `role`; a refusal prints its detail and exits 1."""
    settings = get_settings()
    sent = dict(headers or {})
    if role is not None:
        sent["Authorization"] = f"Bearer {settings.token_for(role)}"
    try:
        response = httpx.request(
            method,
            f"{settings.api_url}{path}",
            json=body,
            content=content,
            headers=sent,
            params=params,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the API at {redact_url(settings.api_url)}: {exc}[/]")
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        console.print(f"[red]{response.status_code}: {detail}[/]")
        raise typer.Exit(1)
    return response


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data))
