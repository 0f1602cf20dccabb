"""The HTTP API: storefronts, operators and carriers, on FastAPI.

`create_app` takes ready resources (for tests and the embedded stack) or opens its own
from settings in the lifespan (for `orderflow api`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI

from api.errors import BodySizeLimit, install_error_handlers
from api.metrics import install_metrics
from api.observability import install_request_context
from api.openapi import install_openapi
from api.routes import (
    carriers,
    channels,
    codec,
    customer_page,
    departments,
    feedback,
    health,
    inventory,
    logistics,
    mail,
    orders,
    payments,
    process_changes,
    process_issues,
    process_reviews,
    releases,
    returns,
    reviews,
    risk,
    stream,
    ui,
    warehouse,
    webhooks,
)
from db.pool import create_pool
from db.repositories.process_changes import record_configuration_at_start
from orderflow.settings import Settings
from orderflow.temporal_client import connect_temporal
from starter.order_client import OrderClient


def create_app(
    settings: Settings,
    *,
    pool: asyncpg.Pool | None = None,
    storefront: OrderClient | None = None,
    database_url: str | None = None,
) -> FastAPI:
    # Refused here, not in the lifespan: a production API with development secrets is
    # never built, whoever serves it.
    settings.require_safe_for_production()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_pool = None
        if pool is None:
            url = database_url or settings.database_url
            if not url:
                raise RuntimeError("DATABASE_URL is not set")
            own_pool = await create_pool(
                url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
        app.state.pool = pool or own_pool
        # The API starts orders with its order policy: a start with other process settings
        # than the last one's is a dated process change.
        await record_configuration_at_start(app.state.pool, settings, by="api")
        if storefront is None:
            client = await connect_temporal(settings)
            app.state.storefront = OrderClient(
                client, task_queue=settings.task_queue, policy=settings.order_policy
            )
        else:
            app.state.storefront = storefront
        try:
            yield
        finally:
            if own_pool is not None:
                await own_pool.close()

    app = FastAPI(
        title="orderflow",
        version="0.1.0",
        description="Order processing: every order a durable Temporal workflow.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(departments.router)  # first: /orders/stuck is no order id
    app.include_router(stream.router)
    app.include_router(ui.router)
    for module in (orders, reviews, warehouse, inventory, releases, carriers, health):
        app.include_router(module.router)
    # Risk outcomes (fraud reports) and the calibrated versions of the threshold.
    app.include_router(risk.router)
    # The customer's feedback and review; logistics' lost parcels and rebooking.
    for module in (feedback, logistics):
        app.include_router(module.router)
    # Returns: the customer's request, the warehouse's inspection.
    app.include_router(returns.router)
    # The customer's own order page (static; it reads the order with its token).
    app.include_router(customer_page.router)
    # The mail outbox and the embedded mailbox (admin).
    app.include_router(mail.router)
    # The PSP's webhook and finance's view of each order's payment.
    app.include_router(payments.router)
    # The Web UI's codec server: operators read encrypted histories.
    app.include_router(codec.router)
    # Marketplaces: their feeds, and the orders that could not be mapped.
    app.include_router(channels.router)
    # Improving the process: staff's difficulties with a step.
    app.include_router(process_issues.router)
    app.include_router(process_changes.router)
    app.include_router(process_reviews.router)
    # Outbound webhooks: the shop's other systems subscribe to order events (admin).
    app.include_router(webhooks.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    # The order each request is about on its log lines, and its span when tracing is on.
    install_request_context(app, settings)
    # Added last, so it is outermost: refusals of the body limit are counted too.
    install_metrics(app, settings)
    return app
