"""Issue 16's features used as a careless user would: a wait interrupted, a hedge dropped
while it asks a slow budget. Nothing leaks: slots, queue places and breaker permits all
come back."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from coordination.error_handling import CoordinationErrorHandler
from coordination.error_handling._adaptive import AdaptiveLimiter
from coordination.error_handling._bulkhead import Bulkhead
from coordination.error_handling._limit_algorithms import AIMD
from fakes import FakeClock

from .test_hedging import Permits


class _Interrupted(threading.Event):
    """An event whose wait is interrupted (as by Ctrl-C) after a slot was handed over."""

    def __init__(self, hand_over: Any) -> None:
        super().__init__()
        self._hand_over = hand_over

    def wait(self, timeout: float | None = None) -> bool:
        self._hand_over()  # the holder leaves while we wait: the slot is granted to us
        raise KeyboardInterrupt


def test_an_interrupted_wait_for_an_adaptive_slot_passes_a_granted_slot_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter = AdaptiveLimiter("g", AIMD(1, 1, 1), wait=5.0)
    held = limiter.slot("HIGH").enter()
    monkeypatch.setattr(
        "coordination.error_handling._adaptive.threading.Event",
        lambda: _Interrupted(lambda: limiter.finish(held, None, release=True)),
    )
    with pytest.raises(KeyboardInterrupt):
        limiter.slot("HIGH").enter()
    snapshot = limiter.snapshot()
    assert (snapshot.in_flight, snapshot.waiting) == (0, 0)  # was (1, 0): a slot lost
    monkeypatch.undo()
    limiter.finish(limiter.slot("HIGH").enter(), None, release=True)  # still usable


def test_an_interrupted_wait_leaves_the_adaptive_queue() -> None:
    limiter = AdaptiveLimiter("g", AIMD(1, 1, 1), wait=1e300)  # Event.wait: OverflowError
    held = limiter.slot("HIGH").enter()
    with pytest.raises(OverflowError):
        limiter.slot("HIGH").enter()
    assert limiter.snapshot().waiting == 0
    limiter.finish(held, None, release=True)
    assert limiter.in_flight == 0  # the freed slot went to no dead waiter


def test_an_interrupted_wait_for_a_bulkhead_slot_passes_a_granted_slot_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bulkhead = Bulkhead("b", 1, wait=5.0)
    bulkhead.enter()
    monkeypatch.setattr(
        "coordination.error_handling._bulkhead.threading.Event",
        lambda: _Interrupted(bulkhead.leave),
    )
    with pytest.raises(KeyboardInterrupt):
        bulkhead.enter()
    assert bulkhead.in_flight == 0
    monkeypatch.undo()
    bulkhead.enter()  # the slot is free: no wait
    bulkhead.leave()
    assert bulkhead.in_flight == 0


class _SlowBudget:
    """A shared budget whose ask never answers (Redis gone quiet mid-call)."""

    blocking = True

    def record_call(self) -> None:
        pass

    def try_spend(self) -> bool:
        raise AssertionError("asked synchronously")

    async def arecord_call(self) -> None:
        pass

    async def atry_spend(self) -> bool:
        await asyncio.Event().wait()
        return True


async def test_a_hedge_dropped_while_it_asks_a_slow_budget_gives_its_permit_back() -> None:
    permits = Permits()
    handler = CoordinationErrorHandler(
        {"base_delay": 0},
        breaker_factory=permits,
        retry_budget_factory=lambda name, settings, **_: _SlowBudget(),
    )

    async def read() -> int:
        await asyncio.sleep(0.05)  # the first attempt answers while the hedge asks
        return 1

    hedged = handler.decorate(read, hedge_after=0.005, retry_budget=0.5, operation_name="r")
    assert await hedged() == 1
    # the hedge took a permit, then was cancelled inside the budget's ask: its permit was
    # leaked (taken, never given back; a half-open breaker then runs out of trials)
    assert permits.asked["acquire"] == 1
    assert permits.asked["release"] == 1
    assert handler.operation_stats()["r"]["hedged_attempts"] == 0  # it never started
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_a_tiny_budget_window_does_not_log_every_refused_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "circuit_breaker_threshold": 1_000_000},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )

    def down() -> None:
        clock.advance(0.01)
        raise ConnectionError("down")

    failing = handler.decorate(
        down,
        retry_budget=0.0,
        retry_budget_min_per_second=0,
        retry_budget_window=1e-9,
        operation_name="down",
    )
    with caplog.at_level(logging.WARNING, logger="coordination"):
        for _ in range(50):  # half a second of refused retries
            with pytest.raises(ConnectionError):
                failing()
    spent = [r for r in caplog.records if "retry budget spent" in r.getMessage()]
    assert len(spent) == 1  # was 50: once per 1e-9 s window
    assert handler.operation_stats()["down"]["retry_budget_exhausted"] == 50
