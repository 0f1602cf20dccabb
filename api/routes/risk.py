"""The risk team's outcomes: a person's fraud report (or its correction) on an order, and
the calibrated versions of the risk threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from api.auth import Principal, require
from api.deps import pool_of
from db.repositories import orders, risk_labels, risk_models

router = APIRouter(tags=["risk"])


class FraudReportBody(BaseModel):
    label: Literal["fraud", "legit"] = "fraud"
    note: str | None = Field(default=None, max_length=2000)


class RiskOutcome(BaseModel):
    """The label the calibration reads for the order now (None: none yet)."""

    order_id: str
    label: str | None
    source: str | None
    actor: str | None


class RiskVersion(BaseModel):
    version: int
    threshold: float
    active: bool
    created_at: str
    activated_at: str | None
    metrics: dict[str, Any]


@router.post("/orders/{order_id}/fraud-report", response_model=RiskOutcome)
async def report_fraud(
    order_id: str,
    body: FraudReportBody,
    request: Request,
    who: Annotated[Principal, Depends(require("reviewer", "admin"))],
) -> RiskOutcome:
    """Record that the order was fraud (or, `label: legit`, that it was not), e.g. on a
    completed order a card holder disowned; the calibration learns from it. Reporting again
    replaces the earlier report."""
    pool = pool_of(request)
    if not await orders.order_exists(pool, order_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} not found")
    now = datetime.now(UTC)
    await risk_labels.record(
        pool,
        order_id,
        label=body.label,
        source="fraud_report",
        actor=who.actor,
        at=now,
        note=body.note,
    )
    settings = request.app.state.settings
    row = await risk_labels.label_of(
        pool, order_id, as_of=now, settle=timedelta(days=settings.risk_label_settle_days)
    )
    assert row is not None
    return RiskOutcome(
        order_id=order_id, label=row["label"], source=row["source"], actor=row["actor"]
    )


@router.get("/risk/versions", response_model=list[RiskVersion])
async def risk_versions(
    request: Request,
    _: Annotated[Principal, Depends(require("reviewer", "admin"))],
) -> list[RiskVersion]:
    """The latest calibrated versions, newest first, with the figures that decided them."""
    return [
        RiskVersion(
            version=r["version"],
            threshold=r["threshold"],
            active=r["active"],
            created_at=r["created_at"].isoformat(),
            activated_at=r["activated_at"].isoformat() if r["activated_at"] else None,
            metrics=r["metrics"],
        )
        for r in await risk_models.versions(pool_of(request))
    ]
