"""The embedded mail server: a real SMTP server (aiosmtpd) that keeps what it receives, and
a small HTTP API to read it, for development, demos and tests.

`orderflow up` runs it (unless ORDERFLOW_SMTP_HOST points at another server) with SMTP on
`smtp_port` (1025) and HTTP on `mail_simulator_http_port` (8025); `orderflow mail list`,
`orderflow mail show` and the admin mailbox page (`/ui/mailbox.html`, through the API's
`/mailbox/...`) read it. Messages are kept in SQLite under `<state_dir>/mailbox/`, so they
outlive a restart.

HTTP:
- `GET /messages?to=EMAIL&limit=N`: received messages, newest first (id, from, to, subject,
  date, message_id, order_id from `X-Orderflow-Order`, notification kind);
- `GET /messages/{id}`: one message with its headers, text part and HTML part;
  `GET /messages/{id}/raw`: as received (message/rfc822);
- `DELETE /messages`: forget every message;
- `GET /control`, `POST /control` `{"mode": "accept"|"reject"|"tempfail", "times": N,
  "code": 550, "message": "...", "delay_seconds": 0, "reset": false}`: how the server answers
  DATA from now on: accept (250, stored), reject (5xx, permanent), tempfail (4xx, try later);
  with `times` only the next N messages get that answer, then it accepts again;
  `delay_seconds` holds each answer (a slow server);
- `GET /healthz`.

Refused messages are not stored: a mailbox holds what a recipient would have got.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderflow.settings import Settings, get_settings

log = logging.getLogger(__name__)

Mode = Literal["accept", "reject", "tempfail"]
_DEFAULT_REPLY: dict[Mode, tuple[int, str]] = {
    "accept": (250, "OK"),
    "reject": (550, "5.7.1 Message refused (simulated)"),
    "tempfail": (451, "4.3.0 Try again later (simulated)"),
}


class MessageSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    received_at: datetime
    from_: str = Field(alias="from")
    to: list[str]
    subject: str
    date: str | None
    message_id: str | None
    order_id: str | None
    notification: str | None
    size: int


class MessageDetail(MessageSummary):
    envelope_from: str
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None


class ControlUpdate(BaseModel):
    """`POST /control`: change how the server answers; unset fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    # Only the next `times` messages get this answer, then the server accepts again.
    times: int | None = Field(default=None, ge=1)
    code: int | None = Field(default=None, ge=200, le=599)
    message: str | None = Field(default=None, max_length=200)
    delay_seconds: float | None = Field(default=None, ge=0, le=600)
    # Back to accepting everything at once, before applying the rest of this update.
    reset: bool = False

    @model_validator(mode="after")
    def _code_fits_mode(self) -> ControlUpdate:
        if self.code is not None and self.mode is not None:
            wanted = {"accept": 2, "reject": 5, "tempfail": 4}[self.mode]
            if self.code // 100 != wanted:
                raise ValueError(f"a {self.mode} answer needs a {wanted}xx code")
        return self

    @model_validator(mode="after")
    def _message_is_one_line(self) -> ControlUpdate:
        if self.message is not None and any(c in self.message for c in "\r\n"):
            raise ValueError("message must be one line")
        return self


class ControlView(BaseModel):
    mode: Mode
    code: int
    message: str
    # Messages left that get this answer before the server accepts again (None: all).
    remaining: int | None
    delay_seconds: float
    received: int
    refused: int


