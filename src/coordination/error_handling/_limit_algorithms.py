"""How an adaptive concurrency limit moves: the algorithms of ``concurrency_algorithm``.

Each follows Netflix's concurrency-limits (``Gradient2Limit``, ``VegasLimit``,
``AIMDLimit``): it is told every call's sample (when it started, how long it took, how
many calls were in flight, whether it was dropped: failed as an overload, timed out or
was refused) and answers the new limit, always within ``[minimum, maximum]``. An
algorithm is not thread-safe on its own: the limiter that owns it feeds it one sample at
a time.

>>> limit = algorithm_for("vegas", 1, 50)
>>> limit.on_sample(0.0, 0.010, in_flight=limit.limit, dropped=False) <= 50
True
"""

from __future__ import annotations

import math
import random
from typing import Protocol

from .._errors import ConfigError
from .._settings import CONCURRENCY_ALGORITHMS

__all__ = ["AIMD", "Gradient2", "LimitAlgorithm", "Vegas", "Windowed", "algorithm_for"]


class LimitAlgorithm(Protocol):
    """An adaptive limit: ``limit`` now, and ``on_sample`` to move it."""

    @property
    def limit(self) -> int: ...

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        """One call's sample: its ``start`` (the clock), ``rtt`` (seconds), the calls
        ``in_flight`` when it started (itself included), and whether it was ``dropped``;
        the new limit. A latency that is not a positive finite number (a refusal answered
        at once, a test's clock standing still, a clock gone backwards) tells the latency
        algorithms nothing but its drop."""
        ...


def _bounds(minimum: int, maximum: int) -> None:
    if not 1 <= minimum <= maximum:
        raise ValueError(f"expected 1 <= minimum ({minimum}) <= maximum ({maximum})")


def _start(minimum: int, maximum: int, initial: int | None) -> int:
    """Where a limit starts: ``initial`` (or the minimum) within the bounds."""
    return min(maximum, max(minimum, minimum if initial is None else initial))


class AIMD:
    """concurrency-limits' ``AIMDLimit``: additive increase, multiplicative decrease. One
    more while the limit is in use (at least half of it in flight); ``backoff_ratio`` of
    it (and at least one less) after a drop or a call slower than ``timeout`` (5 s, as
    there).

    It reacts to failures only, not to latency below ``timeout``: use it where the
    dependency says no (timeouts, overload errors) rather than slowing down.
    """

    __slots__ = ("_limit", "backoff_ratio", "maximum", "minimum", "timeout")

    def __init__(
        self,
        minimum: int,
        maximum: int,
        initial: int | None = None,
        *,
        backoff_ratio: float = 0.9,
        timeout: float = 5.0,
    ) -> None:
        _bounds(minimum, maximum)
        if not 0.5 <= backoff_ratio < 1:
            raise ValueError(f"backoff_ratio must be in [0.5, 1), not {backoff_ratio}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.minimum = minimum
        self.maximum = maximum
        self.backoff_ratio = backoff_ratio
        self.timeout = timeout
        self._limit = _start(minimum, maximum, initial)

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        limit = self._limit
        # A latency that is no number (NaN, infinite: a broken clock) is not a slow call;
        # the call's success still counts, as it does whatever its latency.
        if dropped or self.timeout < rtt < math.inf:
            # floor(limit * ratio) < limit for any ratio < 1: a drop takes one off.
            limit = max(self.minimum, math.floor(limit * self.backoff_ratio))
        elif in_flight * 2 >= limit:
            limit = min(self.maximum, limit + 1)
        self._limit = limit
        return limit


class _ExpAverage:
    """concurrency-limits' ``ExpAvgMeasurement``: the plain mean of the first ``warmup``
    samples, then an exponential average over about ``window`` samples."""

    __slots__ = ("count", "factor", "value", "warmup")

    def __init__(self, window: int, warmup: int) -> None:
        self.factor = 2.0 / (window + 1)
        self.warmup = warmup
        self.count = 0
        self.value = 0.0

    def add(self, sample: float) -> float:
        if self.count < self.warmup:
            self.count += 1
            self.value += (sample - self.value) / self.count
        else:
            self.value += (sample - self.value) * self.factor
        return self.value


class Gradient2:
    """concurrency-limits' ``Gradient2Limit``: the limit follows the ratio of a long-term
    average latency to the latest one.

    Each sample: ``gradient = clamp(long_rtt / rtt, 0.5, 1)``, the estimate becomes
    ``limit * gradient + queue_size``, smoothed (``smoothing`` of the new estimate). The
    long-term average is exponential over ``long_window`` samples, and cut by a tenth
    whenever it is over twice the latest latency (the dependency recovered: don't wait
    for the average to forget the bad minutes). While fewer than half of the limit are in
    flight the caller, not the dependency, is the bottleneck: the limit stays.

    Unlike Vegas it measures against an average, not the minimum: bursty calls of mixed
    sizes don't drag it down to an unrealistically fast baseline.
    """

    __slots__ = (
        "_estimate",
        "_limit",
        "_long_rtt",
        "maximum",
        "minimum",
        "queue_size",
        "smoothing",
    )

    def __init__(
        self,
        minimum: int,
        maximum: int,
        initial: int | None = None,
        *,
        queue_size: int = 4,
        smoothing: float = 0.2,
        long_window: int = 600,
    ) -> None:
        _bounds(minimum, maximum)
        if queue_size < 0:
            raise ValueError(f"queue_size must be at least 0, not {queue_size}")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], not {smoothing}")
        if long_window < 1:
            raise ValueError(f"long_window must be at least 1, not {long_window}")
        self.minimum = minimum
        self.maximum = maximum
        self.queue_size = queue_size
        self.smoothing = smoothing
        self._long_rtt = _ExpAverage(long_window, warmup=10)
        self._limit = _start(minimum, maximum, initial)
        self._estimate = float(self._limit)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def long_rtt(self) -> float:
        """The long-term average latency (seconds) the latest samples are compared with."""
        return self._long_rtt.value

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        if not 0 < rtt < math.inf:  # a refusal (no latency) or a broken clock: no evidence
            return self._limit
        long_rtt = self._long_rtt.add(rtt)
        if long_rtt > 2 * rtt:
            self._long_rtt.value = long_rtt = long_rtt * 0.9
        estimate = self._estimate
        if in_flight * 2 < estimate:
            return self._limit
        gradient = long_rtt / rtt
        if gradient > 1.0:
            gradient = 1.0
        elif gradient < 0.5:  # also NaN-proof: rtt and long_rtt are finite and positive
            gradient = 0.5
        target = estimate * gradient + self.queue_size
        estimate += (target - estimate) * self.smoothing
        if estimate > self.maximum:
            estimate = self.maximum
        elif estimate < self.minimum:
            estimate = self.minimum
        self._estimate = estimate
        self._limit = limit = int(estimate)
        return limit


