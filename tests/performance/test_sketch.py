"""LatencySketch: quantiles within 1 % of the exact order statistic, bounded memory."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination._sketch import MAX_VALUE, MIN_VALUE
from coordination.performance import LatencySketch

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def draw(kind: str, rng: random.Random, n: int) -> list[float]:
    """n latencies (seconds) from one of several shapes seen in practice."""
    if kind == "lognormal":
        return [rng.lognormvariate(-5, 1.5) for _ in range(n)]
    if kind == "exponential":
        return [rng.expovariate(200) for _ in range(n)]
    if kind == "uniform":
        return [rng.uniform(1e-4, 2.0) for _ in range(n)]
    if kind == "pareto":
        return [1e-3 * rng.paretovariate(1.2) for _ in range(n)]
    if kind == "bimodal":  # a cache: fast hits, slow misses
        return [
            rng.gauss(2e-4, 2e-5) if rng.random() < 0.9 else rng.gauss(0.3, 0.05) for _ in range(n)
        ]
    # tight: nearly constant, the hard case for bucket edges
    return [0.0123 * (1 + rng.uniform(-1e-6, 1e-6)) for _ in range(n)]


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def assert_within_one_percent(estimate: float, truth: float) -> None:
    assert abs(estimate - truth) <= 0.01 * truth, (estimate, truth)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["lognormal", "exponential", "uniform", "pareto", "bimodal", "tight"]),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    batched=st.booleans(),
)
def test_quantiles_are_within_one_percent(kind: str, seed: int, n: int, batched: bool) -> None:
    values = [min(max(v, MIN_VALUE), MAX_VALUE) for v in draw(kind, random.Random(seed), n)]
    sketch = LatencySketch()
    if batched:
        sketch.add_many(list(values))
    else:
        for v in values:
            sketch.add(v)
    assert sketch.count == n
    for q, estimate in zip(QUANTILES, sketch.quantiles(QUANTILES), strict=True):
        assert_within_one_percent(estimate, exact(values, q))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=MIN_VALUE, max_value=MAX_VALUE), min_size=1, max_size=500))
def test_any_values_in_range(values: list[float]) -> None:
    sketch = LatencySketch()
    sketch.add_many(list(values))
    for q in QUANTILES:
        assert_within_one_percent(sketch.quantile(q), exact(values, q))


def test_batched_and_single_inserts_agree() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-6, 2) for _ in range(5000)]
    one, many = LatencySketch(), LatencySketch()
    for v in values:
        one.add(v)
    many.add_many(list(values))
    assert one.quantiles(QUANTILES) == many.quantiles(QUANTILES)


def test_merge_equals_adding_everything() -> None:
    rng = random.Random(3)
    a_values = [rng.expovariate(50) for _ in range(1000)]
    b_values = [rng.expovariate(5) for _ in range(1000)]
    a, b, both = LatencySketch(), LatencySketch(), LatencySketch()
    a.add_many(list(a_values))
    b.add_many(list(b_values))
    both.add_many(a_values + b_values)
    a.merge(b)
    assert a.count == 2000
    assert a.quantiles(QUANTILES) == both.quantiles(QUANTILES)


def test_zero_and_tiny_values_count_as_zero() -> None:
    sketch = LatencySketch()
    sketch.add_many([0.0, 1e-12, 0.5])
    assert sketch.zero_count == 2
    assert sketch.quantile(0.0) == 0.0
    assert_within_one_percent(sketch.quantile(1.0), 0.5)


def test_huge_values_share_the_top_bucket() -> None:
    sketch = LatencySketch()
    sketch.add(1e9)
    sketch.add_many([1e8, 1e7])
    assert sketch.count == 3
    assert sketch.quantile(1.0) == pytest.approx(MAX_VALUE, rel=0.011)


def test_empty_sketch_answers_zero() -> None:
    assert LatencySketch().quantiles((0.5, 0.99)) == [0.0, 0.0]


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan"), "0.5"])
def test_bad_quantile_is_named(q: object) -> None:
    with pytest.raises(ValueError, match="quantile must be a number between 0 and 1"):
        LatencySketch().quantile(q)  # type: ignore[arg-type]


def test_cumulative_counts_for_histogram_buckets() -> None:
    sketch = LatencySketch()
    sketch.add_many([0.001] * 5 + [0.01] * 3 + [0.1] * 2)
    assert sketch.cumulative_counts([0.0005, 0.002, 0.02, 0.2, float("inf")]) == [0, 5, 8, 10, 10]
    with pytest.raises(ValueError, match="ascending"):
        sketch.cumulative_counts([0.1, 0.01])


def test_clear_keeps_the_allocation_and_forgets_the_counts() -> None:
    sketch = LatencySketch()
    sketch.add_many([0.01, 0.02, 0.03])
    size = sketch.memory_bytes()
    sketch.clear()
    assert sketch.count == 0
    assert sketch.quantile(0.5) == 0.0
    assert sketch.memory_bytes() == size


def test_memory_is_bounded_by_the_value_range_not_the_count() -> None:
    rng = random.Random(11)
    sketch = LatencySketch()
    sketch.add_many([5e-5, 2.0])  # the range's ends, so the dense store has its final span
    sketch.add_many([rng.uniform(5e-5, 2.0) for _ in range(10_000)])
    after_ten_thousand = sketch.memory_bytes()
    for _ in range(20):
        sketch.add_many([rng.uniform(5e-5, 2.0) for _ in range(50_000)])
    assert sketch.count == 1_010_002
    assert sketch.memory_bytes() == after_ten_thousand
    widest = LatencySketch()
    widest.add_many([MIN_VALUE, MAX_VALUE])
    assert widest.memory_bytes() < 16_000  # no sketch ever holds more buckets than this


def test_a_batch_on_bucket_edges_counts_like_single_inserts() -> None:
    """Values exactly on (and one float step around) bucket edges: the batch path, which
    finds each bucket's end by bisecting at the next edge, agrees with adding one by one."""
    import math

    from coordination._sketch import _LOWER

    values = []
    for edge in _LOWER[100:2000:37]:
        values += [math.nextafter(edge, 0.0), edge, math.nextafter(edge, math.inf)]
    one, many = LatencySketch(), LatencySketch()
    for v in values:
        one.add(v)
    many.add_many(list(values))
    assert many.count == one.count == len(values)
    assert many.quantiles(QUANTILES) == one.quantiles(QUANTILES)
    assert many.cumulative_counts(_LOWER[100:2000:50]) == one.cumulative_counts(_LOWER[100:2000:50])