class MailStore:
    """Received messages in SQLite (one file; reads and writes are short, done in place)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(
            """PRAGMA journal_mode = WAL;
               CREATE TABLE IF NOT EXISTS messages (
                   id INTEGER PRIMARY KEY AUTOINCREMENT,
                   received_at TEXT NOT NULL,
                   envelope_from TEXT NOT NULL,
                   envelope_to TEXT NOT NULL,
                   header_from TEXT NOT NULL,
                   subject TEXT NOT NULL,
                   date TEXT,
                   message_id TEXT,
                   order_id TEXT,
                   notification TEXT,
                   raw BLOB NOT NULL);
               CREATE TABLE IF NOT EXISTS recipients (
                   message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                   address TEXT NOT NULL);
               CREATE INDEX IF NOT EXISTS recipients_address ON recipients (address, message);
               PRAGMA foreign_keys = ON;"""
        )

    def add(self, envelope_from: str, recipients: list[str], raw: bytes) -> int:
        parsed = _parse(raw)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                cursor = self._db.execute(
                    """INSERT INTO messages (received_at, envelope_from, envelope_to,
                           header_from, subject, date, message_id, order_id, notification, raw)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        datetime.now(UTC).isoformat(),
                        envelope_from,
                        json.dumps(recipients),
                        str(parsed.get("From", "")),
                        str(parsed.get("Subject", "")),
                        _header(parsed, "Date"),
                        _header(parsed, "Message-ID"),
                        _header(parsed, "X-Orderflow-Order"),
                        _header(parsed, "X-Orderflow-Notification"),
                        raw,
                    ),
                )
                message = cursor.lastrowid
                assert message is not None
                self._db.executemany(
                    "INSERT INTO recipients (message, address) VALUES (?, ?)",
                    [(message, r.lower()) for r in recipients],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return message

    def list(self, *, to: str | None = None, limit: int = 100) -> list[MessageSummary]:
        with self._lock:
            if to:
                rows = self._db.execute(
                    f"""SELECT {_SUMMARY} FROM messages m
                        WHERE m.id IN (SELECT message FROM recipients WHERE address = ?)
                        ORDER BY m.id DESC LIMIT ?""",
                    (to.strip().lower(), limit),
                ).fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT {_SUMMARY} FROM messages m ORDER BY m.id DESC LIMIT ?", (limit,)
                ).fetchall()
        return [_summary(r) for r in rows]

    def get(self, message: int) -> MessageDetail | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_SUMMARY}, m.raw FROM messages m WHERE m.id = ?", (message,)
            ).fetchone()
        if row is None:
            return None
        parsed = _parse(row["raw"])
        return MessageDetail(
            **_summary(row).model_dump(),
            envelope_from=row["envelope_from"],
            headers=[(name, str(value)) for name, value in parsed.items()],
            text=_part(parsed, "plain"),
            html=_part(parsed, "html"),
        )

    def raw(self, message: int) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT raw FROM messages WHERE id = ?", (message,)).fetchone()
        return None if row is None else bytes(row["raw"])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def clear(self) -> int:
        with self._lock:
            deleted = self._db.execute("DELETE FROM messages").rowcount
            self._db.execute("DELETE FROM recipients")
        return int(deleted)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_SUMMARY = """m.id, m.received_at, m.envelope_from, m.envelope_to, m.header_from, m.subject,
              m.date, m.message_id, m.order_id, m.notification, length(m.raw) AS size"""


def _summary(row: sqlite3.Row) -> MessageSummary:
    return MessageSummary(
        id=row["id"],
        received_at=datetime.fromisoformat(row["received_at"]),
        from_=row["header_from"],
        to=json.loads(row["envelope_to"]),
        subject=row["subject"],
        date=row["date"],
        message_id=row["message_id"],
        order_id=row["order_id"],
        notification=row["notification"],
        size=row["size"],
    )


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    return None if value is None else str(value)


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None or body.get_content_subtype() != subtype:
        return None
    content = body.get_content()
    # Lines travel with CRLF; readers get them as written.
    return content.replace("\r\n", "\n") if isinstance(content, str) else None


