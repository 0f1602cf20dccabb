"""The shared time-skipping server recovers from the one state that stops its clock for good:
a query left unanswered when its workflow is terminated."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.service import RPCError

from tests.time_skipping import SkippingServer


@workflow.defn(sandboxed=False)
class Waiting:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def waiting(self) -> bool:
        return True


async def test_a_server_whose_clock_stopped_is_replaced() -> None:
    server = SkippingServer(probe_seconds=2)
    try:
        env = await server.env_for("first")
        assert await server.env_for("second") is env, "a moving clock keeps its server"

        # No worker polls this queue: the query is never answered, then its workflow ends.
        handle = await env.client.start_workflow(
            Waiting.run, id=f"waiting-{uuid.uuid4().hex[:8]}", task_queue="nobody-polls"
        )
        with pytest.raises(RPCError):
            await handle.query(Waiting.waiting, rpc_timeout=timedelta(seconds=1))
        await handle.terminate(reason="the end of a test")

        with pytest.warns(UserWarning, match="clock stood still after second"):
            fresh = await server.env_for("third")
        assert fresh is not env and server.restarts == 1
        before = await fresh.get_current_time()
        await fresh.sleep(timedelta(days=3))
        assert await fresh.get_current_time() - before >= timedelta(days=3)
    finally:
        await server.shutdown()
