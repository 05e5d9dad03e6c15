"""The adaptive limit algorithms: their rules one by one, their convergence on a simulated
dependency that slows down past its capacity, and their bounds under any samples."""

from __future__ import annotations

import math
import random

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from coordination import ConfigError
from coordination.error_handling._limit_algorithms import (
    AIMD,
    Gradient2,
    LimitAlgorithm,
    Vegas,
    Windowed,
    algorithm_for,
)

from .limit_model import simulate

NAMES = ("gradient2", "vegas", "aimd")


# --- algorithm_for: the settings' names and bounds --------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"), [("gradient2", Gradient2), ("vegas", Vegas), ("aimd", AIMD)]
)
def test_algorithm_for_names_each_algorithm_and_starts_at_the_minimum(
    name: str, kind: type
) -> None:
    algorithm = algorithm_for(name, 3, 50)
    inner = algorithm.delegate if isinstance(algorithm, Windowed) else algorithm
    assert isinstance(inner, kind)
    assert (inner.minimum, inner.maximum) == (3, 50)
    assert algorithm.limit == 3
    assert algorithm_for(name, 3, 50, initial=20).limit == 20
    assert algorithm_for(name, 3, 50, initial=500).limit == 50


def test_algorithm_for_refuses_an_unknown_name_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"concurrency_algorithm = 'reno'.*gradient2") as info:
        algorithm_for("reno", 1, 10)
    assert info.value.field == "concurrency_algorithm"


@pytest.mark.parametrize(
    ("minimum", "maximum", "field"),
    [
        (0, 10, "min_concurrency"),
        (1, 0, "max_concurrency"),
        (11, 10, "min_concurrency"),
        (True, 10, "min_concurrency"),
        (1, 2.5, "max_concurrency"),
    ],
)
def test_algorithm_for_refuses_bad_bounds_naming_the_setting(
    minimum: int, maximum: int, field: str
) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        algorithm_for("gradient2", minimum, maximum)
    assert info.value.field == field


# --- AIMD (AIMDLimit) ---------------------------------------------------------------------


def test_aimd_grows_by_one_while_in_use_and_cuts_on_a_drop_or_a_slow_call() -> None:
    aimd = AIMD(1, 100, initial=20)
    assert aimd.on_sample(0.0, 0.01, in_flight=9, dropped=False) == 20  # under half: caller-bound
    assert aimd.on_sample(0.0, 0.01, in_flight=10, dropped=False) == 21
    assert aimd.on_sample(0.0, 0.01, in_flight=21, dropped=True) == 18  # floor(21 * 0.9)
    assert aimd.on_sample(0.0, 6.0, in_flight=18, dropped=False) == 16  # slower than 5 s
    small = AIMD(1, 100, initial=5)
    assert small.on_sample(0.0, 0.01, 5, dropped=True) == 4  # always at least one less
    floor = AIMD(3, 100, initial=3)
    assert floor.on_sample(0.0, 0.01, 3, dropped=True) == 3
    top = AIMD(1, 4, initial=4)
    assert top.on_sample(0.0, 0.01, 4, dropped=False) == 4


def test_samples_without_a_latency_move_the_latency_algorithms_only_by_their_drops() -> None:
    # A test's clock standing still measures every call at 0 s; a broken one at NaN or inf.
    for name in ("gradient2", "vegas"):
        algorithm = algorithm_for(name, 1, 100, initial=10)
        for rtt in [0.0, math.nan, math.inf, -1.0] * 30:
            algorithm.on_sample(0.0, rtt, 10, False)
        assert algorithm.limit == 10, name
    vegas = Vegas(1, 100, initial=10)
    assert vegas.on_sample(0.0, 0.0, 10, True) == 9
    aimd = AIMD(1, 100, initial=10)
    assert aimd.on_sample(0.0, math.inf, 10, False) == 11  # no number: not a slow call
    assert aimd.on_sample(0.0, math.nan, 11, True) == 9