class MailServer:
    """The SMTP side: answers DATA as the control says, stores what it accepts.

    An aiosmtpd handler (`handle_DATA`), run inside the HTTP app's event loop."""

    def __init__(self, store: MailStore) -> None:
        self.store = store
        self.mode: Mode = "accept"
        self.code, self.message = _DEFAULT_REPLY["accept"]
        self.remaining: int | None = None
        self.delay_seconds = 0.0
        self.refused = 0

    def control(self, update: ControlUpdate) -> ControlView:
        if update.reset:
            self.mode, self.remaining, self.delay_seconds = "accept", None, 0.0
            self.code, self.message = _DEFAULT_REPLY["accept"]
        if update.mode is not None:
            self.mode = update.mode
            self.code, self.message = _DEFAULT_REPLY[update.mode]
            self.remaining = update.times
        elif update.times is not None:
            self.remaining = update.times
        if update.code is not None:
            wanted = {"accept": 2, "reject": 5, "tempfail": 4}[self.mode]
            if update.code // 100 != wanted:
                raise HTTPException(422, f"a {self.mode} answer needs a {wanted}xx code")
            self.code = update.code
        if update.message is not None:
            self.message = update.message
        if update.delay_seconds is not None:
            self.delay_seconds = update.delay_seconds
        return self.view()

    def view(self) -> ControlView:
        return ControlView(
            mode=self.mode,
            code=self.code,
            message=self.message,
            remaining=self.remaining,
            delay_seconds=self.delay_seconds,
            received=self.store.count(),
            refused=self.refused,
        )

    def _answer(self) -> tuple[Mode, int, str]:
        """The answer to this message, counting down a limited mode."""
        answer = (self.mode, self.code, self.message)
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.mode, self.remaining = "accept", None
                self.code, self.message = _DEFAULT_REPLY["accept"]
        return answer

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        mode, code, text = self._answer()
        if mode != "accept":
            self.refused += 1
            return f"{code} {text}"
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
        message = self.store.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        return f"{code} {text}: stored as message {message}"


def create_app(
    settings: Settings | None = None,
    *,
    smtp_host: str | None = None,
    smtp_port: int | None = None,
    store_path: Path | None = None,
) -> FastAPI:
    """The HTTP API as an ASGI app; its lifespan runs the SMTP server in the same loop.

    `app.state.mailserver` is the `MailServer` (tests change its behaviour directly or
    through `POST /control`).
    """
    settings = settings or get_settings()
    # aiosmtpd logs every recipient at INFO: logs never show customers' addresses, however
    # the server is started (its own process, the embedded stack, a test).
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    store = MailStore(store_path or settings.state_dir / "mailbox" / "mailbox.sqlite3")
    mailserver = MailServer(store)
    host = smtp_host or settings.mail_simulator_host
    port = smtp_port or settings.smtp_port

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(
                mailserver,
                hostname="orderflow-mail",
                ident="orderflow mail server",
                enable_SMTPUTF8=True,
                loop=loop,
            ),
            host=host,
            port=port,
        )
        log.info("mail server: SMTP on %s:%s, messages in %s", host, port, store.path)
        try:
            yield
        finally:
            server.close()
            await server.wait_closed()
            store.close()

    app = FastAPI(
        title="orderflow mail server",
        description="A local SMTP server that keeps what it receives, and reads it back.",
        lifespan=lifespan,
    )
    app.state.mailserver = mailserver

    @app.get("/messages", response_model=list[MessageSummary])
    async def list_messages(
        to: str | None = Query(default=None, max_length=320, description="a recipient address"),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[MessageSummary]:
        return store.list(to=to, limit=limit)

    @app.get("/messages/{message}", response_model=MessageDetail)
    async def get_message(message: int) -> MessageDetail:
        found = store.get(message)
        if found is None:
            raise HTTPException(404, f"no message {message}")
        return found

    @app.get("/messages/{message}/raw")
    async def get_raw(message: int) -> Response:
        raw = store.raw(message)
        if raw is None:
            raise HTTPException(404, f"no message {message}")
        return Response(raw, media_type="message/rfc822")

    @app.delete("/messages")
    async def clear_messages() -> dict[str, int]:
        return {"deleted": store.clear()}

    @app.get("/control", response_model=ControlView)
    async def get_control() -> ControlView:
        return mailserver.view()

    @app.post("/control", response_model=ControlView)
    async def post_control(update: ControlUpdate) -> ControlView:
        return mailserver.control(update)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "smtp": f"{host}:{port}", "messages": store.count()}

    return app


def run(settings: Settings | None = None) -> None:
    """Serve SMTP and HTTP (blocking) on the configured host and ports."""
    settings = settings or get_settings()
    # aiosmtpd logs every recipient at INFO: logs never show customers' addresses.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings),
        host=settings.mail_simulator_host,
        port=settings.mail_simulator_http_port,
        log_level="warning",
    )


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run()


__all__ = [
    "ControlUpdate",
    "ControlView",
    "MailServer",
    "MailStore",
    "MessageDetail",
    "MessageSummary",
    "create_app",
    "run",
]
