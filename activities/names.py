"""Moved: activity names live in `orderflow.models.activity_names`."""

from orderflow.models.activity_names import ActivityName

__all__ = ["ActivityName"]
