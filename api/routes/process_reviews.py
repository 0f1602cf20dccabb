"""The weekly process review packs, as the Schedule (or `orderflow process-review`) stored
them: `GET /process-reviews` (latest week first), `GET /process-reviews/{week}` (the pack as
JSON) and `GET /process-reviews/{week}/page` (the HTML page with its chart); any staff."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api.auth import Principal, require
from api.deps import pool_of
from api.pagination import Page, page_params, paged
from api.routes.departments import STAFF
from db.repositories import process_review
from policies.process_review import ProcessReviewPack

router = APIRouter(tags=["improving the process"])


class StoredPack(BaseModel):
    week_start: datetime
    week_end: datetime
    built_at: datetime


class StoredPackWithContent(StoredPack):
    pack: ProcessReviewPack


@router.get("/process-reviews", response_model=list[StoredPack])
async def list_packs(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require(*STAFF))],
    page: Annotated[Page, Depends(page_params)],
) -> list[StoredPack]:
    after = page.after("time")
    found = await process_review.packs(
        pool_of(request), before=after[0] if after else None, limit=page.limit + 1
    )
    rows = paged(found, page, request, response, lambda r: (r["week_start"],))
    return [StoredPack(**dict(r)) for r in rows]


async def _pack(request: Request, week: date) -> dict[str, object]:
    row = await process_review.pack_of(pool_of(request), week)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no process review pack for the week starting {week.isoformat()}; "
            f"build it: orderflow process-review --week {week.isoformat()}",
        )
    return dict(row)


@router.get("/process-reviews/{week}", response_model=StoredPackWithContent)
async def get_pack(
    week: date, request: Request, _: Annotated[Principal, Depends(require(*STAFF))]
) -> StoredPackWithContent:
    """The pack of the week starting on `week` (a day, YYYY-MM-DD)."""
    row = await _pack(request, week)
    return StoredPackWithContent.model_validate({k: v for k, v in row.items() if k != "html"})


@router.get("/process-reviews/{week}/page", response_class=HTMLResponse)
async def get_pack_page(
    week: date, request: Request, _: Annotated[Principal, Depends(require(*STAFF))]
) -> HTMLResponse:
    """The pack as an HTML page with its chart, to open or mail on."""
    row = await _pack(request, week)
    return HTMLResponse(str(row["html"]))