@pytest.mark.parametrize("ratio", [0.49, 1.0])
def test_aimd_refuses_a_backoff_ratio_outside_its_range(ratio: float) -> None:
    with pytest.raises(ValueError, match="backoff_ratio"):
        AIMD(1, 10, backoff_ratio=ratio)


# --- Gradient2 (Gradient2Limit) -----------------------------------------------------------


def test_gradient2_grows_by_the_smoothed_queue_while_latency_holds() -> None:
    limit = Gradient2(1, 100, initial=10)
    # 10 * 1.0 + 4 smoothed by 0.2: 10.8, then 11.64, 12.51...
    assert [limit.on_sample(0.0, 0.01, 10, False) for _ in range(3)] == [10, 11, 12]
    assert limit.long_rtt == pytest.approx(0.01)


def test_gradient2_shrinks_by_at_most_half_a_gradient_on_an_outlier() -> None:
    limit = Gradient2(1, 100, initial=50)
    for _ in range(10):
        limit.on_sample(0.0, 0.01, 50, False)
    before = limit._estimate
    # 100x slower: the gradient is clamped at 0.5, the estimate moves a fifth of the way.
    after = limit.on_sample(0.0, 1.0, 50, False)
    assert after == int(before * (1 - 0.2) + (before * 0.5 + 4) * 0.2)


def test_gradient2_does_not_grow_while_the_caller_is_the_bottleneck() -> None:
    limit = Gradient2(1, 100, initial=40)
    for _ in range(50):
        assert limit.on_sample(0.0, 0.01, in_flight=19, dropped=False) == 40


def test_gradient2_forgets_a_slow_past_faster_than_its_average_would() -> None:
    limit = Gradient2(1, 100, initial=10)
    for _ in range(20):
        limit.on_sample(0.0, 0.1, 10, False)
    assert limit.long_rtt == pytest.approx(0.1)
    limit.on_sample(0.0, 0.01, 10, False)  # recovered: long over twice the latest, cut 10 %
    expected = (0.1 + (0.01 - 0.1) * 2 / 601) * 0.9
    assert limit.long_rtt == pytest.approx(expected)


# --- Vegas (VegasLimit) -------------------------------------------------------------------


def test_vegas_moves_by_the_queue_it_estimates_from_the_minimum_latency() -> None:
    vegas = Vegas(1, 1000, initial=10, rng=random.Random(0))
    assert vegas.on_sample(0.0, 0.010, 10, False) == 10  # the first latency: the minimum
    assert vegas.rtt_noload == 0.010
    assert vegas.on_sample(0.0, 0.010, 10, False) == 16  # no queue: + 6 * log10(10)
    # queue = ceil(16 * (1 - 10/12)) = 3 < alpha = 3 * log10(16) = 3? no: 3 is not < 3,
    # and not > beta = 6: the sweet spot, unchanged.
    assert vegas.on_sample(0.0, 0.012, 16, False) == 16
    assert vegas.on_sample(0.0, 0.011, 16, False) == 17  # queue 2: under alpha, + 1
    assert vegas.on_sample(0.0, 0.030, 17, False) == 16  # queue 12 > beta: - 1
    assert vegas.on_sample(0.0, 0.011, 16, True) == 15  # a drop: - 1
    assert vegas.on_sample(0.0, 0.011, 7, False) == 15  # under half in flight: unchanged
    assert vegas.on_sample(0.0, 0.0, 15, True) == 14  # a refusal: a drop, no latency


def test_vegas_probes_for_a_new_minimum_about_every_thirty_limits_of_samples() -> None:
    vegas = Vegas(1, 1000, initial=10, probe_multiplier=30, rng=random.Random(0))
    vegas.on_sample(0.0, 0.010, 10, False)
    samples = 0
    while vegas.rtt_noload == 0.010:
        vegas.on_sample(0.0, 0.050, 1, False)  # slower for good; under half in flight
        samples += 1
    assert vegas.rtt_noload == 0.050
    assert 0.5 * 30 * 10 <= samples + 1 <= 30 * 10


# --- Windowed (WindowedLimit) -------------------------------------------------------------


