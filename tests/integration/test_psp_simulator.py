"""The PSP simulator and the adapter in front of it, over real HTTP.

The simulator runs under uvicorn on a free local port and `PspClient` talks to it as it
would to a PSP; the simulator's webhook events go, over real HTTP too, to a small receiver
that verifies every signature. What the simulator counted is read from its own records.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from activities.psp_client import (
    PaymentNotFound,
    PaymentRefused,
    PaymentRejected,
    PspClient,
    PspUnavailable,
)
from orderflow.models.psp import PaymentFacts, PspWebhookEvent
from orderflow.settings import Settings
from orderflow.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from simulators.psp import PspSimulator, create_app

WAIT = 10.0
SECRET = "psp-test-webhook-secret"
API_KEY = "psp-test-api-key"


def authorised(amount: str = "100.00", **overrides: Any) -> PaymentFacts:
    return PaymentFacts.model_validate(
        {"amount": amount, "currency": "EUR", "status": "authorized", **overrides}
    )


def captured(amount: str = "100.00") -> PaymentFacts:
    return authorised(amount, status="captured")


@dataclass
class Receiver:
    """The shop's PSP webhook as far as the simulator can tell: checks and records."""

    fail_first: int = 0
    calls: int = 0
    forged: int = 0
    events: list[PspWebhookEvent] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/payments/events")
        async def events(request: Request) -> Response:
            self.calls += 1
            body = await request.body()
            valid = verify_signature(
                SECRET,
                body,
                request.headers.get(TIMESTAMP_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                now=int(time.time()),
            )
            if not valid:
                self.forged += 1
                return Response(status_code=401)
            if self.calls <= self.fail_first:
                return Response(status_code=503)
            self.events.append(PspWebhookEvent.model_validate_json(body))
            return Response(status_code=204)

        return app

    async def wait_for(self, kind: str, object_id: str) -> PspWebhookEvent:
        def match() -> PspWebhookEvent | None:
            return next(
                (e for e in self.events if e.type == kind and e.object_id == object_id), None
            )

        found = await eventually(match)
        assert found is not None
        return found


async def eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout}s: {check}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def serve_over_http(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "server failed to start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Psp:
    client: PspClient
    sim: PspSimulator
    receiver: Receiver
    url: str
    settings: Settings

    def raw(self, key: str | None = API_KEY) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=5.0)

    async def control(self, **changes: Any) -> None:
        async with self.raw() as http:
            response = await http.post("/control", json=changes)
            assert response.status_code == 200, response.text

    async def checkout(self, transaction_id: str, amount: str, **extra: Any) -> dict[str, Any]:
        """What a storefront does: authorise (or capture) at the PSP before the order."""
        async with self.raw() as http:
            response = await http.post(
                "/payments",
                json={"transaction_id": transaction_id, "amount": amount, "currency": "EUR"}
                | extra,
                headers={"Idempotency-Key": f"checkout-{transaction_id}"},
            )
            assert response.status_code == 201, response.text
            body: dict[str, Any] = response.json()
            return body


def psp_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "psp_api_key": API_KEY,
        "psp_webhook_secret": SECRET,
        "psp_http_timeout_seconds": 2.0,
        "psp_client_attempts": 4,
        "psp_client_backoff_seconds": 0.02,
        "psp_client_backoff_max_seconds": 0.1,
        "psp_simulator_mode": "normal",
        "psp_simulator_fail_times": 2,
        "psp_simulator_slow_seconds": 0.3,
        "psp_simulator_webhook_delay_seconds": 0.05,
        "psp_simulator_webhook_attempts": 5,
        "psp_simulator_webhook_backoff_seconds": 0.02,
        "psp_simulator_webhook_backoff_max_seconds": 0.1,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_psp(receiver: Receiver | None = None, **overrides: Any) -> AsyncIterator[Psp]:
    receiver = receiver or Receiver()
    async with serve_over_http(receiver.app()) as hook:
        settings = psp_settings(psp_webhook_url=f"{hook}/payments/events", **overrides)
        app = create_app(settings)
        async with serve_over_http(app) as url:
            settings = settings.model_copy(update={"psp_api_url": url})
            async with PspClient(settings) as client:
                yield Psp(client, app.state.simulator, receiver, url, settings)


