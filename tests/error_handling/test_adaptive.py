"""The adaptive concurrency limiter: admission, samples, severity shedding, the pipeline."""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import BulkheadFull, ConfigError, OperationTimeout
from coordination.error_handling import CoordinationErrorHandler
from coordination.error_handling._adaptive import (
    ACTIVE_SECONDS,
    AdaptiveLimiter,
    Entry,
    is_dropped,
)
from coordination.error_handling._limit_algorithms import AIMD, algorithm_for
from fakes import FakeClock

LOW, MEDIUM, HIGH, CRITICAL = range(4)


class Recording:
    """A fixed limit that keeps every sample it is told."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.samples: list[tuple[float, float, int, bool]] = []

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        self.samples.append((start, rtt, in_flight, dropped))
        return self._limit


def limiter_of(limit: int, clock: FakeClock, wait: float = 0.0) -> AdaptiveLimiter:
    return AdaptiveLimiter("group", Recording(limit), wait, clock)


# --- admission and samples -----------------------------------------------------------------


def test_calls_beyond_the_limit_are_refused_and_counted_by_severity() -> None:
    clock = FakeClock()
    limiter = limiter_of(2, clock)
    entries = [limiter.enter(CRITICAL), limiter.enter(CRITICAL)]
    with pytest.raises(BulkheadFull):
        limiter.enter(CRITICAL)
    assert limiter.in_flight == 2
    limiter.finish(entries[0], None, release=True)
    assert limiter.enter(CRITICAL).in_flight == 2
    snapshot = limiter.snapshot()
    assert snapshot.shed == {"LOW": 0, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 1}
    assert (snapshot.limit, snapshot.in_flight) == (2, 2)


def test_each_call_tells_its_algorithm_start_rtt_in_flight_and_dropped() -> None:
    clock = FakeClock()
    algorithm = Recording(10)
    limiter = AdaptiveLimiter("g", algorithm, 0.0, clock)
    first = limiter.enter()
    second = limiter.enter()
    clock.advance(0.25)
    limiter.finish(first, None, release=True)
    limiter.finish(second, OperationTimeout("op", 1.0), release=True)
    third = limiter.enter()
    limiter.finish(third, ValueError("the dependency's answer"), release=True)
    assert algorithm.samples == [(1000.0, 0.25, 1, False), (1000.0, 0.25, 2, True)]
    assert limiter.in_flight == 0


def test_what_counts_as_dropped() -> None:
    class Throttled(Exception):
        def __init__(self) -> None:
            super().__init__("slow down")
            self.retry_after = 2.0

    assert is_dropped(OperationTimeout("op", 1.0))
    assert is_dropped(TimeoutError())
    assert is_dropped(BulkheadFull("op", 3))
    assert is_dropped(Throttled())
    assert not is_dropped(ValueError("no"))
    assert not is_dropped(KeyError("k"))


def test_the_algorithm_moves_the_limit() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter("g", AIMD(1, 10, 4, backoff_ratio=0.5), 0.0, clock)
    entry = limiter.enter()
    limiter.finish(entry, OperationTimeout("op", 1.0), release=True)
    assert limiter.limit == 2
    entries = [limiter.enter(), limiter.enter()]
    with pytest.raises(BulkheadFull):
        limiter.enter()
    for entry in entries:
        limiter.finish(entry, None, release=True)
    assert limiter.limit == 4  # in use: one more per sample


# --- severities ----------------------------------------------------------------------------


def test_a_lower_severity_fills_only_its_share_while_a_higher_one_is_active() -> None:
    clock = FakeClock()
    limiter = limiter_of(10, clock)
    critical = limiter.enter(CRITICAL)  # CRITICAL is active: LOW may fill half of 10
    lows = [limiter.enter(LOW) for _ in range(4)]
    with pytest.raises(BulkheadFull):
        limiter.enter(LOW)  # 5 in flight: LOW's share is full
    mediums = [limiter.enter(MEDIUM) for _ in range(2)]  # MEDIUM may reach 7
    with pytest.raises(BulkheadFull):
        limiter.enter(MEDIUM)
    highs = [limiter.enter(HIGH)]  # HIGH may reach 8 (85 % of 10, rounded down)
    with pytest.raises(BulkheadFull):
        limiter.enter(HIGH)
    rest = [limiter.enter(CRITICAL) for _ in range(2)]  # CRITICAL may fill the limit
    with pytest.raises(BulkheadFull):
        limiter.enter(CRITICAL)
    assert limiter.snapshot().shed == {"LOW": 1, "MEDIUM": 1, "HIGH": 1, "CRITICAL": 1}
    for entry in [critical, *lows, *mediums, *highs, *rest]:
        limiter.finish(entry, None, release=True)
    assert limiter.in_flight == 0


def test_with_no_higher_severity_about_a_low_call_may_use_the_whole_limit() -> None:
    clock = FakeClock()
    limiter = limiter_of(4, clock)
    limiter.finish(limiter.enter(CRITICAL), None, release=True)
    clock.advance(ACTIVE_SECONDS + 0.01)  # CRITICAL no longer active
    entries = [limiter.enter(LOW) for _ in range(4)]
    with pytest.raises(BulkheadFull):
        limiter.enter(LOW)
    assert len(entries) == 4


def test_freed_slots_go_to_the_highest_severity_waiting() -> None:
    limiter = AdaptiveLimiter("g", Recording(1), 5.0)
    held = limiter.enter(CRITICAL)
    order: list[str] = []

    def wait_for(rank: int, name: str) -> None:
        entry = limiter.enter(rank)
        order.append(name)
        limiter.finish(entry, None, release=True)

    low = threading.Thread(target=wait_for, args=(LOW, "LOW"))
    low.start()
    while limiter.snapshot().waiting < 1:
        time.sleep(0.001)
    high = threading.Thread(target=wait_for, args=(HIGH, "HIGH"))
    high.start()
    while limiter.snapshot().waiting < 2:
        time.sleep(0.001)
    limiter.finish(held, None, release=True)
    low.join(5)
    high.join(5)
    assert order == ["HIGH", "LOW"]  # LOW asked first, HIGH was served first
    assert limiter.in_flight == 0


def test_a_waiter_past_its_wait_is_refused() -> None:
    limiter = AdaptiveLimiter("g", Recording(1), 0.02)
    held = limiter.enter()
    with pytest.raises(BulkheadFull):
        limiter.enter()
    assert limiter.snapshot().waiting == 0
    limiter.finish(held, None, release=True)
    assert limiter.in_flight == 0


async def test_async_waiters_are_granted_and_a_cancelled_one_passes_its_slot_on() -> None:
    limiter = AdaptiveLimiter("g", Recording(1), 5.0)
    held = limiter.enter()
    cancelled = asyncio.ensure_future(limiter.aenter(LOW))
    granted = asyncio.ensure_future(limiter.aenter(CRITICAL))
    await asyncio.sleep(0)
    assert limiter.snapshot().waiting == 2
    cancelled.cancel()
    limiter.finish(held, None, release=True)
    entry = await asyncio.wait_for(granted, 5)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert limiter.in_flight == 1
    limiter.finish(entry, None, release=True)
    assert limiter.in_flight == 0


# --- the pipeline --------------------------------------------------------------------------


def test_operations_of_a_group_share_one_limit(handler: CoordinationErrorHandler) -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "slow"

    options: dict[str, Any] = {
        "adaptive_concurrency": True,
        "concurrency_group": "orders-db",
        "min_concurrency": 1,
        "max_concurrency": 1,
        "max_retries": 0,
    }
    read = handler.decorate(slow, operation_name="orders.read", error_severity="LOW", **options)
    write = handler.decorate(
        lambda: "fast", operation_name="orders.write", error_severity="CRITICAL", **options
    )
    thread = threading.Thread(target=read)
    thread.start()
    started.wait(5)
    with pytest.raises(BulkheadFull):
        write()  # the group's one slot is the other operation's
    release.set()
    thread.join(5)
    assert write() == "fast"
    snapshot = handler.snapshot()
    assert list(snapshot.concurrency) == ["orders-db"]
    group = snapshot.concurrency["orders-db"]
    assert (group.in_flight, group.shed["CRITICAL"], group.algorithm) == (0, 1, "gradient2")
    assert snapshot.operations["orders.write"].bulkhead_rejections == 1


async def test_async_calls_go_through_the_limit(handler: CoordinationErrorHandler) -> None:
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "done"

    call = handler.decorate(
        slow, operation_name="a", adaptive_concurrency=True, max_concurrency=1, max_retries=0
    )
    first = asyncio.ensure_future(call())
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFull):
        await call()
    gate.set()
    assert await first == "done"
    assert handler.snapshot().concurrency["a"].in_flight == 0


def test_a_timed_out_attempt_is_a_drop_and_keeps_its_slot_until_it_ends() -> None:
    handler = CoordinationErrorHandler({"jitter": "none"})
    release = threading.Event()
    stalls = [False]

    def stuck() -> None:
        if stalls[0]:
            release.wait(5)

    call = handler.decorate(
        stuck,
        operation_name="stuck",
        adaptive_concurrency=True,
        concurrency_algorithm="aimd",
        min_concurrency=1,
        max_concurrency=10,
        timeout=0.05,
        max_retries=0,
    )
    call()
    call()  # AIMD: the limit in use grows, 1 -> 2 -> 3
    assert handler.snapshot().concurrency["stuck"].limit == 3
    stalls[0] = True
    with pytest.raises(OperationTimeout):
        call()
    group = handler.snapshot().concurrency["stuck"]
    assert group.in_flight == 1  # the abandoned attempt still runs, and holds its slot
    release.set()
    deadline = time.monotonic() + 5
    while handler.snapshot().concurrency["stuck"].in_flight and time.monotonic() < deadline:
        time.sleep(0.001)
    assert handler.snapshot().concurrency["stuck"].in_flight == 0
    assert group.limit == 2  # the drop: AIMD backed off (3 * 0.9, rounded down)
    handler.close()


def test_min_above_max_is_a_config_error(handler: CoordinationErrorHandler) -> None:
    with pytest.raises(ConfigError, match="min_concurrency"):
        handler.decorate(
            lambda: None, adaptive_concurrency=True, min_concurrency=5, max_concurrency=2
        )


def test_the_feature_off_keeps_the_fixed_bulkhead(handler: CoordinationErrorHandler) -> None:
    handler.decorate(lambda: None, operation_name="fixed", max_concurrent=3)()
    assert handler.snapshot().concurrency == {}


# --- hostile sequences and a simulated dependency -------------------------------------------

_ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["enter", "finish", "drop", "ignore", "leave", "tick"]),
        st.integers(0, 3),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(actions=_ACTIONS, minimum=st.integers(1, 5), extra=st.integers(0, 20))
def test_in_flight_stays_counted_and_within_the_limit(
    actions: list[tuple[str, int]], minimum: int, extra: int
) -> None:
    clock = FakeClock()
    algorithm = algorithm_for("aimd", minimum, minimum + extra)
    limiter = AdaptiveLimiter("g", algorithm, 0.0, clock)
    held: list[Entry] = []
    for action, rank in actions:
        if action == "enter":
            before = limiter.in_flight
            try:
                held.append(limiter.enter(rank))
            except BulkheadFull:
                assert limiter.in_flight == before
            else:
                assert limiter.in_flight <= max(limiter.limit, 1)
        elif action == "tick":
            clock.advance(rank * 0.4)
        elif held:
            entry = held.pop(rank % len(held))
            if action == "leave":
                limiter.leave()
            else:
                error = {"finish": None, "drop": TimeoutError(), "ignore": ValueError()}[action]
                limiter.finish(entry, error, release=True)
        assert limiter.in_flight == len(held)
        assert minimum <= limiter.limit <= minimum + extra


_TIMEOUT = 0.1  # the simulated calls' timeout: a drop


def simulate(algorithm: str, seconds: float = 20.0) -> dict[str, tuple[int, int]]:
    """32 clients (30 LOW, 2 CRITICAL: half the capacity) against a dependency of capacity
    ~4 whose latency grows as (n/4)^2 past it, on a simulated clock: (served, shed) by
    severity. A refused client asks again 10 ms later, a served one at once; a call is
    timed out at 100 ms."""
    clock = FakeClock(0.0)
    limiter = AdaptiveLimiter("g", algorithm_for(algorithm, 1, 200), 0.0, clock)
    events: list[tuple[float, int, int, Entry | None]] = []  # (time, seq, client, entry)
    served = {LOW: 0, CRITICAL: 0}
    shed = {LOW: 0, CRITICAL: 0}
    for client in range(32):
        heapq.heappush(events, (client * 0.0001, client, client, None))
    seq = 32
    while events:
        now, _, client, entry = heapq.heappop(events)
        if now > seconds:
            break
        clock.advance(now - clock())
        rank = LOW if client % 16 else CRITICAL
        if entry is not None:  # a call ends; the client asks again at once
            timed_out = now - entry.started >= _TIMEOUT
            limiter.finish(
                entry, OperationTimeout("dep", _TIMEOUT) if timed_out else None, release=True
            )
            served[rank] += not timed_out
            heapq.heappush(events, (now, seq, client, None))
        else:
            try:
                entry = limiter.enter(rank)
            except BulkheadFull:
                shed[rank] += 1
                heapq.heappush(events, (now + 0.01, seq, client, None))
            else:
                n = limiter.in_flight
                latency = min(_TIMEOUT, 0.01 * max(1.0, (n / 4) ** 2))
                heapq.heappush(events, (now + latency, seq, client, entry))
        seq += 1
    return {"LOW": (served[LOW], shed[LOW]), "CRITICAL": (served[CRITICAL], shed[CRITICAL])}


@pytest.mark.parametrize("algorithm", ["gradient2", "vegas", "aimd"])
def test_a_shared_limit_sheds_low_before_critical(algorithm: str) -> None:
    result = simulate(algorithm)
    (low_served, low_shed), (critical_served, critical_shed) = result["LOW"], result["CRITICAL"]
    low_refused = low_shed / (low_shed + low_served)  # the share of LOW's asks refused
    critical_refused = critical_shed / (critical_shed + critical_served)
    assert low_refused > critical_refused + 0.2, result
    assert critical_served / 2 > 1.5 * low_served / 30, result  # served per client
    assert low_served > 0, result  # shed first, not shut out: the headroom is only reserved