class Recorder:
    """A delegate that keeps what it is told."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, int, bool]] = []

    @property
    def limit(self) -> int:
        return 7

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        self.samples.append((start, rtt, in_flight, dropped))
        return 7


def test_windowed_tells_its_delegate_each_windows_mean_peak_and_drops() -> None:
    recorder = Recorder()
    window = Windowed(recorder, min_window=0.1, max_window=1.0, min_samples=10)
    for i in range(10):  # ten calls ending 0.01 .. 0.065: not yet a window's length
        window.on_sample(i / 200, 0.01 * (1 + i % 2), in_flight=3 + i, dropped=i == 4)
    assert recorder.samples == []
    window.on_sample(0.1, 0.01, in_flight=2, dropped=False)  # ends 0.1 after the first
    ((_, mean, peak, dropped),) = recorder.samples
    assert mean == pytest.approx((5 * 0.01 + 5 * 0.02 + 0.01) / 11)
    assert (peak, dropped) == (12, True)


def test_windowed_closes_a_thin_window_at_its_longest_so_a_limit_of_one_still_moves() -> None:
    recorder = Recorder()
    window = Windowed(recorder, min_window=0.1, max_window=1.0, min_samples=10)
    for i in range(5):  # a 0.3 s dependency one call at a time: 5 calls a window at most
        window.on_sample(i * 0.3, 0.3, in_flight=1, dropped=False)
    assert len(recorder.samples) == 1
    assert recorder.samples[0][1] == pytest.approx(0.3)


def test_windowed_counts_a_refusal_as_a_drop_not_as_a_latency() -> None:
    recorder = Recorder()
    window = Windowed(recorder, min_window=0.0, max_window=1.0, min_samples=2)
    window.on_sample(0.0, 0.0, in_flight=5, dropped=True)
    window.on_sample(0.0, 0.02, in_flight=1, dropped=False)
    window.on_sample(0.05, 0.04, in_flight=1, dropped=False)  # two fastest calls later
    ((_, mean, peak, dropped),) = recorder.samples
    assert (mean, peak, dropped) == (pytest.approx(0.03), 1, True)


# --- Convergence on the simulated dependency (capacity 4, latency x (n/4)^2 past it) ------


@pytest.mark.parametrize("name", ["gradient2", "vegas"])
def test_a_latency_algorithm_settles_near_the_capacity_and_serves_more_than_no_limit(
    name: str,
) -> None:
    unlimited = simulate(None)
    adaptive = simulate(algorithm_for(name, 1, 200))
    settled = adaptive.limits_between(2.0, 3.0)
    assert min(settled) >= 4, settled[::20]
    assert max(settled) <= 12, settled[::20]
    assert adaptive.goodput >= 3 * unlimited.goodput
    assert adaptive.p99 <= unlimited.p99 / 4


def test_the_window_keeps_gradient2_from_swinging_with_single_latencies() -> None:
    # Why algorithm_for puts gradient2 behind a window (as concurrency-limits' README does).
    bare = simulate(Gradient2(1, 200), seconds=10.0).limits_between(5.0, 10.0)
    windowed = simulate(algorithm_for("gradient2", 1, 200), seconds=10.0)
    settled = windowed.limits_between(5.0, 10.0)
    assert max(settled) - min(settled) <= 3
    assert max(bare) - min(bare) >= 3 * (max(settled) - min(settled) + 1)
    assert max(settled) < max(bare)


def test_aimd_keeps_most_calls_inside_their_timeout_when_overload_times_them_out() -> None:
    deadline = 0.02  # four times the unloaded latency: past 8 in flight, calls time out
    unlimited = simulate(None, deadline=deadline)
    adaptive = simulate(algorithm_for("aimd", 1, 200), deadline=deadline)
    assert unlimited.dropped > 5 * len(unlimited.latencies)  # almost everything times out
    assert adaptive.goodput >= 5 * unlimited.goodput
    assert adaptive.dropped < len(adaptive.latencies)
    assert max(adaptive.limits_between(1.0, 3.0)) <= 40


@pytest.mark.parametrize("name", ["gradient2", "vegas"])
def test_the_limit_follows_a_dependency_whose_capacity_halves_then_doubles(name: str) -> None:
    def capacity(now: float) -> float:
        return 8.0 if now < 5 or now >= 10 else 4.0

    run = simulate(algorithm_for(name, 1, 200), seconds=15.0, capacity=capacity)
    wide, narrow, wide_again = (
        sum(limits) / len(limits)
        for limits in (
            run.limits_between(4.0, 5.0),
            run.limits_between(9.0, 10.0),
            run.limits_between(14.0, 15.0),
        )
    )
    assert narrow < wide - 1, (wide, narrow)
    assert wide_again > narrow + 1, (narrow, wide_again)


def test_a_dependency_the_caller_never_loads_keeps_the_limit_where_it_is() -> None:
    # Two callers against a capacity of 4: the limit may not run away to the maximum.
    for name in NAMES:
        run = simulate(algorithm_for(name, 1, 200), clients=2)
        assert max(run.limits_between(0.0, 3.0)) <= 8, name


# --- Any samples: the limit stays within its bounds -----------------------------------------

rtts = st.one_of(
    st.floats(min_value=0.0, max_value=10.0),
    st.floats(allow_nan=True, allow_infinity=True),
)
samples = st.lists(
    st.tuples(
        st.floats(min_value=-1e6, max_value=1e6),
        rtts,
        st.integers(min_value=0, max_value=10_000),
        st.booleans(),
    ),
    max_size=200,
)


def _made(name: str, minimum: int, maximum: int, initial: int | None) -> LimitAlgorithm:
    if name == "gradient2-bare":
        return Gradient2(minimum, maximum, initial)
    if name == "vegas-bare":
        return Vegas(minimum, maximum, initial, rng=random.Random(0))
    return algorithm_for(name, minimum, maximum, initial=initial)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from([*NAMES, "gradient2-bare", "vegas-bare"]),
    minimum=st.integers(min_value=1, max_value=50),
    span=st.integers(min_value=0, max_value=500),
    initial=st.none() | st.integers(min_value=-10, max_value=1000),
    fed=samples,
)
def test_the_limit_stays_within_its_bounds_for_any_samples(
    name: str,
    minimum: int,
    span: int,
    initial: int | None,
    fed: list[tuple[float, float, int, bool]],
) -> None:
    maximum = minimum + span
    algorithm = _made(name, minimum, maximum, initial)
    assert minimum <= algorithm.limit <= maximum
    for start, rtt, in_flight, dropped in fed:
        answered = algorithm.on_sample(start, rtt, in_flight, dropped)
        assert answered == algorithm.limit
        assert isinstance(answered, int)
        assert minimum <= answered <= maximum
    assert not math.isnan(float(algorithm.limit))


@settings(max_examples=100, deadline=None)
@given(initial=st.integers(min_value=1, max_value=1000), fed=samples)
def test_one_sample_moves_each_limit_by_at_most_its_step(
    initial: int, fed: list[tuple[float, float, int, bool]]
) -> None:
    """AIMD: up one, down a tenth; Gradient2: a tenth of the limit plus the smoothed
    queue (the gradient's clamp at 0.5); Vegas: 6 log10 steps up, one down."""
    aimd = AIMD(1, 1000, initial)
    gradient2 = Gradient2(1, 1000, initial)
    vegas = Vegas(1, 1000, initial, rng=random.Random(0))
    for start, rtt, in_flight, dropped in fed:
        before = aimd.limit
        after = aimd.on_sample(start, rtt, in_flight, dropped)
        assert max(1, math.floor(before * 0.9)) <= after <= before + 1
        before = gradient2.limit
        after = gradient2.on_sample(start, rtt, in_flight, dropped)
        assert abs(after - before) <= 0.1 * before + 0.8 + 1
        before = vegas.limit
        after = vegas.on_sample(start, rtt, in_flight, dropped)
        step = max(1, int(math.log10(before))) if before < 1000 else int(math.sqrt(before))
        assert before - step - 1 <= after <= before + 6 * step + 1