def _log10_root(limit: float) -> int:
    """concurrency-limits' ``Log10RootFunction``: log10 of the limit, at least 1 (the
    square root from 1000 on), the step Vegas's thresholds and moves grow by."""
    if limit < 1000:
        return max(1, int(math.log10(limit))) if limit >= 1 else 1
    return int(math.sqrt(limit))


class Vegas:
    """concurrency-limits' ``VegasLimit`` (TCP Vegas): the queue a limit builds is
    estimated from the minimum latency seen, ``queue = ceil(limit * (1 - rtt_min / rtt))``.

    No queue (at most ``log10(limit)``): grow by ``beta``; a small one (under ``alpha``):
    grow by ``log10(limit)``; over ``beta``: shrink by ``log10(limit)``; a drop shrinks it
    too. ``alpha = 3 * log10(limit)``, ``beta = 6 * log10(limit)``. Every
    ``probe_multiplier * limit`` samples or so (jittered) the minimum is forgotten and
    measured again, so a dependency that got slower for good is not mistaken for a queue
    forever. While fewer than half of the limit are in flight the limit stays.
    """

    __slots__ = (
        "_estimate",
        "_probe_count",
        "_probe_jitter",
        "_random",
        "maximum",
        "minimum",
        "probe_multiplier",
        "rtt_noload",
        "smoothing",
    )

    def __init__(
        self,
        minimum: int,
        maximum: int,
        initial: int | None = None,
        *,
        smoothing: float = 1.0,
        probe_multiplier: int = 30,
        rng: random.Random | None = None,
    ) -> None:
        _bounds(minimum, maximum)
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], not {smoothing}")
        if probe_multiplier < 1:
            raise ValueError(f"probe_multiplier must be at least 1, not {probe_multiplier}")
        self.minimum = minimum
        self.maximum = maximum
        self.smoothing = smoothing
        self.probe_multiplier = probe_multiplier
        self.rtt_noload = 0.0  # the minimum latency seen since the last probe; 0: none yet
        self._random = rng if rng is not None else random.Random()
        self._estimate = float(_start(minimum, maximum, initial))
        self._probe_count = 0
        self._probe_jitter = self._random.uniform(0.5, 1.0)

    @property
    def limit(self) -> int:
        return int(self._estimate)

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        estimate = self._estimate
        if not 0 < rtt < math.inf:  # a refusal or a broken clock: a drop, no latency
            return self._set(estimate - _log10_root(estimate)) if dropped else int(estimate)
        self._probe_count += 1
        if self._probe_jitter * self.probe_multiplier * estimate <= self._probe_count:
            self._probe_jitter = self._random.uniform(0.5, 1.0)
            self._probe_count = 0
            self.rtt_noload = rtt
            return int(estimate)
        if self.rtt_noload == 0 or rtt < self.rtt_noload:
            self.rtt_noload = rtt
            return int(estimate)
        if dropped:
            return self._set(estimate - _log10_root(estimate))
        if in_flight * 2 < estimate:
            return int(estimate)
        queue = math.ceil(estimate * (1 - self.rtt_noload / rtt))
        step = _log10_root(estimate)
        if queue <= step:
            return self._set(estimate + 6 * step)
        if queue < 3 * step:
            return self._set(estimate + step)
        if queue > 6 * step:
            return self._set(estimate - step)
        return int(estimate)

    def _set(self, target: float) -> int:
        target = max(self.minimum, min(self.maximum, target))
        estimate = self._estimate + (target - self._estimate) * self.smoothing
        self._estimate = estimate = max(self.minimum, min(self.maximum, estimate))
        return int(estimate)


