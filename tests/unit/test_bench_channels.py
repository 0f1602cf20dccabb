"""The channels benchmark's arithmetic and its webhook receiver, without any server: the
benchmark itself is run by hand (`python -m bench.channels`), never in the suite."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.channels import Lag, healthy_lags
from bench.webhook_receiver import Subscriber
from orderflow.webhooks import event_body, signed_headers


def test_lag_percentiles_and_an_empty_set() -> None:
    lag = Lag.of([float(ms) for ms in range(1, 101)])
    assert (lag.n, lag.p50_ms, lag.p95_ms, lag.max_ms) == (100, 50.5, 95.0, 100.0)
    assert Lag.of([]).model_dump() == {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    assert Lag.of([]).text() == "— / —"


def test_healthy_lags_count_each_event_once_and_only_the_healthy_subscriber() -> None:
    def record(subscriber: str, event_id: str, order_id: str, received_at: float) -> dict[str, Any]:
        return {
            "subscriber": subscriber,
            "event_id": event_id,
            "order_id": order_id,
            "occurred_at": "2026-11-29T10:00:00+00:00",
            "received_at": received_at,
            "valid": event_id != "3",
        }

    at = 1_795_946_400.0  # 2026-11-29T10:00:00Z
    records = [
        record("healthy", "1", "A", at + 0.25),
        record("healthy", "1", "A", at + 9.0),  # a redelivery: the first arrival counts
        record("healthy", "2", "B", at + 0.5),
        record("healthy", "3", "A", at + 1.0),
        record("failing", "4", "A", at + 0.1),
        record("healthy", "5", "other-phase", at + 0.1),
    ]
    lags, distinct, invalid = healthy_lags(records, {"A", "B"})
    assert sorted(lags) == [250.0, 500.0, 1000.0]
    assert (distinct, invalid) == (3, 1)


async def test_receiver_logs_what_arrived_verifies_it_and_answers_its_status() -> None:
    secret = "bench-secret-1234567890"
    body = event_body(
        event_id=7,
        event_type="order_received",
        order_id="A-1",
        status="RECEIVED",
        occurred_at=datetime.now(UTC),
        data={},
    )
    headers = signed_headers(secret, 7, body, int(time.time()))
    out = io.StringIO()
    for name, status in (("healthy", 204), ("failing", 500)):
        transport = httpx.ASGITransport(app=Subscriber(name, status, secret, out))
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            assert (await http.post("/", content=body, headers=headers)).status_code == status
            forged = {**headers, "Orderflow-Signature": "v1=" + "0" * 64}
            assert (await http.post("/", content=body, headers=forged)).status_code == status
    logged = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["subscriber"], r["valid"]) for r in logged] == [
        ("healthy", True),
        ("healthy", False),
        ("failing", True),
        ("failing", False),
    ]
    assert {(r["event_id"], r["order_id"], r["type"]) for r in logged} == {
        ("7", "A-1", "order_received")
    }