@pytest.fixture
async def psp() -> AsyncIterator[Psp]:
    async with running_psp() as running:
        yield running


# --- captures ---


async def test_a_capture_in_full_and_one_in_parts(psp: Psp) -> None:
    full = await psp.client.capture("tx-full", Decimal("100.00"), authorised(), "cap-full")
    assert (full.status, full.amount) == ("succeeded", Decimal("100.00"))
    # Never seen before: adopted from the order's facts, then captured.
    assert psp.sim.payments["tx-full"].adopted
    assert (await psp.client.get("tx-full")).status == "captured"

    await psp.checkout("tx-parts", "100.00")
    first = await psp.client.capture("tx-parts", Decimal("30.00"), authorised(), "cap-p1")
    view = await psp.client.get("tx-parts")
    assert (view.status, view.captured_amount) == ("captured", Decimal("30.00"))
    second = await psp.client.capture("tx-parts", Decimal("70.00"), authorised(), "cap-p2")
    assert first.capture_id != second.capture_id
    view = await psp.client.get("tx-parts")
    assert view.captured_amount == view.authorized_amount == Decimal("100.00")
    assert not psp.sim.payments["tx-parts"].adopted

    with pytest.raises(PaymentRejected) as beyond:
        await psp.client.capture("tx-parts", Decimal("0.01"), authorised(), "cap-p3")
    assert (beyond.value.status_code, beyond.value.code) == (409, "insufficient_authorized")
    assert len(psp.sim.payments["tx-parts"].captures) == 2


async def test_the_same_key_captures_once(psp: Psp) -> None:
    first = await psp.client.capture("tx-once", Decimal("40.00"), authorised(), "cap-once")
    again = await psp.client.capture("tx-once", Decimal("40.00"), authorised(), "cap-once")
    assert again == first
    assert psp.sim.attempts["cap-once"] == 2
    assert [c.amount for c in psp.sim.payments["tx-once"].captures] == [Decimal("40.00")]

    with pytest.raises(PaymentRejected) as reused:
        await psp.client.capture("tx-once", Decimal("41.00"), authorised(), "cap-once")
    assert (reused.value.status_code, reused.value.code) == (422, "idempotency_conflict")
    assert len(psp.sim.payments["tx-once"].captures) == 1


async def test_concurrent_captures_never_spend_the_authorisation_twice(psp: Psp) -> None:
    await psp.checkout("tx-race", "100.00")
    results = await asyncio.gather(
        psp.client.capture("tx-race", Decimal("60.00"), authorised(), "race-a"),
        psp.client.capture("tx-race", Decimal("60.00"), authorised(), "race-b"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, PaymentRejected)]
    assert len(refused) == 1 and refused[0].code == "insufficient_authorized"
    assert psp.sim.payments["tx-race"].captured == Decimal("60.00")


async def test_retries_through_an_outage_end_in_exactly_one_capture(psp: Psp) -> None:
    await psp.control(mode="fail", fail_times=2)
    capture = await psp.client.capture("tx-fail", Decimal("25.00"), authorised(), "cap-fail")
    assert capture.status == "succeeded"
    # Two 503s, then the capture: three attempts under one key, one effect.
    assert psp.sim.attempts["cap-fail"] == 3
    assert len(psp.sim.payments["tx-fail"].captures) == 1


async def test_an_outage_longer_than_the_attempts_is_unavailable_and_captures_nothing(
    psp: Psp,
) -> None:
    await psp.control(mode="fail", fail_times=10)
    with pytest.raises(PspUnavailable) as down:
        await psp.client.capture("tx-down", Decimal("25.00"), authorised(), "cap-down")
    assert down.value.status_code == 503
    assert psp.sim.attempts["cap-down"] == psp.settings.psp_client_attempts
    assert "tx-down" not in psp.sim.payments


