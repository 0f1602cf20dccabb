"""The codec endpoint: how an authorised operator reads encrypted histories in the Web UI.

Temporal's Web UI posts a history's payloads to `<codec endpoint>/decode` (and `/encode`
when an operator sends a signal from it) in the codec-server JSON form: `{"payloads":
[{"metadata": {name: base64}, "data": base64}]}`. Only the shop's staff may decode (not the
storefront's machine token); the browser
may call it only from the configured Web UI origins (`ORDERFLOW_CODEC_CORS_ORIGINS`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict
from temporalio.api.common.v1 import Payloads

from api.auth import STAFF, require
from orderflow.payload_codec import PayloadKeyError, codec_for
from orderflow.settings import Settings

router = APIRouter(tags=["codec"])

_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


class CodecPayloads(BaseModel):
    """Payloads as the codec-server protocol carries them (protobuf JSON)."""

    model_config = ConfigDict(extra="forbid")

    payloads: list[dict[str, Any]]


def _cors(request: Request, response: Response) -> None:
    settings: Settings = request.app.state.settings
    origin = request.headers.get("origin")
    if origin and origin in settings.codec_cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"


async def _apply(request: Request, body: CodecPayloads, operation: str) -> JSONResponse:
    try:
        payloads = json_format.ParseDict({"payloads": body.payloads}, Payloads())
    except json_format.ParseError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not payloads: {exc}") from exc
    codec = codec_for(request.app.state.settings)
    try:
        if operation == "decode":
            done = await codec.decode(payloads.payloads)
        else:
            done = await codec.encode(payloads.payloads)
    except PayloadKeyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    result = json_format.MessageToDict(Payloads(payloads=done))
    response = JSONResponse({"payloads": result.get("payloads", [])})
    _cors(request, response)
    return response


@router.post("/codec/decode", dependencies=[Depends(require(*STAFF))])
async def decode(request: Request, body: CodecPayloads) -> JSONResponse:
    """Decrypt payloads for an operator (the Web UI's "codec server")."""
    return await _apply(request, body, "decode")


@router.post("/codec/encode", dependencies=[Depends(require(*STAFF))])
async def encode(request: Request, body: CodecPayloads) -> JSONResponse:
    """Encrypt payloads with the current key (what the Web UI sends to a workflow)."""
    return await _apply(request, body, "encode")


@router.options("/codec/{operation}", include_in_schema=False)
async def preflight(request: Request, operation: str) -> Response:
    """The browser's preflight: allowed only from a configured Web UI origin."""
    settings: Settings = request.app.state.settings
    origin = request.headers.get("origin")
    if operation not in ("decode", "encode") or origin not in settings.codec_cors_origins:
        return Response(status_code=status.HTTP_403_FORBIDDEN)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _cors(request, response)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response
