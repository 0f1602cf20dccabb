"""What identifies a notice once it is a message: its `Message-ID`, derived from the
notification key so that every retry of one notice carries the same id (receivers can
drop a duplicate), and the outbox, the SMTP sender and the API agree on it."""

from __future__ import annotations

import hashlib


def message_id(notification_key: str) -> str:
    """`<first 32 hex digits of sha256(key)@orderflow>`: stable across retries."""
    digest = hashlib.sha256(notification_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@orderflow>"
