"""Admin endpoints for e-mail: the outbox (what the shop sends) and the mailbox (what the
embedded mail server received).

- `GET /mail/outbox?status=&recipient=&order_id=&limit=`: outbox rows, newest first;
- `GET /mail/outbox/stats`: rows per status, the oldest unsent row's age, delivery lag;
- `GET /mail/outbox/{id}`: one row with its text and HTML;
- `POST /mail/outbox/{id}/retry`: send a `failed` row again (attempts start from zero);
  404 unknown row, 409 a row that is not `failed`;
- `GET /mailbox/messages?to=&limit=`, `GET /mailbox/messages/{id}`: read through to the mail
  server at `mailbox_url`; 503 when it cannot be reached (e.g. a real SMTP relay is used).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import status as http_status
from pydantic import BaseModel

from api.auth import Principal, require
from api.deps import pool_of, settings_of
from api.pagination import NEXT_CURSOR_HEADER, Page, encode_cursor
from db.repositories import outbox
from notices.headers import message_id

router = APIRouter(tags=["mail"])

OutboxStatus = Literal["pending", "sending", "sent", "failed"]


class OutboxRow(BaseModel):
    id: int
    notification_key: str
    message_id: str
    order_id: str | None
    kind: str
    channel: str
    recipient: str
    subject: str
    locale: str | None
    status: OutboxStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    lease_until: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    accepted_at: datetime | None
    failed_at: datetime | None


class OutboxRowDetail(OutboxRow):
    body: str
    body_html: str | None


class OutboxStats(BaseModel):
    counts: dict[str, int]
    oldest_unsent_seconds: float | None
    window_seconds: float
    accepted_in_window: int
    lag_p50_seconds: float | None
    lag_p95_seconds: float | None


def _row(record: Any, *, detail: bool = False) -> OutboxRow:
    data = {k: record[k] for k in OutboxRowDetail.model_fields if k != "message_id"}
    data["message_id"] = message_id(record["notification_key"])
    if record["status"] not in ("pending", "sending"):
        # A settled row is due never; a sending row's next attempt is its lease's end.
        data["next_attempt_at"] = None
    return OutboxRowDetail(**data) if detail else OutboxRow(**data)


@router.get("/mail/outbox", response_model=list[OutboxRow])
async def list_outbox(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("admin"))],
    status: OutboxStatus | None = None,
    recipient: Annotated[str | None, Query(max_length=320)] = None,
    order_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="The previous page's X-Next-Cursor.")
    ] = None,
) -> list[OutboxRow]:
    """Outbox rows, newest first, a page at a time (the next page's cursor in
    `X-Next-Cursor`)."""
    before = Page(limit, cursor).after("int")
    rows = await outbox.list_rows(
        pool_of(request),
        status=status,
        recipient=recipient,
        order_id=order_id,
        limit=limit + 1,
        before_id=before[0] if before else None,
    )
    if len(rows) > limit:
        rows = rows[:limit]
        response.headers[NEXT_CURSOR_HEADER] = encode_cursor([rows[-1]["id"]])
    return [_row(r) for r in rows]


@router.get("/mail/outbox/stats", response_model=OutboxStats)
async def outbox_stats(
    request: Request,
    _: Annotated[Principal, Depends(require("admin"))],
    window_minutes: Annotated[float, Query(gt=0, le=7 * 24 * 60)] = 60,
) -> OutboxStats:
    """Rows per status, how long the oldest unsent row has waited, and the delivery lag
    (created -> accepted by the SMTP server) of rows accepted in the window."""
    pool = pool_of(request)
    async with pool.acquire() as conn:
        now: datetime = await conn.fetchval("SELECT now()")
        window = timedelta(minutes=window_minutes)
        lag = await outbox.delivery_lag(conn, since=now - window)
        oldest = await outbox.oldest_unsent_age(conn)
        counts = await outbox.counts(conn)
    return OutboxStats(
        counts=counts,
        oldest_unsent_seconds=oldest.total_seconds() if oldest is not None else None,
        window_seconds=window.total_seconds(),
        accepted_in_window=lag["n"],
        lag_p50_seconds=lag["p50"],
        lag_p95_seconds=lag["p95"],
    )


@router.get("/mail/outbox/{row_id}", response_model=OutboxRowDetail)
async def get_outbox_row(
    row_id: int, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> OutboxRow:
    """One outbox row with its text and HTML."""
    record = await outbox.get(pool_of(request), row_id)
    if record is None:
        raise HTTPException(http_status.HTTP_404_NOT_FOUND, f"no outbox row {row_id}")
    return _row(record, detail=True)


@router.post("/mail/outbox/{row_id}/retry", response_model=OutboxRow)
async def retry_outbox_row(
    row_id: int, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> OutboxRow:
    """Send a `failed` row again: it is pending at once, with a fresh set of attempts."""
    pool = pool_of(request)
    record = await outbox.retry(pool, row_id)
    if record is not None:
        return _row(record)
    current = await outbox.get(pool, row_id)
    if current is None:
        raise HTTPException(http_status.HTTP_404_NOT_FOUND, f"no outbox row {row_id}")
    raise HTTPException(
        http_status.HTTP_409_CONFLICT,
        f"outbox row {row_id} is {current['status']}, not failed: only a failed mail is "
        "retried by hand (pending and sending rows are being sent, sent rows were accepted)",
    )


async def _mailbox(request: Request, path: str, params: dict[str, Any] | None = None) -> Any:
    base = settings_of(request).mailbox_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{base}{path}", params=params)
    except httpx.HTTPError as exc:
        raise HTTPException(
            http_status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the mailbox at {base} is not reachable ({type(exc).__name__}); it exists only "
            "when the embedded mail server runs (`orderflow up` without ORDERFLOW_SMTP_HOST)",
        ) from exc
    if response.status_code == http_status.HTTP_404_NOT_FOUND:
        raise HTTPException(http_status.HTTP_404_NOT_FOUND, _detail(response))
    if not response.is_success:
        raise HTTPException(
            http_status.HTTP_502_BAD_GATEWAY,
            f"the mailbox answered {response.status_code}: {_detail(response)}",
        )
    try:
        return response.json()
    except ValueError as exc:
        raise HTTPException(
            http_status.HTTP_502_BAD_GATEWAY, "the mailbox answered something other than JSON"
        ) from exc


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except (ValueError, AttributeError):
        return response.text[:200]


@router.get("/mailbox/messages")
async def list_mailbox(
    request: Request,
    _: Annotated[Principal, Depends(require("admin"))],
    to: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """What the embedded mail server received, newest first (optionally for one recipient)."""
    params: dict[str, Any] = {"limit": limit}
    if to:
        params["to"] = to
    messages: list[dict[str, Any]] = await _mailbox(request, "/messages", params)
    return messages


@router.get("/mailbox/messages/{message}")
async def get_mailbox_message(
    message: int, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> dict[str, Any]:
    """One received message: headers, text part and HTML part."""
    found: dict[str, Any] = await _mailbox(request, f"/messages/{message}")
    return found
