"""Input and result of the weekly process review (workflows/process_review.py), and which
week a run covers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict

WEEK = timedelta(days=7)


class ProcessReviewRequest(BaseModel):
    """Empty: the last whole week (Monday 00:00 UTC to Monday 00:00 UTC) before the run;
    else the seven days from `week_start` (a day, from 00:00 UTC)."""

    model_config = ConfigDict(frozen=True)

    week_start: date | None = None


class ReviewWeek(BaseModel):
    model_config = ConfigDict(frozen=True)

    week_start: datetime
    week_end: datetime


class ProcessReviewResult(BaseModel):
    week_start: datetime
    week_end: datetime
    steps: int
    issues: int
    changes: int
    # Department leads the pack was mailed to.
    notified: int


def review_week(now: datetime, request: ProcessReviewRequest) -> ReviewWeek:
    if request.week_start is not None:
        start = datetime.combine(request.week_start, time(0), tzinfo=UTC)
    else:
        today = now.astimezone(UTC).date()
        this_monday = today - timedelta(days=today.weekday())
        start = datetime.combine(this_monday, time(0), tzinfo=UTC) - WEEK
    return ReviewWeek(week_start=start, week_end=start + WEEK)
