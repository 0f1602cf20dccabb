"""Dated process changes: what changed (old → new), who, when and why, and the steps it
touches. Starts record the differences of their settings themselves
(db/repositories/process_changes.py); admin records any other change here, with its reason.

`GET /process-changes` (any staff; filters, paged), `GET /process-changes/{id}`,
`POST /process-changes` (admin).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field, JsonValue

from api.auth import Principal, require
from api.deps import pool_of
from api.pagination import Page, page_params, paged
from api.routes.departments import STAFF
from db.repositories import process_changes
from orderflow.models import Step
from policies.process_changes import steps_of

router = APIRouter(tags=["improving the process"])


class ChangeBody(BaseModel):
    # A setting's dotted name (e.g. `order_policy.review_sla`), or a name for a change made
    # outside the settings (e.g. `warehouse.packing_bench`).
    setting: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    old_value: JsonValue = None
    new_value: JsonValue = None
    reason: str = Field(min_length=1, max_length=4000)
    # Default: the steps the setting touches; required for a name outside the settings.
    steps: list[int] | None = Field(default=None, min_length=1, max_length=len(Step))
    # When it took effect, if earlier than now (a change made before it was recorded).
    changed_at: datetime | None = None


class ProcessChange(BaseModel):
    id: int
    setting: str
    steps: list[int]
    old_value: Any
    new_value: Any
    changed_by: str
    changed_at: datetime
    reason: str
    source: str
    recorded_at: datetime


def _change(row: asyncpg.Record) -> ProcessChange:
    return ProcessChange(**{**dict(row), "steps": list(row["steps"])})


def _steps(body: ChangeBody) -> list[int]:
    steps = body.steps if body.steps is not None else list(steps_of(body.setting))
    if not steps:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{body.setting!r} is not a process setting: name the steps it touches",
        )
    wrong = [s for s in steps if not 1 <= s <= len(Step)]
    if wrong:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"steps are 1 to {len(Step)}, not {wrong}"
        )
    return sorted(set(steps))


def _aware(at: datetime | None, name: str) -> None:
    if at is not None and at.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} needs a time zone (e.g. Z)"
        )


@router.post("/process-changes", status_code=status.HTTP_201_CREATED, response_model=ProcessChange)
async def record_change(
    body: ChangeBody, request: Request, who: Annotated[Principal, Depends(require("admin"))]
) -> ProcessChange:
    """Record a change to the process with its reason (and when it took effect)."""
    _aware(body.changed_at, "changed_at")
    steps = _steps(body)
    pool = pool_of(request)
    if body.changed_at is not None and body.changed_at > await pool.fetchval("SELECT now()"):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "changed_at is in the future: record a change once it is made",
        )
    row = await process_changes.record_change(
        pool,
        setting=body.setting,
        steps=steps,
        old=body.old_value,
        new=body.new_value,
        by=who.actor,
        reason=body.reason,
        source="operator",
        changed_at=body.changed_at,
    )
    return _change(row)


@router.get("/process-changes", response_model=list[ProcessChange])
async def list_changes(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require(*STAFF))],
    page: Annotated[Page, Depends(page_params)],
    step: Annotated[int | None, Query(ge=1, le=len(Step))] = None,
    setting: Annotated[
        str | None, Query(max_length=200, description="A setting's name or dotted prefix.")
    ] = None,
    source: Literal["configuration", "operator", "calibration"] | None = None,
    changed_from: Annotated[datetime | None, Query(alias="from")] = None,
    changed_to: Annotated[datetime | None, Query(alias="to")] = None,
) -> list[ProcessChange]:
    """Process changes matching every filter given, oldest first."""
    _aware(changed_from, "from")
    _aware(changed_to, "to")
    found = await process_changes.list_changes(
        pool_of(request),
        step=step,
        setting=setting,
        source=source,
        changed_from=changed_from,
        changed_to=changed_to,
        after=page.after("time", "int"),
        limit=page.limit + 1,
    )
    rows = paged(found, page, request, response, lambda r: (r["changed_at"], r["id"]))
    return [_change(r) for r in rows]


@router.get("/process-changes/{change_id}", response_model=ProcessChange)
async def get_change(
    change_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    _: Annotated[Principal, Depends(require(*STAFF))],
) -> ProcessChange:
    row = await process_changes.change(pool_of(request), change_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"process change {change_id} not found")
    return _change(row)
