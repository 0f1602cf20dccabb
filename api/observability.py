"""Each request's place in logs and traces: the order it is about goes on every log line
written while it runs, and with tracing on it is a server span (continuing the caller's
trace from `traceparent`) that the order's workflow and activities join."""

from __future__ import annotations

import re

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderflow.logs import current_order_id
from orderflow.settings import Settings
from orderflow.tracing import install_tracing, tracing_on

# The routes about one order carry its id second in the path (`/orders/{order_id}/…`,
# `/reviews/{order_id}`, `/payments/{order_id}/…`); `/orders/stuck` is about none.
_ORDER_PATH = re.compile(
    r"^/(?:orders|reviews|payments|logistics|warehouse/tasks)/(?P<order_id>[^/]+)"
)
_NOT_ORDER_IDS = {"stuck"}


def order_id_in(path: str) -> str | None:
    match = _ORDER_PATH.match(path)
    if match is None or match["order_id"] in _NOT_ORDER_IDS:
        return None
    return match["order_id"]


class RequestContext:
    """Pure ASGI, so event streams pass through unbuffered."""

    def __init__(self, app: ASGIApp, traced: bool) -> None:
        self.app = app
        self.tracer = trace.get_tracer("orderflow.api") if traced else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = current_order_id.set(order_id_in(scope["path"]))
        try:
            if self.tracer is None:
                await self.app(scope, receive, send)
            else:
                await self._traced(self.tracer, scope, receive, send)
        finally:
            current_order_id.reset(token)

    async def _traced(
        self, tracer: trace.Tracer, scope: Scope, receive: Receive, send: Send
    ) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        with tracer.start_as_current_span(
            f"{method} {scope['path']}",
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:
            order_id = current_order_id.get()
            if order_id:
                span.set_attribute("orderflow.order_id", order_id)

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    code = int(message["status"])
                    span.set_attribute("http.response.status_code", code)
                    if code >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_status)
            # The route template names the span once the router has matched it, so spans
            # group by route and not by order id.
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)


def install_request_context(app: FastAPI, settings: Settings) -> None:
    install_tracing(settings)
    app.add_middleware(RequestContext, traced=tracing_on(settings))
