"""How every process logs: text for a terminal, or JSON lines for a log collector
(`ORDERFLOW_LOG_FORMAT=json`), each line carrying the order it is about when there is one."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import temporalio.activity
import temporalio.workflow

from orderflow.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Workflow ids of orders are `order-<order id>`; other workflows' ids are no order's.
ORDER_WORKFLOW_PREFIX = "order-"

# The order a request or task is about, set where it is known (the API's order routes), so
# that every line logged meanwhile names it without each call passing it.
current_order_id: ContextVar[str | None] = ContextVar("current_order_id", default=None)


def order_id_of(record: logging.LogRecord) -> str | None:
    """The order a log record is about: named by the caller (`extra={"order_id": …}`), by
    Temporal's workflow or activity logger (the workflow id), or by the current request."""
    named = getattr(record, "order_id", None)
    if named:
        return str(named)
    for extra in ("temporal_workflow", "temporal_activity"):
        details = getattr(record, extra, None)
        if isinstance(details, dict):
            workflow_id = str(details.get("workflow_id", ""))
            if workflow_id.startswith(ORDER_WORKFLOW_PREFIX):
                return workflow_id.removeprefix(ORDER_WORKFLOW_PREFIX)
    return current_order_id.get()


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the order
    id and Temporal's workflow/activity details when present, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        order_id = order_id_of(record)
        if order_id:
            line["order_id"] = order_id
        for extra in ("temporal_workflow", "temporal_activity"):
            details = getattr(record, extra, None)
            if isinstance(details, dict):
                line[extra.removeprefix("temporal_")] = details
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """The root logger of a process, in the configured format (replacing any handler a
    library installed first)."""
    if settings.log_format == "json":
        # The workflow's and activity's details are fields of the line, not text in it.
        temporalio.workflow.logger.workflow_info_on_message = False
        temporalio.activity.logger.activity_info_on_message = False
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLines() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
