"""Several windows per key ("100/s;5000/h"), quotas and reserved permits, in memory.

The reference is GCRA done by hand in exact fractions, one window at a time: a call is
allowed only when every window allows it, and then counts in all of them.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from coordination import ConfigError
from coordination.error_handling import InMemoryRateLimiter, Rate, RateLimit


class MsClock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> float:
        return self.ms / 1000


class ExactGcra:
    """One window's GCRA in fractions of a second (no float drift)."""

    def __init__(self, rate: Rate) -> None:
        self.interval = Fraction(rate.period) / Fraction(rate.count)
        self.period = Fraction(rate.period)
        self.tat: Fraction | None = None

    def wait(self, now: Fraction, cost: int) -> Fraction:
        tat = now if self.tat is None or self.tat < now else self.tat
        return max(Fraction(0), tat + self.interval * cost - self.period - now)

    def spend(self, at: Fraction, cost: int) -> None:
        tat = at if self.tat is None or self.tat < at else self.tat
        self.tat = tat + self.interval * cost


limits = st.lists(
    st.tuples(st.integers(1, 6), st.sampled_from([1, 2, 5, 60])), min_size=1, max_size=3
).map(
    lambda pairs: RateLimit(
        tuple(Rate(count, period) for count, period in {p: c for c, p in pairs}.items())
    )
)
# (milliseconds before the call, its cost, seconds it may wait for a reserved permit)
calls = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 1, 100, 250, 999, 1000, 5000, 61_000]),
        st.sampled_from([1, 1, 1, 2]),
        st.sampled_from([0.0, 0.0, 0.5, 3.0]),
    ),
    max_size=60,
)


def test_the_grammar_and_its_round_trip() -> None:
    limit = RateLimit.parse("100/s; 5000/h")
    assert limit.windows == (Rate(100, 1.0), Rate(5000, 3600.0))
    assert str(limit) == "100/1s;5000/3600s"
    assert RateLimit.parse(str(limit)) == limit
    assert RateLimit.parse(Rate(3, 1.0)) == RateLimit((Rate(3, 1.0),))
    assert RateLimit.parse(limit) is limit


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("100/s;100/1s", "two windows of 1s"),
        ("100/s;lots", "window 2 of 2: expected a rate"),
        ("100/s;0/h", "window 2 of 2: expected a rate"),
        (";".join(["1/s"] + [f"1/{n}m" for n in range(1, 9)]), "at most 8 windows"),
        ("", "expected a rate"),
    ],
)
def test_a_bad_limit_is_refused_naming_the_field(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        RateLimit.parse(text, field="client_rate_limit", source="coordination.yaml, line 3")
    assert caught.value.field == "client_rate_limit"
    assert "coordination.yaml, line 3" in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(limits, calls)
def test_allowed_only_when_every_window_allows_and_then_counted_in_all(
    limit: RateLimit, script: list[tuple[int, int, float]]
) -> None:
    clock = MsClock()
    limiter = InMemoryRateLimiter(limit, clock=clock)
    model = [ExactGcra(rate) for rate in limit.windows]
    for elapsed, cost, max_wait in script:
        clock.ms += elapsed
        now = Fraction(clock.ms, 1000)
        wait = max(window.wait(now, cost) for window in model)
        if max_wait == 0.0:
            answer = limiter.try_acquire("k", cost)
            assert answer == pytest.approx(float(wait), abs=1e-6)
            if wait == 0:
                for window in model:
                    window.spend(now, cost)
            continue
        quota = limiter.acquire_quota("k", cost, max_wait)
        if wait <= Fraction(max_wait):
            assert quota.allowed
            assert quota.delay == pytest.approx(float(wait), abs=1e-6)
            for window in model:
                window.spend(now + wait, cost)
        else:
            assert not quota.allowed
            assert quota.retry_after == pytest.approx(float(wait), abs=1e-6)
            assert quota.delay == 0.0


@settings(max_examples=200, deadline=None)
@given(limits, calls)
def test_remaining_is_how_many_more_calls_would_be_allowed_now(
    limit: RateLimit, script: list[tuple[int, int, float]]
) -> None:
    clock = MsClock()
    limiter = InMemoryRateLimiter(limit, clock=clock)
    for elapsed, cost, _ in script:
        clock.ms += elapsed
        limiter.try_acquire("k", cost)
    quota = limiter.acquire_quota("k")
    assert [window.rate for window in quota.windows] == list(limit.windows)
    remaining = min(window.remaining for window in quota.windows)
    allowed_now = 0
    while limiter.try_acquire("k") == 0.0:
        allowed_now += 1
        assert allowed_now <= 100
    assert allowed_now == remaining
    for window in quota.windows:
        assert 0 <= window.remaining <= window.rate.count
        assert 0.0 <= window.reset <= window.rate.period + window.rate.interval


def test_a_refused_call_spends_nothing_in_any_window() -> None:
    clock = MsClock()
    limiter = InMemoryRateLimiter(RateLimit.parse("2/s;3/m"), clock=clock)
    assert [limiter.try_acquire("k") for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    clock.ms += 500
    assert limiter.try_acquire("k") == 0.0  # the third call of the minute
    clock.ms += 1000
    # the per-second window is whole again, the per-minute one is spent until 20 s later
    assert limiter.try_acquire("k") == pytest.approx(18.5)
    quota = limiter.acquire_quota("k")
    assert not quota.allowed
    assert [window.remaining for window in quota.windows] == [2, 0]


def test_reserved_permits_are_served_in_the_order_they_were_asked() -> None:
    clock = MsClock()
    limiter = InMemoryRateLimiter(Rate.parse("2/s"), clock=clock)
    delays = [limiter.acquire_quota("k", max_wait=2.0).delay for _ in range(6)]
    assert delays == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])
    late = limiter.acquire_quota("k", max_wait=2.0)
    assert not late.allowed
    assert late.retry_after == pytest.approx(2.5)


