"""JSON errors with a human-readable `detail`, and the limits that keep bad input out."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    message = str(error.get("msg", "invalid"))
    return f"{where}: {message}" if where else message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _unprocessable(list(exc.errors()))

    # A message built from a valid body can still break a rule of the domain model
    # (e.g. rejecting without a note): that is the caller's mistake, a 422, never a 500.
    @app.exception_handler(ValidationError)
    async def _invalid_message(request: Request, exc: ValidationError) -> JSONResponse:
        return _unprocessable([dict(e) for e in exc.errors()])

    # A value that passed its type but not PostgreSQL's (a path id beyond bigint, a number
    # out of a column's range) is the caller's mistake too: 422, never a 500.
    @app.exception_handler(asyncpg.DataError)
    async def _out_of_range(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        message = str(exc).partition(": ")[2] or "a value is out of range"
        # asyncpg names the query argument; the caller knows no queries.
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": f"invalid request: {_argument_free(message)}"},
        )


def _argument_free(message: str) -> str:
    """'1000... (value out of int64 range)' -> 'value out of int64 range'."""
    start, end = message.rfind("("), message.rfind(")")
    return message[start + 1 : end] if 0 <= start < end else message


def _unprocessable(errors: list[Any]) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={
            "detail": "invalid request: " + "; ".join(_describe(e) for e in errors),
            "errors": [
                {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")}
                for e in errors
            ],
        },
    )


class BodySizeLimit:
    """Refuses bodies over `max_bytes` with 413 before any handler reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            # Counts what arrives, so a body without Content-Length (chunked) is bounded too.
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started and not refused:
                        # Answered here: whatever the app makes of the error below (FastAPI
                        # turns a failed body read into a 400) is not sent.
                        refused = True
                        await self._refuse(send)
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not refused and not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            content={"detail": f"request body larger than {self.max_bytes} bytes"},
        )
        await response({"type": "http"}, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