def algorithm_for(
    name: str, minimum: int, maximum: int, *, initial: int | None = None
) -> LimitAlgorithm:
    """The ``concurrency_algorithm`` called ``name``, moving within ``[minimum, maximum]``
    and starting at ``initial`` (default: ``minimum``, climbing from there while latency
    stays at its baseline, so the first latencies it learns are the unloaded ones).

    >>> algorithm_for("gradient2", 1, 200).limit
    1
    """
    if name not in CONCURRENCY_ALGORITHMS:
        raise ConfigError(
            f"invalid concurrency_algorithm = {name!r}: expected one of "
            f"{', '.join(CONCURRENCY_ALGORITHMS)}",
            field="concurrency_algorithm",
            value=name,
        )
    for field, value in (("min_concurrency", minimum), ("max_concurrency", maximum)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"invalid {field} = {value!r}: expected an integer of at least 1",
                field=field,
                value=value,
            )
    if minimum > maximum:
        raise ConfigError(
            f"invalid min_concurrency = {minimum}: above max_concurrency = {maximum}",
            field="min_concurrency",
            value=minimum,
        )
    if name == "gradient2":
        return Windowed(Gradient2(minimum, maximum, initial))
    if name == "vegas":
        return Windowed(Vegas(minimum, maximum, initial))
    return AIMD(minimum, maximum, initial)


class Windowed:
    """concurrency-limits' ``WindowedLimit``: samples gathered over a window, the
    ``delegate`` told one sample per window (the window's mean latency, its most calls in
    flight, whether any was dropped). The window closes ``2 x`` its fastest call after it
    opened, within ``[min_window, max_window]`` seconds, and counts only with at least
    ``min_samples``: averaging a window's calls takes the noise out of single latencies."""

    __slots__ = (
        "_count",
        "_dropped",
        "_limit",
        "_max_in_flight",
        "_min_rtt",
        "_opened",
        "_sum",
        "delegate",
        "max_window",
        "min_samples",
        "min_window",
    )

    def __init__(
        self,
        delegate: LimitAlgorithm,
        *,
        min_window: float = 0.1,
        max_window: float = 1.0,
        min_samples: int = 10,
    ) -> None:
        if not 0 <= min_window <= max_window or not 0 < max_window < math.inf:
            raise ValueError(
                f"expected 0 <= min_window ({min_window}) <= max_window ({max_window}), finite"
            )
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, not {min_samples}")
        self.delegate = delegate
        self._limit = delegate.limit
        self.min_window = min_window
        self.max_window = max_window
        self.min_samples = min_samples
        self._reset()

    _opened: float | None

    def _reset(self) -> None:
        self._opened = None
        self._count = 0
        self._sum = 0.0
        self._min_rtt = math.inf
        self._max_in_flight = 0
        self._dropped = False

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        # Most samples only add to the window: comparisons, no calls, the limit cached.
        if not 0 < rtt < math.inf:  # a refusal (no latency) or a broken clock
            if dropped:
                self._dropped = True
            return self._limit
        self._count = count = self._count + 1
        self._sum += rtt
        if rtt < self._min_rtt:
            self._min_rtt = rtt
        if in_flight > self._max_in_flight:
            self._max_in_flight = in_flight
        if dropped:
            self._dropped = True
        end = start + rtt
        opened = self._opened
        if opened is None:
            self._opened = opened = end
        elapsed = end - opened
        # Full (enough samples, and two of its fastest calls long), or as long as a window
        # may be: a limit of 1 on a slow dependency never gathers min_samples in time.
        if elapsed < self.max_window and (
            count < self.min_samples or elapsed < self.min_window or elapsed < 2 * self._min_rtt
        ):
            return self._limit
        mean, peak, drop = self._sum / count, self._max_in_flight, self._dropped
        self._reset()
        self._limit = limit = self.delegate.on_sample(start, mean, peak, drop)
        return limit
