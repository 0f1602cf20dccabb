"""A real SMTP server for tests: aiosmtpd in its own thread on a free loopback port, that
keeps what it accepts (parsed with `email`) and answers as the test says; and an outbox
dispatcher to run beside a test (`dispatching`).

Modes: `accept` (250, kept), `reject` (5xx), `tempfail` (4xx), and `stall`: DATA is held
until `release()`, then answered 451 and not kept, so a client killed while it waits has
delivered nothing. `stage` chooses where refusals happen: at RCPT or at DATA. Optional
implicit TLS, STARTTLS and AUTH, for the client's security settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from orderflow.settings import Settings
from stack.supervisor import free_port
from workers.outbox import OutboxDispatcher

Mode = Literal["accept", "reject", "tempfail", "stall"]


@dataclass(frozen=True)
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, subtype: str) -> str | None:
        body = self.message.get_body(preferencelist=(subtype,))
        if body is None or body.get_content_subtype() != subtype:
            return None
        content = body.get_content()
        assert isinstance(content, str)
        # Lines travel with CRLF; compare them as written.
        return content.replace("\r\n", "\n")


class _Handler:
    def __init__(self, owner: CapturingSmtp) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.owner.stage == "rcpt":
            refusal = self.owner._refusal()
            if refusal:
                return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        owner = self.owner
        if owner.mode == "stall":
            with owner._lock:
                owner.stalls += 1
            owner.stalling.set()
            await asyncio.to_thread(owner._released.wait)
            return "451 4.3.0 held, then given up (test server)"
        if owner.stage == "data":
            refusal = owner._refusal()
            if refusal:
                return refusal
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with owner._lock:
            owner._received.append(
                Received(envelope.mail_from or "", list(envelope.rcpt_tos), parsed, raw)
            )
        return "250 OK: kept"


class CapturingSmtp:
    """Start with `with CapturingSmtp() as smtp:`; point the client at `smtp.settings()`."""

    def __init__(
        self,
        *,
        implicit_tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.mode: Mode = "accept"
        self.stage: Literal["rcpt", "data"] = "data"
        self.code: int | None = None
        self.refusals = 0
        self.stalls = 0
        self.stalling = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": True}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if login is not None:
            kwargs.update(auth_required=True, authenticator=self._authenticator(login))
            if implicit_tls is not None:
                # aiosmtpd knows only STARTTLS as TLS; the implicit kind is encrypted too.
                kwargs.update(auth_require_tls=False)
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=implicit_tls,
            server_hostname="localhost",
            **kwargs,
        )

    def _authenticator(self, login: tuple[str, str]) -> Any:
        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and (
                    data.login.decode(),
                    data.password.decode(),
                )
                == login
            )
            if ok:
                self.logins.append(data.login.decode())
            # handled=False: aiosmtpd answers the refusal (535) itself.
            return AuthResult(success=ok, handled=False)

        return authenticate

    def _refusal(self) -> str | None:
        if self.mode == "reject":
            with self._lock:
                self.refusals += 1
            return f"{self.code or 550} 5.7.1 refused by the test server"
        if self.mode == "tempfail":
            with self._lock:
                self.refusals += 1
            return f"{self.code or 451} 4.3.0 try later (test server)"
        return None

    # --- control ---

    def set_mode(
        self, mode: Mode, *, code: int | None = None, stage: Literal["rcpt", "data"] = "data"
    ) -> None:
        self.mode, self.code, self.stage = mode, code, stage
        if mode == "stall":
            self._released.clear()
            self.stalling.clear()

    def release(self) -> None:
        """Let stalled DATA commands answer (451, nothing kept)."""
        self._released.set()

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def settings(self, **more: Any) -> dict[str, Any]:
        """Settings fields that send to this server."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, **more}

    def env(self) -> dict[str, str]:
        return {"ORDERFLOW_SMTP_HOST": "127.0.0.1", "ORDERFLOW_SMTP_PORT": str(self.port)}

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """At least `count` messages kept, within `timeout` seconds (polled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.received
            if len(received) >= count:
                return received
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.received)} of {count} messages within {timeout} s")

    # --- lifetime ---

    def start(self) -> CapturingSmtp:
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release()
        self._controller.stop()

    def __enter__(self) -> CapturingSmtp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def dispatching(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[OutboxDispatcher]:
    """An outbox dispatcher running in this event loop until the block ends (its counters
    `sent` and `failed_attempts` stay readable after)."""
    dispatcher = OutboxDispatcher(pool, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed_certificate(folder: Path) -> Certificate | None:
    """A certificate for localhost / 127.0.0.1 made with the `openssl` command (None when
    it is not installed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)
