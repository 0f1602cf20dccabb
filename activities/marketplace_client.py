"""The marketplace adapter: the generic marketplace API (orderflow/models/marketplace.py)
over httpx, for the marketplace named by its code in the settings.

A marketplace that cannot be reached, answers 5xx, 408 or 429 raises `MarketplaceUnavailable`:
the activity fails and Temporal retries it with backoff, so nothing is lost while it is down.
Any other refusal (a wrong key, an unknown order) cannot pass by retrying and raises a
non-retryable `ApplicationError` naming the answer.
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from orderflow.models.marketplace import (
    FeedPage,
    MarketplaceCancellation,
    MarketplaceConfig,
    MarketplacePage,
    MarketplaceShipment,
)
from orderflow.settings import Settings

MARKETPLACE_REFUSED = "MarketplaceRefused"


class MarketplaceUnavailable(Exception):
    """The marketplace could not be asked, or answered that it cannot answer now."""


class MarketplaceClient:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http

    def config(self, code: str) -> MarketplaceConfig:
        for marketplace in self._settings.marketplaces:
            if marketplace.code == code:
                return marketplace
        raise ApplicationError(
            f"marketplace {code!r} is not configured (ORDERFLOW_MARKETPLACES)",
            type=MARKETPLACE_REFUSED,
            non_retryable=True,
        )

    async def _call(
        self,
        code: str,
        method: str,
        path: str,
        *,
        key: str | None = None,
        document: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        market = self.config(code)
        headers = {"Authorization": f"Bearer {market.api_key}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            response = await self._http.request(
                method,
                market.base_url.rstrip("/") + path,
                headers=headers,
                json=document,
                params=params,
                timeout=self._settings.marketplace_http_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise MarketplaceUnavailable(f"{code}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise MarketplaceUnavailable(f"{code} answered {response.status_code}")
        if response.status_code >= 400:
            raise ApplicationError(
                f"{code} refused {method} {path}: {response.status_code} {response.text[:200]}",
                type=MARKETPLACE_REFUSED,
                non_retryable=True,
            )
        return response

    async def orders_after(self, code: str, cursor: str | None, limit: int) -> FeedPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["after"] = cursor
        response = await self._call(code, "GET", "/orders", params=params)
        page = MarketplacePage.model_validate(response.json())
        return FeedPage(orders=page.orders, next_cursor=page.next_cursor)

    async def acknowledge(self, code: str, external_order_id: str) -> None:
        await self._call(
            code,
            "POST",
            f"/orders/{external_order_id}/acknowledge",
            key=f"ack-{code}-{external_order_id}",
        )

    async def push_shipment(
        self, code: str, external_order_id: str, shipment: MarketplaceShipment, key: str
    ) -> None:
        await self._call(
            code,
            "POST",
            f"/orders/{external_order_id}/shipments",
            key=key,
            document=shipment.model_dump(mode="json"),
        )

    async def push_cancellation(
        self, code: str, external_order_id: str, cancellation: MarketplaceCancellation, key: str
    ) -> None:
        await self._call(
            code,
            "POST",
            f"/orders/{external_order_id}/cancellation",
            key=key,
            document=cancellation.model_dump(mode="json"),
        )
