"""JSON log lines name the order they are about, however the line was written; the API knows
the order from the request path."""

from __future__ import annotations

import json
import logging
import sys

from api.observability import order_id_in
from orderflow.logs import JsonLines, current_order_id, order_id_of


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "orderflow.test", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_the_order_comes_from_the_caller_temporal_or_the_request() -> None:
    assert order_id_of(_record(order_id="A-1")) == "A-1"
    assert order_id_of(_record(temporal_activity={"workflow_id": "order-B-2"})) == "B-2"
    assert order_id_of(_record(temporal_workflow={"workflow_id": "order-C-3"})) == "C-3"
    # Other workflows (a marketplace's poller, the KPI snapshot) are no order's.
    assert order_id_of(_record(temporal_workflow={"workflow_id": "kpi-snapshot"})) is None
    token = current_order_id.set("D-4")
    try:
        assert order_id_of(_record()) == "D-4"
    finally:
        current_order_id.reset(token)
    assert order_id_of(_record()) is None


def test_a_json_line_is_one_object_with_its_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(temporal_activity={"workflow_id": "order-B-2", "activity_type": "x"})
        record.exc_info = sys.exc_info()
    line = JsonLines().format(record)
    assert "\n" not in line.split('"exception"')[0]
    parsed = json.loads(line)
    assert parsed["message"] == "hello you"
    assert parsed["level"] == "WARNING" and parsed["logger"] == "orderflow.test"
    assert parsed["order_id"] == "B-2"
    assert parsed["activity"]["activity_type"] == "x"
    assert "ValueError: boom" in parsed["exception"]
    assert parsed["time"].endswith("+00:00")


def test_the_api_reads_the_order_from_the_path() -> None:
    assert order_id_in("/orders/A-1") == "A-1"
    assert order_id_in("/orders/A-1/cancel") == "A-1"
    assert order_id_in("/reviews/A-1/decision") == "A-1"
    assert order_id_in("/warehouse/tasks/A-1/picked") == "A-1"
    assert order_id_in("/orders/stuck") is None
    assert order_id_in("/orders") is None
    assert order_id_in("/inventory/SKU-1") is None
