"""Webhook subscribers for `bench.channels`, in a process of their own: one healthy
subscriber that answers 204, and one failing subscriber that answers 500, each on its own
port. Every request received is appended to a JSON-lines file (which subscriber, the event's
id, order and `occurred_at`, when it arrived, whether its signature verified).

    python -m bench.webhook_receiver --healthy-port P --failing-port Q --secret S --out F
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import IO, Any

import uvicorn

from orderflow.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Subscriber:
    """A raw ASGI app, so the receiver costs as little CPU per request as it can."""

    def __init__(self, name: str, status: int, secret: str, out: IO[str]) -> None:
        self.name = name
        self.status = status
        self.secret = secret
        self.out = out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        # The moment the whole request is in: what "received by the subscriber" means.
        received_at = time.time()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        valid = verify(
            self.secret,
            body,
            headers.get(TIMESTAMP_HEADER.lower()),
            headers.get(SIGNATURE_HEADER.lower()),
            now=int(received_at),
        )
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        record = {
            "subscriber": self.name,
            "event_id": headers.get(EVENT_ID_HEADER.lower()),
            "type": event.get("type"),
            "order_id": event.get("order_id"),
            "occurred_at": event.get("occurred_at"),
            "received_at": received_at,
            "valid": valid,
            "answered": self.status,
        }
        self.out.write(json.dumps(record) + "\n")
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def serve(healthy_port: int, failing_port: int, secret: str, out: IO[str]) -> None:
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                Subscriber(name, status, secret, out),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                # Longer than the dispatcher keeps idle connections: no reset mid-reuse.
                timeout_keep_alive=30,
            )
        )
        for name, status, port in (
            ("healthy", 204, healthy_port),
            ("failing", 500, failing_port),
        )
    ]
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--healthy-port", type=int, required=True)
    parser.add_argument("--failing-port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    # Line-buffered: the benchmark reads the file while this process still runs.
    with open(args.out, "a", buffering=1, encoding="utf-8") as out:
        asyncio.run(serve(args.healthy_port, args.failing_port, args.secret, out))


if __name__ == "__main__":
    main()
