"""The timeout workers of one operation against a model: however hung attempts start and
end, a call is refused exactly when every worker is busy, and never more threads run
than the pool's size."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from coordination import BulkheadFull
from coordination.error_handling._workers import Abandoned, AttemptPool

WORKERS = 3


def settle(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (briefly) for the workers to catch up with what the model already knows."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the pool did not settle")
        time.sleep(0.001)


class PoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pool = AttemptPool("model", WORKERS)
        self.hung: list[threading.Event] = []  # gates of attempts still running
        self.ended_late = 0
        self.slot_callbacks = 0
        self.lock = threading.Lock()

    def _on_end(self) -> None:
        with self.lock:
            self.slot_callbacks += 1

    @rule()
    def a_call_hangs(self) -> None:
        gate = threading.Event()
        if len(self.hung) < WORKERS:
            with pytest.raises(Abandoned):
                self.pool.run(gate.wait, (30,), {}, timeout=0.001, on_end=self._on_end)
            self.hung.append(gate)
        else:
            with pytest.raises(BulkheadFull):
                self.pool.run(gate.wait, (30,), {}, timeout=0.001)

    @rule()
    def a_quick_call(self) -> None:
        if len(self.hung) < WORKERS:
            assert self.pool.run(lambda: "ok", (), {}, timeout=5.0, on_end=self._on_end) == "ok"
        else:
            with pytest.raises(BulkheadFull):
                self.pool.run(lambda: "ok", (), {}, timeout=5.0)

    @precondition(lambda self: self.hung)
    @rule()
    def a_hung_call_returns(self) -> None:
        self.hung.pop(0).set()
        self.ended_late += 1
        settle(lambda: self.pool.busy == len(self.hung) and self.slot_callbacks == self.ended_late)

    @invariant()
    def busy_workers_are_the_hung_calls(self) -> None:
        settle(lambda: self.pool.busy == len(self.hung))

    @invariant()
    def never_more_threads_than_workers(self) -> None:
        assert self.pool.threads <= WORKERS

    def teardown(self) -> None:
        for gate in self.hung:
            gate.set()
        self.pool.close()


PoolModel.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestPoolAgainstModel = PoolModel.TestCase
