"""Process issues: any member of staff raises a difficulty met with a step (optionally on
one order); it waits in the owning department's queue, its lead is notified, and that
department (its operator role, or admin) takes it up and resolves it with a note.

`POST /process-issues`, `GET /process-issues` (filters, paged), `GET /process-issues/{id}`,
`POST /process-issues/{id}/start` and `POST /process-issues/{id}/resolve`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from api.auth import Principal, require
from api.deps import order_status_or_404, pool_of
from api.idempotency import first_answer, remember
from api.pagination import Page, page_params, paged
from api.routes.departments import STAFF
from db.repositories import notifications, process_issues
from orderflow.models import Step
from orderflow.process import DEPARTMENTS, STEPS, department

router = APIRouter(tags=["improving the process"])

Severity = Literal["low", "medium", "high"]
IssueStatus = Literal["open", "in_progress", "resolved"]


class IssueBody(BaseModel):
    step: int = Field(ge=1, le=len(Step), description="The step (1–8) the difficulty is with.")
    # Default: the department that does the step, when it has a queue.
    department: str | None = Field(default=None, min_length=1, max_length=50)
    order_id: str | None = Field(default=None, min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=4000)
    severity: Severity = "medium"


class ResolveBody(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="What was done about it.")


class ProcessIssue(BaseModel):
    ticket_id: str
    step: int
    step_name: str
    department: str
    order_id: str | None
    description: str
    severity: str
    status: str
    raised_by: str
    raised_at: datetime
    started_at: datetime | None = None
    started_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None


_STEP_NAMES = {int(s.step): s.name for s in STEPS}


def _issue(row: asyncpg.Record) -> ProcessIssue:
    return ProcessIssue(step_name=_STEP_NAMES[int(row["step"])], **dict(row))


def _owner(step: int, requested: str | None) -> str:
    if requested is not None:
        if department(requested) is None:
            known = ", ".join(d.code for d in DEPARTMENTS)
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"unknown department {requested!r}; known: {known}",
            )
        return requested
    does = next(s.does for s in STEPS if int(s.step) == step)
    if department(does) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"step {step} is done by {does}, which has no queue: name the department",
        )
    return does


async def _found(request: Request, ticket_id: str) -> asyncpg.Record:
    row = await process_issues.issue(pool_of(request), ticket_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"process issue {ticket_id} not found")
    return row


def _may_act(who: Principal, row: asyncpg.Record) -> None:
    """Only the owning department (its operator role) or admin takes up or resolves it."""
    owner = department(row["department"])
    allowed = {"admin"} | ({owner.role} if owner is not None and owner.role else set())
    if who.role not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"process issue {row['ticket_id']} belongs to {row['department']}; "
            f"allowed: {', '.join(sorted(allowed))}",
        )


@router.post(
    "/process-issues",
    status_code=status.HTTP_201_CREATED,
    response_model=ProcessIssue,
    responses={200: {"description": "the Idempotency-Key had an issue already"}},
)
async def raise_issue(
    body: IssueBody,
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(require(*STAFF))],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=100)
    ] = None,
) -> ProcessIssue:
    """Raise a difficulty with a step; the owning department's lead is notified once."""
    owner = _owner(body.step, body.department)
    if body.order_id is not None:
        await order_status_or_404(request, body.order_id)
    pool = pool_of(request)
    scope = f"process-issue.{who.role}"
    if idempotency_key is not None:
        first = await first_answer(pool, scope, idempotency_key, body.model_dump(mode="json"))
        if first is not None:
            response.status_code = status.HTTP_200_OK
            return ProcessIssue.model_validate(first.response)
    ticket_id = f"PI-{uuid.uuid4().hex[:8].upper()}"
    async with pool.acquire() as conn, conn.transaction():
        row = await process_issues.raise_issue(
            conn,
            ticket_id=ticket_id,
            step=body.step,
            department=owner,
            order_id=body.order_id,
            description=body.description,
            severity=body.severity,
            raised_by=who.actor,
        )
        await notifications.notify_department(
            conn,
            department=owner,
            key=f"process-issue:{ticket_id}:raised",
            order_id=body.order_id,
            kind="process_issue_raised",
            context={
                "ticket_id": ticket_id,
                "step": body.step,
                "step_name": _STEP_NAMES[body.step],
                "severity": body.severity,
                "description": body.description,
                "raised_by": who.actor,
            },
        )
    raised = _issue(row)
    if idempotency_key is not None:
        await remember(
            pool,
            scope,
            idempotency_key,
            status_code=status.HTTP_201_CREATED,
            response=raised.model_dump(mode="json"),
        )
    return raised


@router.get("/process-issues", response_model=list[ProcessIssue])
async def list_issues(
    request: Request,
    response: Response,
    _: Annotated[Principal, Depends(require(*STAFF))],
    page: Annotated[Page, Depends(page_params)],
    status_: Annotated[IssueStatus | None, Query(alias="status")] = None,
    department_: Annotated[str | None, Query(alias="department", max_length=50)] = None,
    step: Annotated[int | None, Query(ge=1, le=len(Step))] = None,
    severity: Severity | None = None,
    order_id: Annotated[str | None, Query(max_length=100)] = None,
    raised_from: Annotated[datetime | None, Query(alias="from")] = None,
    raised_to: Annotated[datetime | None, Query(alias="to")] = None,
) -> list[ProcessIssue]:
    """Process issues matching every filter given, oldest first."""
    for at, name in ((raised_from, "from"), (raised_to, "to")):
        if at is not None and at.tzinfo is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} needs a time zone (e.g. Z)"
            )
    found = await process_issues.list_issues(
        pool_of(request),
        status=status_,
        department=department_,
        step=step,
        severity=severity,
        order_id=order_id,
        raised_from=raised_from,
        raised_to=raised_to,
        after=page.after("time", "text"),
        limit=page.limit + 1,
    )
    rows = paged(found, page, request, response, lambda r: (r["raised_at"], r["ticket_id"]))
    return [_issue(r) for r in rows]


@router.get("/process-issues/{ticket_id}", response_model=ProcessIssue)
async def get_issue(
    ticket_id: str, request: Request, _: Annotated[Principal, Depends(require(*STAFF))]
) -> ProcessIssue:
    return _issue(await _found(request, ticket_id))


@router.post("/process-issues/{ticket_id}/start", response_model=ProcessIssue)
async def start_issue(
    ticket_id: str, request: Request, who: Annotated[Principal, Depends(require(*STAFF))]
) -> ProcessIssue:
    """The owning department takes the issue up: open → in_progress; 409 otherwise."""
    row = await _found(request, ticket_id)
    _may_act(who, row)
    started = await process_issues.start_issue(pool_of(request), ticket_id, by=who.actor)
    if started is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"process issue {ticket_id} is {row['status']}, not open"
        )
    return _issue(started)


@router.post("/process-issues/{ticket_id}/resolve", response_model=ProcessIssue)
async def resolve_issue(
    ticket_id: str,
    body: ResolveBody,
    request: Request,
    who: Annotated[Principal, Depends(require(*STAFF))],
) -> ProcessIssue:
    """The owning department resolves the issue with a note, once; 409 when resolved."""
    row = await _found(request, ticket_id)
    _may_act(who, row)
    resolved = await process_issues.resolve_issue(
        pool_of(request), ticket_id, by=who.actor, resolution=body.note
    )
    if resolved is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"process issue {ticket_id} was resolved already"
        )
    return _issue(resolved)
