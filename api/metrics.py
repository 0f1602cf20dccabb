"""Prometheus metrics of the HTTP API, served at `GET /metrics`.

Requests are counted by method, route template (never the raw path, so an order id does
not become a label) and status, with a latency histogram per route; a placed order (a 202
of `POST /orders`) counts in `orderflow_orders_placed_total`. Each app has its own registry,
so several apps in one process (the tests) do not collide.

In development `/metrics` is open, as the embedded stack's other pages are. In production it
takes the admin token or `ORDERFLOW_METRICS_TOKEN`, which reads nothing else (`Authorization:
Bearer`, Prometheus' `authorization` scrape setting): request counts and latencies tell an
outsider more about the shop than it should.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import require
from orderflow.settings import Settings

# Seconds; the API answers most requests in milliseconds, a placement waits on Temporal.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "unmatched"


class ApiMetrics:
    """The API's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "orderflow_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "orderflow_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.orders_placed = Counter(
            "orderflow_orders_placed",
            "Orders accepted by POST /orders (202; a repeated order id is not counted again).",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        self.requests.labels(method, route, str(code)).inc()
        self.latency.labels(method, route).observe(seconds)
        if method == "POST" and route == "/orders" and code == 202:
            self.orders_placed.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so event streams pass through unbuffered."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def send_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router records the matched route in the scope it was given.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], route, code, time.perf_counter() - started)


def _metrics_reader(request: Request, settings: Settings) -> bool:
    """The request carries the token that reads metrics only (Prometheus')."""
    if not settings.metrics_token:
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), settings.metrics_token.encode()
    )


def install_metrics(app: FastAPI, settings: Settings) -> ApiMetrics:
    """Count every request and serve `GET /metrics` (admin token in production)."""
    metrics = ApiMetrics()
    app.state.metrics = metrics
    admin = require("admin")

    @app.get("/metrics", include_in_schema=False)
    async def serve_metrics(request: Request) -> Response:
        if settings.mode == "production" and not _metrics_reader(request, settings):
            admin(request)  # 401 / 403 as on every admin route
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics


def sample(text: str, name: str, **labels: Any) -> float | None:
    """The value of one sample in an exposition text (for tests and checks), or None."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == str(v) for k, v in labels.items()):
                return float(s.value)
    return None
