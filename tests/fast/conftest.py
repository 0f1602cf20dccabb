"""The fast workflow tier: `OrderWorkflow` on the time-skipping test server with in-memory stub
activities (`tests/fast/shop.py`); no PostgreSQL, no dev server, no HTTP.

One test server serves each module (starting one costs about a second); each test gets a
fresh fake shop and a worker on a task queue of its own, so tests share nothing but the
server's clock, which only ever moves forward and which no test reads from the wall clock.
A server per module, not per tier: a workflow one module leaves behind cannot have its
timer fire, without a worker, while another module waits, which stops this server's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.fast.harness import Harness
from tests.fast.shop import FakeShop
from tests.time_skipping import SkippingServer

_HERE = Path(__file__).parent
TEST_TIMEOUT_SECONDS = 60


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fast: the fast workflow tier (time-skipping server, stub activities)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test of this folder is in the tier: `pytest -m fast` runs it from anywhere. Each
    # takes seconds; one that hangs fails in a minute, not at the suite's ten.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.fast)
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_SECONDS))


@pytest.fixture(scope="module")
async def skipping_server() -> AsyncIterator[SkippingServer]:
    server = SkippingServer()
    try:
        yield server
    finally:
        await server.shutdown()


@pytest.fixture
async def fast_env(
    skipping_server: SkippingServer, request: pytest.FixtureRequest
) -> WorkflowEnvironment:
    return await skipping_server.env_for(request.node.nodeid)


@pytest.fixture
def shop() -> FakeShop:
    return FakeShop()


@pytest.fixture
def idle(fast_env: WorkflowEnvironment, shop: FakeShop) -> Harness:
    """A harness whose worker the test starts itself (`async with idle.worker()`), for what
    must reach the order before any worker has run it."""
    return Harness(fast_env, shop)


@pytest.fixture
async def harness(idle: Harness) -> AsyncIterator[Harness]:
    async with idle.worker():
        yield idle
    # Every path a fast test takes is also a replay test: its histories replay unchanged.
    await idle.replay_every_run()
