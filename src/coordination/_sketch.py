"""``LatencySketch``: a log-bucketed latency histogram with bounded relative error.

It is a DDSketch-style sketch (Masson, Rim & Lee, VLDB 2019): bucket ``k`` holds the values
in ``[MIN_VALUE·γ^k, MIN_VALUE·γ^(k+1))`` with ``γ = (1+α)/(1-α)``, and a quantile is
answered by the bucket's relative midpoint, which is within ``α`` of every value in it.
Buckets are kept in one dense ``array('q')`` that spans only the indexes seen so far (grown
in chunks), so an operation whose latencies range over 50 µs..500 ms needs about 4 KB however
many values it records, and no sketch ever exceeds ``MAX_INDEX`` buckets (~13 KB).

Why not the ``ddsketch`` or ``hdrhistogram`` packages: both are pure Python on the insert
path and spend several method calls per value (about 1-2 µs), more than this library's whole
per-operation budget (0.5 µs). Here values are inserted in batches (``add_many``), sorted
once, and counted one *bucket* at a time with ``bisect``, so a batch of similar latencies
costs well under 100 ns per value.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate
from operator import add

__all__ = ["MAX_VALUE", "MIN_VALUE", "RELATIVE_ACCURACY", "LatencySketch"]

# Just under 1 %: float rounding at a bucket's edge can then never push an estimate past
# the promised 1 %.
RELATIVE_ACCURACY = 0.0099
MIN_VALUE = 1e-9  # seconds; smaller values (and zero) are counted as 0
MAX_VALUE = 1e5  # seconds; larger values share the top bucket

_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LN_GAMMA = 1 / math.log(_GAMMA)
_INV_MIN = 1 / MIN_VALUE
_MIDPOINT = 2 * _GAMMA / (1 + _GAMMA)  # bucket's lower edge × this = its estimate
MAX_INDEX = int(math.log(MAX_VALUE * _INV_MIN) * _INV_LN_GAMMA)
_CHUNK = 64  # the dense store grows by whole chunks, so its size settles quickly
# _LOWER[k] is bucket k's lower edge; one entry more than buckets, for the top's upper edge.
_LOWER = [MIN_VALUE * _GAMMA**k for k in range(MAX_INDEX + 2)]
_ESTIMATE = [edge * _MIDPOINT for edge in _LOWER]


def bucket_index(value: float) -> int:
    """The bucket of a value ``>= MIN_VALUE`` (clamped to ``MAX_INDEX``)."""
    return min(int(math.log(value * _INV_MIN) * _INV_LN_GAMMA), MAX_INDEX)


class LatencySketch:
    """Counts of durations (seconds) in log-spaced buckets; quantiles within 1 %.

    >>> sketch = LatencySketch()
    >>> sketch.add_many([0.010, 0.020, 0.030, 0.040])
    >>> abs(sketch.quantile(0.5) - 0.020) / 0.020 <= 0.01
    True
    """

    __slots__ = ("_counts", "_offset", "count", "zero_count")

    def __init__(self) -> None:
        self._counts = array("q")
        self._offset = 0  # bucket index of _counts[0]
        self.count = 0  # every value added, zero bucket included
        self.zero_count = 0  # values below MIN_VALUE

    # --- adding --------------------------------------------------------------------

    def add(self, value: float) -> None:
        """Count one duration in seconds (``value >= 0``; not checked here: hot path)."""
        self.count += 1
        if value < MIN_VALUE:
            self.zero_count += 1
            return
        self._bump(bucket_index(value), 1)

    def add_many(self, values: list[float]) -> None:
        """Count a batch of durations. Sorts ``values`` in place (the caller's scratch list)."""
        values.sort()
        self.add_sorted(values)

    def add_sorted(self, values: Sequence[float]) -> None:
        """Count a batch of durations already in ascending order."""
        n = len(values)
        if not n:
            return
        self.count += n
        i = 0
        if values[0] < MIN_VALUE:
            i = bisect_left(values, MIN_VALUE)
            self.zero_count += i
        lower, log = _LOWER, math.log
        counts, offset = self._counts, self._offset
        while i < n:
            # bucket_index, inlined: this loop runs once per bucket of every flushed batch
            k = int(log(values[i] * _INV_MIN) * _INV_LN_GAMMA)
            if k >= MAX_INDEX:
                k, j = MAX_INDEX, n
            else:
                # Everything below the next bucket's edge shares bucket k: one bisect per
                # bucket. Searching from i + 1 always moves on, even when float rounding put
                # values[i] itself at that edge.
                j = bisect_left(values, lower[k + 1], i + 1)
            if 0 <= k - offset < len(counts):
                counts[k - offset] += j - i
            else:
                self._bump(k, j - i)
                counts, offset = self._counts, self._offset
            i = j

    def merge(self, other: LatencySketch) -> None:
        """Add every count of ``other`` to this sketch."""
        self.count += other.count
        self.zero_count += other.zero_count
        theirs = other._counts
        if not theirs:
            return
        low, high = other._offset, other._offset + len(theirs)
        mine = self._counts
        if not mine or low < self._offset or high > self._offset + len(mine):
            self._grow_to(low)
            self._grow_to(high - 1)
            mine = self._counts
        start = low - self._offset
        # Element-wise in C: merging is what every report and snapshot does, per slot.
        mine[start : start + len(theirs)] = array("q", map(add, mine[start:], theirs))

    def clear(self) -> None:
        """Forget every value, keeping the allocated buckets for reuse."""
        counts = self._counts
        for i in range(len(counts)):
            counts[i] = 0
        self.count = 0
        self.zero_count = 0

    def copy(self) -> LatencySketch:
        """An independent sketch with the same counts."""
        twin = LatencySketch()
        twin._counts = array("q", self._counts)
        twin._offset = self._offset
        twin.count = self.count
        twin.zero_count = self.zero_count
        return twin

    def _bump(self, k: int, n: int) -> None:
        i = k - self._offset
        counts = self._counts
        if 0 <= i < len(counts):
            counts[i] += n
            return
        self._grow_to(k)
        self._counts[k - self._offset] += n

    def _grow_to(self, k: int) -> None:
        counts = self._counts
        if counts:
            low = min(self._offset, k)
            high = max(self._offset + len(counts), k + 1)
        else:
            low, high = k, k + 1
        low = low // _CHUNK * _CHUNK
        high = min(-(-high // _CHUNK) * _CHUNK, MAX_INDEX + 1)
        grown = array("q", bytes(8 * (high - low)))
        start = self._offset - low
        grown[start : start + len(counts)] = counts
        self._counts = grown
        self._offset = low

    # --- reading -------------------------------------------------------------------

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0 ≤ q ≤ 1) in seconds; 0.0 when the sketch is empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Several quantiles in one pass. Each is the value of rank ``⌊q·(count-1)⌋``
        (the lower one, as ``sorted(values)[int(q * (len(values) - 1))]``), within 1 %."""
        for q in qs:
            if not (isinstance(q, int | float) and 0.0 <= q <= 1.0):
                raise ValueError(f"quantile must be a number between 0 and 1, got {q!r}")
        if not self.count:
            return [0.0] * len(qs)
        cumulative = list(accumulate(self._counts))  # in C: reports read many sketches
        answers = []
        for q in qs:
            rank = int(q * (self.count - 1)) - self.zero_count
            if rank < 0:
                answers.append(0.0)  # the rank falls among the values counted as 0
            else:
                answers.append(_ESTIMATE[self._offset + bisect_right(cumulative, rank)])
        return answers

    def cumulative_counts(self, bounds: Iterable[float]) -> list[int]:
        """For each upper bound (seconds, ascending), how many values are ``<= bound``.

        What a Prometheus histogram's ``le`` buckets need; a value is placed by its bucket's
        estimate, so a value within 1 % of a bound may land on either side of it.
        """
        edges = list(bounds)
        if any(b > a for a, b in zip(edges[1:], edges, strict=False)):
            raise ValueError(f"bucket bounds must be ascending, got {edges!r}")
        result = []
        cumulative = self.zero_count
        offset = self._offset
        counts = self._counts
        i = 0
        for bound in edges:
            while i < len(counts) and _ESTIMATE[offset + i] <= bound:
                cumulative += counts[i]
                i += 1
            result.append(cumulative if bound >= 0 else 0)
        return result

    def memory_bytes(self) -> int:
        """Bytes held by this sketch (the object and its bucket array)."""
        return sys.getsizeof(self) + sys.getsizeof(self._counts)

    def __repr__(self) -> str:
        return f"LatencySketch(count={self.count}, buckets={len(self._counts)})"
