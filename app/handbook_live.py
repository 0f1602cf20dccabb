"""Each step's life for the live handbook (`orderflow docs --live`): its open process issues
and its last process change, read from PostgreSQL."""

from __future__ import annotations

import asyncpg

from app.handbook import LastChange, StepLife
from db.repositories import process_changes, process_issues


async def read_step_life(conn: asyncpg.Connection | asyncpg.Pool) -> StepLife:
    changes = await process_changes.last_changes_by_step(conn)
    return StepLife(
        open_issues=await process_issues.counts_by_step(conn),
        last_changes={
            step: LastChange(
                change_id=int(row["id"]),
                setting=str(row["setting"]),
                changed_at=row["changed_at"],
                changed_by=str(row["changed_by"]),
            )
            for step, row in changes.items()
        },
    )
