"""E-mail over SMTP (aiosmtplib): the message a notification row becomes, and its sending.

Every message has a plain-text and an HTML part (multipart/alternative). Rows written before
the content templates had HTML get the text, escaped, in a `<pre>`. The `Message-ID` is
derived from the notification key, so every retry of one notification carries the same id
and receivers can drop a copy that arrives twice (a dispatcher that crashed after the
server's 250 but before recording it sends again after its lease).

`SmtpSession` keeps one connection for a dispatcher's batch and opens a new one after any
failure, so one refused message never leaves a half-finished transaction for the next.
"""

from __future__ import annotations

import asyncio
import html
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from types import TracebackType

import aiosmtplib

from notices.headers import message_id
from orderflow.redact import mask_addresses
from orderflow.settings import Settings

__all__ = ["mask_addresses"]  # kept here too: the outbox and its tests import it from here

ORDER_HEADER = "X-Orderflow-Order"
NOTIFICATION_HEADER = "X-Orderflow-Notification"


@dataclass(frozen=True)
class OutgoingMail:
    """What the outbox row says; the message is built from it on every attempt."""

    notification_key: str
    order_id: str | None
    kind: str
    recipient: str
    subject: str
    body: str
    body_html: str | None = None


class DeliveryError(Exception):
    """The server did not accept the message. `permanent` (a 5xx) and `code` only make the
    recorded error clearer: both kinds are retried with backoff, up to the attempt limit."""

    def __init__(self, message: str, *, code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.code = code
        self.permanent = permanent


def html_from_text(text: str) -> str:
    """The HTML part for a row that has only text: the text, escaped, kept as written."""
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"></head><body>\n'
        '<pre style="font-family: inherit; white-space: pre-wrap">'
        f"{html.escape(text)}</pre>\n</body></html>\n"
    )


def envelope_sender(settings: Settings) -> str:
    """The bare address of `mail_from` ("orderflow <orders@x>" -> "orders@x")."""
    return parseaddr(settings.mail_from)[1] or settings.mail_from


def build_message(
    mail: OutgoingMail, settings: Settings, *, now: datetime | None = None
) -> EmailMessage:
    """The row as a multipart/alternative message (text, then HTML) with its headers."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = message_id(mail.notification_key)
    if mail.order_id:
        message[ORDER_HEADER] = mail.order_id
    message[NOTIFICATION_HEADER] = mail.kind
    message.set_content(mail.body)
    message.add_alternative(mail.body_html or html_from_text(mail.body), subtype="html")
    return message


def describe_error(exc: BaseException) -> DeliveryError:
    """Any failure to send, as a DeliveryError with a readable text for the row."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        code = codes[0] if codes else None
        detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients) or str(exc)
        return _refusal(f"recipient refused: {detail}", code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        stage = {
            aiosmtplib.SMTPSenderRefused: "sender refused",
            aiosmtplib.SMTPDataError: "message refused",
            aiosmtplib.SMTPAuthenticationError: "authentication failed",
            aiosmtplib.SMTPHeloError: "greeting refused",
        }.get(type(exc), "server refused")
        return _refusal(f"{stage}: {exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryError(f"timed out{f': {exc}' if str(exc) else ''}")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return DeliveryError(f"cannot reach the SMTP server: {exc}")
    if isinstance(exc, ConnectionError):
        return DeliveryError(f"connection to the SMTP server lost: {exc}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"TLS failed: {exc}")
    return DeliveryError(f"{type(exc).__name__}: {exc}")


def _refusal(text: str, code: int | None) -> DeliveryError:
    permanent = code is not None and 500 <= code < 600
    kind = "permanent" if permanent else "temporary"
    return DeliveryError(f"{kind} refusal, {text}", code=code, permanent=permanent)


class SmtpSession:
    """One SMTP connection for a batch of messages, opened on the first send and again
    after any failure. `send` returns the server's reply to DATA (a 250) or raises
    DeliveryError."""

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("SMTP is not configured (ORDERFLOW_SMTP_HOST)")
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            timeout=s.smtp_timeout_seconds,
            use_tls=s.smtp_security == "tls",
            # False, not None: with "none" the client must not upgrade on its own either.
            start_tls=s.smtp_security == "starttls",
            cert_bundle=str(s.smtp_ca_file) if s.smtp_ca_file else None,
        )

    async def send(self, message: EmailMessage, recipient: str) -> str:
        try:
            # The client's timeout bounds each command; this bounds the whole message, so a
            # dispatcher knows how much of its lease one send can take.
            async with asyncio.timeout(self.settings.smtp_timeout_seconds):
                if self._client is None or not self._client.is_connected:
                    self._client = self._new_client()
                    await self._client.connect()
                _, reply = await self._client.send_message(
                    message, sender=envelope_sender(self.settings), recipients=[recipient]
                )
            return reply
        except Exception as exc:
            # A failed transaction may leave the connection in any state: start afresh.
            self._drop()
            raise describe_error(exc) from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def __aenter__(self) -> SmtpSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.aclose()
        else:
            self._drop()
