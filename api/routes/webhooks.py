"""Admin endpoints for outbound webhooks: subscriptions and their deliveries.

- `POST /webhooks/subscriptions` `{"url", "secret", "events": ["*"] | [types]}` -> `{"id"}`;
  without a secret one is generated and answered once (`secret`); it is never shown again;
- `GET /webhooks/subscriptions`: live subscriptions, the secret masked, with deliveries per
  status;
- `DELETE /webhooks/subscriptions/{id}`: nothing more is queued or sent for it;
- `GET /webhooks/subscriptions/{id}/deliveries?status=&order_id=&limit=&cursor=`: newest
  first;
- `GET /webhooks/deliveries/{id}`: one delivery with every attempt (status code, latency,
  error);
- `POST /webhooks/deliveries/{id}/retry`: send a dead-lettered delivery again (409 for any
  other).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi import status as http_status
from pydantic import AnyHttpUrl, BaseModel, Field, StringConstraints, UrlConstraints

from api.auth import Principal, require
from api.deps import pool_of, settings_of
from api.pagination import NEXT_CURSOR_HEADER, Page, encode_cursor
from db.repositories import webhooks as repo
from orderflow.webhooks import ALL_EVENTS, WebhookKeyMissing, seal_secret, secret_hint, secret_key

router = APIRouter(tags=["webhooks"])

DeliveryStatus = Literal["pending", "sending", "delivered", "dead"]
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
EventType = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^(\*|[A-Za-z0-9_.:-]+)$")
]
WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)]


class SubscriptionIn(BaseModel):
    url: WebhookUrl
    # Omitted: the API generates one and answers it once.
    secret: Annotated[str | None, Field(min_length=8, max_length=200)] = None
    events: Annotated[list[EventType], Field(min_length=1, max_length=100)] = [ALL_EVENTS]


class SubscriptionCreated(BaseModel):
    id: int
    # Only when the API generated it: the one time it is shown.
    secret: str | None = None


class SubscriptionDeleted(BaseModel):
    id: int
    deleted: bool = True


class Subscription(BaseModel):
    id: int
    url: str
    events: list[str]
    secret: str = Field(description="masked: never the secret itself")
    created_at: datetime
    deliveries: dict[str, int]


class Delivery(BaseModel):
    id: int
    subscription_id: int
    event_id: int
    order_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class Attempt(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryDetail(Delivery):
    attempt_log: list[Attempt]


def _delivery(record: Any) -> dict[str, Any]:
    data = {k: record[k] for k in Delivery.model_fields}
    if record["status"] not in ("pending", "sending"):
        data["next_attempt_at"] = None
    return data


def _subscription(record: Any) -> Subscription:
    counts = record["counts"] or {}
    return Subscription(
        id=record["id"],
        url=record["url"],
        events=list(record["events"]),
        secret=record["secret_hint"],
        created_at=record["created_at"],
        deliveries={s: int(counts.get(s, 0)) for s in repo.STATUSES},
    )


@router.post(
    "/webhooks/subscriptions",
    response_model=SubscriptionCreated,
    response_model_exclude_none=True,
    status_code=http_status.HTTP_201_CREATED,
)
async def create_subscription(
    body: SubscriptionIn, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> SubscriptionCreated:
    """Subscribe a URL to order events (`["*"]`: all of them); every event from now on is
    POSTed to it, signed with the secret."""
    try:
        key = secret_key(settings_of(request))
    except WebhookKeyMissing as exc:
        raise HTTPException(http_status.HTTP_409_CONFLICT, str(exc)) from exc
    generated = None if body.secret is not None else secrets.token_urlsafe(32)
    secret = body.secret if body.secret is not None else generated
    assert secret is not None
    events = [ALL_EVENTS] if ALL_EVENTS in body.events else sorted(set(body.events))
    record = await repo.create_subscription(
        pool_of(request),
        url=str(body.url),
        secret_sealed=seal_secret(key, secret),
        secret_hint=secret_hint(secret),
        events=events,
    )
    return SubscriptionCreated(id=record["id"], secret=generated)


@router.get("/webhooks/subscriptions", response_model=list[Subscription])
async def list_subscriptions(
    request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> list[Subscription]:
    """Live subscriptions with their deliveries per status; secrets masked."""
    return [_subscription(r) for r in await repo.list_subscriptions(pool_of(request))]


@router.delete("/webhooks/subscriptions/{subscription_id}", response_model=SubscriptionDeleted)
async def delete_subscription(
    subscription_id: Id, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> SubscriptionDeleted:
    """Stop a subscription: nothing more is queued or sent; its deliveries stay readable."""
    if not await repo.delete_subscription(pool_of(request), subscription_id):
        raise HTTPException(
            http_status.HTTP_404_NOT_FOUND, f"no webhook subscription {subscription_id}"
        )
    return SubscriptionDeleted(id=subscription_id)


@router.get("/webhooks/subscriptions/{subscription_id}/deliveries", response_model=list[Delivery])
async def list_deliveries(
    subscription_id: Id,
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require("admin"))],
    status: DeliveryStatus | None = None,
    order_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="The previous page's X-Next-Cursor.")
    ] = None,
) -> list[Delivery]:
    """A subscription's deliveries (deleted subscriptions' too), newest first, a page at a
    time (the next page's cursor in `X-Next-Cursor`)."""
    pool = pool_of(request)
    if await repo.get_subscription(pool, subscription_id) is None:
        raise HTTPException(
            http_status.HTTP_404_NOT_FOUND, f"no webhook subscription {subscription_id}"
        )
    before = Page(limit, cursor).after("int")
    rows = await repo.list_deliveries(
        pool,
        subscription_id,
        status=status,
        order_id=order_id,
        limit=limit + 1,
        before_id=before[0] if before else None,
    )
    if len(rows) > limit:
        rows = rows[:limit]
        response.headers[NEXT_CURSOR_HEADER] = encode_cursor([rows[-1]["id"]])
    return [Delivery(**_delivery(r)) for r in rows]


@router.get("/webhooks/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(
    delivery_id: Id, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> DeliveryDetail:
    """One delivery with every attempt: when, the receiver's status code, latency, error."""
    pool = pool_of(request)
    record = await repo.get_delivery(pool, delivery_id)
    if record is None:
        raise HTTPException(http_status.HTTP_404_NOT_FOUND, f"no webhook delivery {delivery_id}")
    attempts = [Attempt(**dict(a)) for a in await repo.attempts_of(pool, delivery_id)]
    return DeliveryDetail(**_delivery(record), attempt_log=attempts)


@router.post("/webhooks/deliveries/{delivery_id}/retry", response_model=Delivery)
async def retry_delivery(
    delivery_id: Id, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> Delivery:
    """Send a dead-lettered delivery again: pending at once, its max age counted afresh."""
    pool = pool_of(request)
    record = await repo.retry(pool, delivery_id)
    if record is not None:
        return Delivery(**_delivery(record))
    current = await repo.get_delivery(pool, delivery_id)
    if current is None:
        raise HTTPException(http_status.HTTP_404_NOT_FOUND, f"no webhook delivery {delivery_id}")
    if current["status"] == "dead":
        raise HTTPException(
            http_status.HTTP_409_CONFLICT,
            f"webhook delivery {delivery_id} belongs to a deleted subscription",
        )
    raise HTTPException(
        http_status.HTTP_409_CONFLICT,
        f"webhook delivery {delivery_id} is {current['status']}, not dead: only a "
        "dead-lettered delivery is retried by hand",
    )
