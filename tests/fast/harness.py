"""One test's view of the fast tier: the real `OrderWorkflow` on the time-skipping server, a
worker of its own (production's sandbox and data converter) hosting the `FakeShop` stubs on a
task queue of its own, and the typed client to talk to the order.

The server skips time only while a test sleeps (`sleep`) or waits for an order's end
(`result`); otherwise its clock runs at the wall clock's pace, so the polls here (`until`,
`called`, `settle`: real seconds at most) fire no timer of hours or days, and what a test
sees between two sleeps is what the order did then.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Replayer,
    Worker,
)

from orderflow.models import Order, OrderPolicy, OrderView, OrderWorkflowInput, TrackingUpdate
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import CarriedState, TrackingStatus
from starter.order_client import OrderClient, sa_for_new_order, workflow_id_for
from tests.fast.shop import FakeShop, tracking_number
from tests.helpers import order_json
from workers.order_worker import SANDBOX
from workflows.order import OrderWorkflow

# Everything a person would do is done by the test; every wait the workflow has is zero,
# except the warehouse, which is automatic: the shortest road from placement to the end.
INSTANT = OrderPolicy.instant()
# The production policy's durations, with the warehouse automatic and instant.
PRODUCTION = OrderPolicy(auto_warehouse=True)
# Production durations with a person in the warehouse (picked/packed reports by the test).
MANUAL_WAREHOUSE = OrderPolicy()
# Real time a test waits for the order to get somewhere; no wait here is on a workflow timer.
PATIENCE_SECONDS = 10.0
# Real time a poll waits for the order to be between workflow tasks before it queries.
QUIET_WAIT_SECONDS = 0.5
# Real time an order may take to its end while the server skips the waits.
RESULT_PATIENCE_SECONDS = 30.0


class ActivitiesRunning(Interceptor):
    """Counts the activities (the fake shop's stubs) running now.

    A query that reaches this server while a local activity runs ends the workflow task
    early, and the workflow goes on in a task of its own: a history no real server writes,
    which then fails to replay at the next `workflow.patched`. So the polls wait for a
    quiet moment (`Harness._quiet`) before they ask.
    """

    def __init__(self) -> None:
        self.running = 0

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Counted(next, self)


class _Counted(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, counter: ActivitiesRunning) -> None:
        super().__init__(next)
        self._counter = counter

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self._counter.running += 1
        try:
            return await super().execute_activity(input)
        finally:
            self._counter.running -= 1


class Harness:
    def __init__(self, env: WorkflowEnvironment, shop: FakeShop) -> None:
        self.env = env
        self.shop = shop
        # A queue of its own: no other test's worker (and fake) can take this test's tasks.
        self.task_queue = f"fast-{uuid.uuid4().hex[:8]}"
        self.storefront = OrderClient(env.client, task_queue=self.task_queue)
        self._first_runs: dict[str, str] = {}
        self.activities = ActivitiesRunning()

    @property
    def client(self) -> Client:
        return self.env.client

    # ------------------------------------------------------------------ worker and time
    @contextlib.asynccontextmanager
    async def worker(self) -> AsyncIterator[Worker]:
        """The production worker's runner and converter (the env client's), the fake's stubs."""
        worker = Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[OrderWorkflow],
            activities=self.shop.activities(),
            workflow_runner=SANDBOX,
            # A workflow bug fails the order at once, with its error in the test, instead of
            # retrying the workflow task until the test times out.
            workflow_failure_exception_types=[Exception],
            interceptors=[self.activities],
        )
        async with worker:
            try:
                yield worker
            finally:
                # A test that failed while holding an activity must not hold the teardown.
                for gate in self.shop.gates.values():
                    gate.open()
                await self.terminate_running()

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def sleep(self, duration: timedelta) -> None:
        """Let `duration` pass on the server: the timers due meanwhile fire."""
        await self.env.sleep(duration)

    # ------------------------------------------------------------------ orders
    @staticmethod
    def order(**overrides: Any) -> Order:
        return Order.model_validate(order_json(**overrides))

    async def input_for(
        self, order: Order, policy: OrderPolicy, carried: CarriedState | None = None
    ) -> OrderWorkflowInput:
        # The server's clock, not the wall clock: earlier tests may have skipped days ahead.
        now = await self.now()
        if order.placed_at is None:
            order = order.model_copy(update={"placed_at": now})
        self.shop.orders[order.order_id] = order
        return OrderWorkflowInput(order=order, policy=policy, received_at=now, carried=carried)

    async def place(
        self,
        order: Order | None = None,
        *,
        policy: OrderPolicy = INSTANT,
        carried: CarriedState | None = None,
        task_timeout: timedelta | None = None,
    ) -> Order:
        """Start the order's workflow as the storefront does (same id, policies, attributes).
        A short `task_timeout` makes a long local activity hand back its workflow task early,
        so that messages reach the order while that activity still runs."""
        order = order or self.order()
        data = await self.input_for(order, policy, carried)
        handle = await self.client.start_workflow(
            OrderWorkflow.run,
            data,
            id=workflow_id_for(order.order_id),
            task_queue=self.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=sa_for_new_order(order),
            task_timeout=task_timeout,
        )
        assert handle.result_run_id is not None
        self._first_runs[order.order_id] = handle.result_run_id
        return data.order

    def remember(self, order_id: str, first_run_id: str) -> None:
        """An order started some other way (update-with-start): where its first run is."""
        self._first_runs[order_id] = first_run_id

    async def replay_every_run(self) -> int:
        """Replay the history of every run of every order this test started (following
        continue-as-new): a path whose commands do not replay fails the test that took it.
        Returns how many runs replayed."""
        replayer = Replayer(
            workflows=[OrderWorkflow],
            data_converter=self.client.data_converter,
            workflow_runner=SANDBOX,
        )
        replayed = 0
        for order_id, run_id in self._first_runs.items():
            next_run: str | None = run_id
            while next_run:
                handle = self.client.get_workflow_handle(workflow_id_for(order_id), run_id=next_run)
                history = await handle.fetch_history()
                try:
                    await replayer.replay_workflow(history)
                except Exception:
                    # Kept to be read (and replayed) after the test: the events say why.
                    kept = Path(tempfile.gettempdir()) / f"unreplayable-{next_run}.json"
                    kept.write_text(history.to_json())
                    raise
                replayed += 1
                last = history.events[-1] if history.events else None
                next_run = (
                    last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                    if last is not None
                    and last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
                    else None
                )
        return replayed

    def handle(self, order_id: str) -> WorkflowHandle[OrderWorkflow, OrderView]:
        return self.storefront.handle(order_id)

    async def view(self, order_id: str, *, rpc_timeout: timedelta | None = None) -> OrderView:
        return await self.handle(order_id).query(OrderWorkflow.view, rpc_timeout=rpc_timeout)

    async def result(self, order_id: str) -> OrderView:
        """The order's end (following new runs); the server skips time until it comes.

        The env's own skipping-while-awaiting covers only handles from `start_workflow`,
        not the typed client's handles, so the lock is lifted here for the wait.
        """
        test_service = self.client.test_service
        await test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
        try:
            async with asyncio.timeout(RESULT_PATIENCE_SECONDS):
                result: OrderView = await self.handle(order_id).result()
        finally:
            await test_service.lock_time_skipping(LockTimeSkippingRequest())
        return result

    async def until(
        self, order_id: str, check: Callable[[OrderView], bool], what: str
    ) -> OrderView:
        deadline = time.monotonic() + PATIENCE_SECONDS
        view = None
        while time.monotonic() < deadline:
            # A query that meets the run it was sent to continuing as new is never answered
            # by this server: a short deadline, then ask the new run.
            await self._quiet(order_id, within=QUIET_WAIT_SECONDS)
            with contextlib.suppress(RPCError):
                view = await self.view(order_id, rpc_timeout=timedelta(seconds=1))
                if check(view):
                    return view
            await asyncio.sleep(0.02)
        raise AssertionError(f"order {order_id} never got to {what}; last view: {view}")

    async def _quiet(self, order_id: str, *, within: float) -> None:
        """Until the order's latest run has no workflow task out and no activity runs, for
        at most `within` seconds: a test may hold an activity at a gate while it looks."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.activities.running:
                with contextlib.suppress(RPCError, KeyError):
                    if await self._between_tasks(order_id):
                        return
            await asyncio.sleep(0.005)

    async def _between_tasks(self, order_id: str) -> bool:
        """The order's latest run has completed every workflow task it was given."""
        kinds = [e.event_type for e in (await self._histories(order_id))[-1]]
        scheduled = max(
            i
            for i, kind in enumerate(kinds)
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
        )
        return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds[scheduled:]

    async def called(self, name: ActivityName, times: int = 1) -> list[Any]:
        """The inputs of `name`, once the workflow has called it at least `times` times."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while self.shop.count(name) < times:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{name} called {self.shop.count(name)} times, expected {times}; "
                    f"calls: {self.shop.names()}"
                )
            await asyncio.sleep(0.02)
        return self.shop.inputs(name)

    async def track(
        self,
        order_id: str,
        status: TrackingStatus,
        *,
        event_id: str | None = None,
        reship_no: int = 0,
    ) -> TrackingUpdate:
        """The carrier's webhook: one tracking event for the order's n-th parcel."""
        update = TrackingUpdate(
            event_id=event_id or f"ev-{uuid.uuid4().hex[:10]}",
            tracking_number=tracking_number(order_id, reship_no),
            status=status,
            at=await self.now(),
        )
        await self.storefront.tracking_event(order_id, update)
        return update

    # ------------------------------------------------------------------ runs
    async def _histories(self, order_id: str) -> list[list[HistoryEvent]]:
        """The history of each run of the order, first to latest."""
        histories: list[list[HistoryEvent]] = []
        run_id: str | None = self._first_runs[order_id]
        while run_id is not None:
            handle = self.client.get_workflow_handle(workflow_id_for(order_id), run_id=run_id)
            events = list((await handle.fetch_history()).events)
            histories.append(events)
            run_id = None
            if events[-1].HasField("workflow_execution_continued_as_new_event_attributes"):
                continued = events[-1].workflow_execution_continued_as_new_event_attributes
                run_id = continued.new_execution_run_id
        return histories

    async def runs(self, order_id: str) -> list[OrderWorkflowInput]:
        """The input of each run of the order, first to latest: `carried` is what the
        run before handed over when it continued as new."""
        inputs: list[OrderWorkflowInput] = []
        for events in await self._histories(order_id):
            started = events[0].workflow_execution_started_event_attributes
            (data,) = await self.client.data_converter.decode(
                started.input.payloads, [OrderWorkflowInput]
            )
            inputs.append(data)
        return inputs

    async def continued(self, order_id: str, *, beyond: int) -> list[OrderWorkflowInput]:
        """The runs, once the order has continued as new to more than `beyond` runs (read
        from the histories: a query could meet a run just closing)."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while len(runs := await self.runs(order_id)) <= beyond:
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} stayed at {len(runs)} runs")
            await asyncio.sleep(0.02)
        return runs

    async def settle(self, order_id: str) -> None:
        """Wait until the order's latest run has no workflow task pending: everything sent
        to it so far has been taken, and it is not in the middle of continuing as new.

        Where a run may continue as new, tests wait this way rather than by query: a query
        that meets its run closing is never answered by this server.
        """
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            if await self._between_tasks(order_id):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"order {order_id} never settled")

    async def history_length(self, order_id: str) -> int:
        """How many events the order's latest run has in its history."""
        return len((await self._histories(order_id))[-1])

    async def signal_taken(self, order_id: str) -> None:
        """Wait until a workflow task has completed after the latest signal to the order's
        latest run (`settle` never sees a quiet moment while a long local activity keeps
        handing its task back)."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            events = (await self._histories(order_id))[-1]
            signalled = [
                e.event_id
                for e in events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            ]
            if signalled and any(
                e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                and e.event_id > signalled[-1]
                for e in events
            ):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"order {order_id} never took the signal")

    async def terminate_running(self) -> None:
        """Orders a test left waiting (a review window, a parcel under way) end with it, so
        that no later test's time skipping fires their timers.

        Each is let finish its workflow task first: this server keeps time locked for a task
        that was in flight when its workflow was terminated, and every later sleep hangs.
        """
        for order_id in self._first_runs:
            with contextlib.suppress(RPCError, AssertionError):
                await self.settle(order_id)
            with contextlib.suppress(RPCError):
                await self.handle(order_id).terminate(reason="end of test")