class LimiterMachine(RuleBasedStateMachine):
    """Several keys of one multi-window limiter against the exact model: plain checks,
    reservations ahead, looks that count nothing, and time passing."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = MsClock()
        self.limit = RateLimit.parse("3/s;5/10s;8/m")
        self.limiter = InMemoryRateLimiter(self.limit, clock=self.clock)
        self.models: dict[str, list[ExactGcra]] = {}

    def model(self, key: str) -> list[ExactGcra]:
        return self.models.setdefault(key, [ExactGcra(rate) for rate in self.limit.windows])

    def now(self) -> Fraction:
        return Fraction(self.clock.ms, 1000)

    @rule(ms=st.sampled_from([0, 1, 200, 333, 1000, 4000, 30_000]))
    def time_passes(self, ms: int) -> None:
        self.clock.ms += ms

    @rule(key=st.sampled_from(["a", "b"]), cost=st.sampled_from([1, 1, 2]))
    def check(self, key: str, cost: int) -> None:
        model, now = self.model(key), self.now()
        wait = max(window.wait(now, cost) for window in model)
        assert self.limiter.try_acquire(key, cost) == pytest.approx(float(wait), abs=1e-6)
        if wait == 0:
            for window in model:
                window.spend(now, cost)

    @rule(key=st.sampled_from(["a", "b"]), max_wait=st.sampled_from([0.5, 2.0, 20.0]))
    def reserve(self, key: str, max_wait: float) -> None:
        model, now = self.model(key), self.now()
        wait = max(window.wait(now, 1) for window in model)
        quota = self.limiter.acquire_quota(key, 1, max_wait)
        assert quota.allowed == (wait <= Fraction(max_wait))
        if quota.allowed:
            assert quota.delay == pytest.approx(float(wait), abs=1e-6)
            for window in model:
                window.spend(now + wait, 1)
        else:
            assert quota.retry_after == pytest.approx(float(wait), abs=1e-6)

    @rule(key=st.sampled_from(["a", "b"]))
    def look(self, key: str) -> None:
        before = dict(self.limiter._tat)
        quota = self.limiter.acquire_quota(key, 0)
        assert self.limiter._tat.get(key) == before.get(key)  # a look counts nothing
        for window, left in zip(self.model(key), quota.windows, strict=True):
            ahead = max(Fraction(0), (window.tat or self.now()) - self.now())
            expected = max(0, int((window.period - ahead) / window.interval))
            assert left.remaining == min(expected, int(left.rate.count))
            assert left.reset == pytest.approx(float(ahead), abs=1e-6)


TestLimiterMachine = LimiterMachine.TestCase
TestLimiterMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