async def test_a_slow_answer_retried_after_a_timeout_still_captures_once() -> None:
    # The simulator captures at once and answers after 0.6 s; the client gives up at 0.3 s
    # and asks again under the same key.
    async with running_psp(psp_http_timeout_seconds=0.3, psp_simulator_slow_seconds=0.6) as psp:
        await psp.control(mode="slow")
        capture = await psp.client.capture("tx-slow", Decimal("10.00"), authorised(), "cap-slow")
        assert capture.status == "succeeded"
        assert psp.sim.attempts["cap-slow"] >= 2
        assert [c.capture_id for c in psp.sim.payments["tx-slow"].captures] == [capture.capture_id]


async def test_an_expired_authorisation_is_refused(psp: Psp) -> None:
    lapsed = authorised(authorization_expires_at=datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(PaymentRefused) as refused:
        await psp.client.capture("tx-old", Decimal("10.00"), lapsed, "cap-old")
    assert (refused.value.status_code, refused.value.code) == (402, "authorization_expired")
    assert psp.sim.payments["tx-old"].captures == []
    assert (await psp.client.get("tx-old")).status == "expired"

    # Mode `expired`: every authorisation has lapsed, however fresh.
    await psp.control(mode="expired")
    with pytest.raises(PaymentRefused) as also:
        await psp.client.capture("tx-new", Decimal("10.00"), authorised(), "cap-new")
    assert also.value.code == "authorization_expired"
    # Once refused, the same key may try again when the PSP says yes.
    await psp.control(mode="normal")
    capture = await psp.client.capture("tx-new", Decimal("10.00"), authorised(), "cap-new")
    assert capture.status == "succeeded"


async def test_a_refusing_psp_declines_captures_and_reauthorisations(psp: Psp) -> None:
    await psp.control(mode="refuse")
    with pytest.raises(PaymentRefused) as capture:
        await psp.client.capture("tx-no", Decimal("10.00"), authorised(), "cap-no")
    with pytest.raises(PaymentRefused) as renewal:
        await psp.client.reauthorize("tx-no", authorised(), "reauth-no")
    assert capture.value.code == renewal.value.code == "declined"
    assert psp.sim.payments["tx-no"].captures == []


async def test_an_asynchronous_capture_settles_by_signed_webhook(psp: Psp) -> None:
    await psp.control(mode="async")
    pending = await psp.client.capture("tx-async", Decimal("80.00"), authorised(), "cap-async")
    assert pending.status == "pending"
    event = await psp.receiver.wait_for("capture.succeeded", pending.capture_id)
    assert (event.transaction_id, event.amount) == ("tx-async", Decimal("80.00"))
    assert (await psp.client.get("tx-async")).captured_amount == Decimal("80.00")

    await psp.control(capture_outcome="failed")
    failing = await psp.client.capture("tx-async", Decimal("20.00"), authorised(), "cap-async-2")
    failed = await psp.receiver.wait_for("capture.failed", failing.capture_id)
    assert failed.reason == "card_declined"
    view = await psp.client.get("tx-async")
    assert view.captured_amount == Decimal("80.00")
    assert [c.status for c in view.captures] == ["succeeded", "failed"]
    assert psp.receiver.forged == 0


# --- voids and reauthorisations ---


async def test_a_void_releases_an_uncaptured_authorisation(psp: Psp) -> None:
    voided = await psp.client.void("tx-void", authorised(), "void-1")
    assert voided.status == "voided"
    with pytest.raises(PaymentRejected) as after:
        await psp.client.capture("tx-void", Decimal("1.00"), authorised(), "cap-void")
    assert (after.value.status_code, after.value.code) == (409, "payment_voided")
    assert psp.sim.payments["tx-void"].captures == []


async def test_a_captured_payment_cannot_be_voided(psp: Psp) -> None:
    await psp.client.capture("tx-cv", Decimal("5.00"), authorised(), "cap-cv")
    with pytest.raises(PaymentRejected) as refused:
        await psp.client.void("tx-cv", authorised(), "void-cv")
    assert (refused.value.status_code, refused.value.code) == (409, "already_captured")
    assert (await psp.client.get("tx-cv")).status == "captured"


async def test_a_reauthorisation_extends_the_expiry(psp: Psp) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    renewed = await psp.client.reauthorize(
        "tx-renew", authorised(authorization_expires_at=soon), "reauth-1", timedelta(days=2)
    )
    assert renewed.authorization_expires_at is not None
    assert renewed.authorization_expires_at > soon + timedelta(days=1)
    assert psp.sim.payments["tx-renew"].expires_at == renewed.authorization_expires_at


# --- refunds and disputes ---


async def test_a_partial_refund_then_the_rest_settle_by_signed_webhooks(psp: Psp) -> None:
    first = await psp.client.refund(
        "tx-ref", Decimal("20.00"), captured("50.00"), "ref-1", reason="item returned"
    )
    assert (first.status, first.amount) == ("pending", Decimal("20.00"))
    event = await psp.receiver.wait_for("refund.settled", first.refund_id)
    assert (event.transaction_id, event.amount) == ("tx-ref", Decimal("20.00"))
    view = await psp.client.get("tx-ref")
    assert (view.status, view.refunded_amount) == ("partially_refunded", Decimal("20.00"))

    rest = await psp.client.refund(
        "tx-ref", Decimal("30.00"), captured("50.00"), "ref-2", reason="order cancelled"
    )
    await psp.receiver.wait_for("refund.settled", rest.refund_id)
    view = await psp.client.get("tx-ref")
    assert (view.status, view.refunded_amount) == ("refunded", Decimal("50.00"))
    assert psp.receiver.forged == 0
    deliveries = psp.sim.payments["tx-ref"].deliveries
    assert [d.delivered for d in deliveries] == [True, True]


async def test_a_failed_refund_is_reported_and_can_be_tried_again(psp: Psp) -> None:
    await psp.control(refund_outcome="failed")
    refund = await psp.client.refund(
        "tx-rf", Decimal("15.00"), captured("15.00"), "ref-f", reason="damaged"
    )
    failed = await psp.receiver.wait_for("refund.failed", refund.refund_id)
    assert failed.reason == "account_closed"
    view = await psp.client.get("tx-rf")
    assert (view.status, view.refunded_amount) == ("captured", Decimal("0.00"))

    await psp.control(refund_outcome="settled")
    retry = await psp.client.refund(
        "tx-rf", Decimal("15.00"), captured("15.00"), "ref-f2", reason="damaged"
    )
    await psp.receiver.wait_for("refund.settled", retry.refund_id)
    assert (await psp.client.get("tx-rf")).status == "refunded"


async def test_a_refund_beyond_what_was_captured_is_refused(psp: Psp) -> None:
    await psp.client.refund("tx-rb", Decimal("30.00"), captured("40.00"), "rb-1", reason="r")
    # 30 of 40 is already on its way back (pending counts): 10.01 is too much.
    with pytest.raises(PaymentRejected) as beyond:
        await psp.client.refund("tx-rb", Decimal("10.01"), captured("40.00"), "rb-2", reason="r")
    assert (beyond.value.status_code, beyond.value.code) == (409, "insufficient_captured")
    with pytest.raises(PaymentRejected) as uncaptured:
        await psp.client.refund("tx-ra", Decimal("1.00"), authorised(), "ra-1", reason="r")
    assert uncaptured.value.code == "insufficient_captured"
    assert [r.amount for r in psp.sim.payments["tx-rb"].refunds] == [Decimal("30.00")]
    assert psp.sim.payments["tx-ra"].refunds == []


async def test_a_chargeback_is_posted_as_dispute_opened(psp: Psp) -> None:
    await psp.checkout("tx-dp", "70.00", capture=True)
    async with psp.raw() as http:
        response = await http.post("/payments/tx-dp/disputes", json={"reason": "not received"})
    assert response.status_code == 201, response.text
    dispute_id = response.json()["dispute_id"]
    event = await psp.receiver.wait_for("dispute.opened", dispute_id)
    assert (event.amount, event.reason) == (Decimal("70.00"), "not received")
    assert [d.dispute_id for d in (await psp.client.get("tx-dp")).disputes] == [dispute_id]


async def test_webhook_posts_are_retried_until_the_shop_accepts() -> None:
    async with running_psp(Receiver(fail_first=2)) as psp:
        refund = await psp.client.refund(
            "tx-wh", Decimal("5.00"), captured("5.00"), "ref-wh", reason="r"
        )
        await psp.receiver.wait_for("refund.settled", refund.refund_id)
        async with psp.raw() as http:
            deliveries = (await http.get("/payments/tx-wh/webhook-deliveries")).json()
        assert [(d["attempts"], d["delivered"]) for d in deliveries] == [(3, True)]
        assert psp.receiver.calls == 3


# --- access, adoption, listing ---


async def test_every_call_but_health_needs_the_api_key(psp: Psp) -> None:
    async with psp.raw(key=None) as anonymous, psp.raw(key="wrong") as wrong:
        for http in (anonymous, wrong):
            response = await http.get("/payments")
            assert response.status_code == 401
            assert response.json()["code"] == "unauthorized"
            capture = await http.post(
                "/payments/tx-x/captures",
                json={"amount": "1.00", "payment": authorised().model_dump(mode="json")},
                headers={"Idempotency-Key": "k"},
            )
            assert capture.status_code == 401
        assert (await anonymous.get("/healthz")).status_code == 200
    assert psp.sim.payments == {}

    stranger = PspClient(psp.settings.model_copy(update={"psp_api_key": "wrong"}))
    async with stranger:
        with pytest.raises(PaymentRejected) as refused:
            await stranger.get("tx-x")
    assert refused.value.status_code == 401


async def test_a_money_call_without_an_idempotency_key_is_refused(psp: Psp) -> None:
    async with psp.raw() as http:
        response = await http.post(
            "/payments/tx-k/captures",
            json={"amount": "1.00", "payment": authorised().model_dump(mode="json")},
        )
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert psp.sim.payments == {}


async def test_without_adoption_an_unknown_payment_is_not_found() -> None:
    async with running_psp(psp_simulator_adopt_unknown=False) as psp:
        with pytest.raises(PaymentNotFound) as missing:
            await psp.client.capture("tx-unknown", Decimal("1.00"), authorised(), "cap-u")
        assert missing.value.code == "payment_not_found"
        with pytest.raises(PaymentNotFound):
            await psp.client.get("tx-unknown")
        assert psp.sim.payments == {}
        # A payment made at checkout is known, facts or not.
        await psp.checkout("tx-known", "9.00")
        capture = await psp.client.capture("tx-known", Decimal("9.00"), authorised(), "cap-k")
        assert capture.status == "succeeded"


async def test_listing_follows_the_cursor_over_every_payment(psp: Psp) -> None:
    ids = [f"tx-list-{n}" for n in range(7)]
    for n, transaction_id in enumerate(ids):
        await psp.checkout(transaction_id, f"{n + 1}.00", capture=n % 2 == 0)
    async with psp.raw() as http:
        first = (await http.get("/payments", params={"limit": 3})).json()
    assert len(first["payments"]) == 3 and first["next_cursor"]

    listed = await psp.client.list_payments(page_size=3)
    assert [p.transaction_id for p in listed] == ids
    assert [p.status for p in listed][:2] == ["captured", "authorized"]


async def test_a_psp_that_does_not_answer_is_unavailable_after_bounded_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = psp_settings(psp_api_url=closed, psp_client_attempts=3)
    started = time.monotonic()
    async with PspClient(settings) as client:
        with pytest.raises(PspUnavailable) as down:
            await client.capture("tx-c", Decimal("1.00"), authorised(), "cap-c")
    assert "3 times" in down.value.detail
    assert time.monotonic() - started < 5
