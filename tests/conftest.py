"""Session fixtures: one PostgreSQL and one Temporal dev server for the whole test run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.servers import fresh_database, postgres_url, prepare, start_dev_server


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_url(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> str:
    """A migrated, seeded database of this test session."""
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    return url


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()
