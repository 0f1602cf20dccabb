"""The operators' page at `/ui/`: static HTML and JavaScript (api/static), no build step.

The page itself holds no data: it calls the API with the token the operator types in."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import RedirectResponse, Response

router = APIRouter(include_in_schema=False)

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    # The admin mailbox page (what the embedded mail server received, the outbox).
    "mailbox.html": "text/html; charset=utf-8",
    "mailbox.js": "text/javascript; charset=utf-8",
}


def _asset(name: str) -> Response:
    if name not in _TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such page: {name}")
    body = (resources.files("api") / "static" / name).read_bytes()
    return Response(body, media_type=_TYPES[name], headers={"Cache-Control": "no-cache"})


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/")
async def ui_index() -> Response:
    return _asset("index.html")


@router.get("/ui/{name}")
async def ui_asset(name: str) -> Response:
    return _asset(name)
