"""The supervisor's restart policy, with real child processes: a killed child comes back under a
new pid while the supervisor keeps running; a child that cannot stay up ends it, saying why."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from stack.supervisor import ManagedProcess, RestartPolicy, Supervisor

pytestmark = pytest.mark.integration

FAST = RestartPolicy(max_restarts=3, window_seconds=60, backoff_seconds=0.1)


def _wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_killed_child_is_restarted_and_the_supervisor_keeps_running(tmp_path: Path) -> None:
    restarted: list[tuple[str, int | None]] = []
    sup = Supervisor(FAST, on_restart=lambda name, p: restarted.append((name, p.pid)))
    outcome: list[str] = []
    with sup:
        sleeper = sup.add(
            ManagedProcess(
                "sleeper", [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "s"
            )
        ).start()
        first_pid = sleeper.pid
        assert first_pid is not None
        waiter = threading.Thread(target=lambda: outcome.append(sup.wait(poll_interval=0.05)))
        waiter.start()

        os.kill(first_pid, signal.SIGKILL)
        _wait_for(lambda: sleeper.is_alive() and sleeper.pid != first_pid)
        assert restarted == [("sleeper", sleeper.pid)]
        assert sup.restarts == {"sleeper": 1}
        time.sleep(0.3)
        assert waiter.is_alive() and not outcome, "the supervisor stopped on a restartable death"

        # And again: every death within the policy's budget is survived.
        second_pid = sleeper.pid
        assert second_pid is not None
        os.kill(second_pid, signal.SIGKILL)
        _wait_for(lambda: sleeper.is_alive() and sleeper.pid not in (first_pid, second_pid))
        assert waiter.is_alive()

        sup.request_stop()
        waiter.join(10)
        assert outcome == ["stop requested"]
    assert not sleeper.is_alive()
    log = (tmp_path / "s").read_text()
    assert log.count(" start ") == 3, log


def test_a_child_that_keeps_dying_ends_the_supervisor_with_a_reason(tmp_path: Path) -> None:
    with Supervisor(FAST) as sup:
        crasher = sup.add(
            ManagedProcess("crasher", [sys.executable, "-c", "raise SystemExit(7)"], tmp_path / "c")
        ).start()
        started = time.monotonic()
        reason = sup.wait(poll_interval=0.05)
        elapsed = time.monotonic() - started
    assert reason.startswith("crasher keeps dying: exited 4 times within 60s"), reason
    assert "last exit code 7" in reason and str(tmp_path / "c") in reason
    assert sup.restarts == {"crasher": 3}
    assert not crasher.is_alive()
    # Backoff doubles: 0.1 + 0.2 + 0.4 s at least between the four deaths.
    print(f"gave up after {elapsed:.2f}s")
    assert (tmp_path / "c").read_text().count(" start ") == 4


def test_restart_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff_seconds=1, backoff_max_seconds=5)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
