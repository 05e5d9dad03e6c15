"""One operation's statistics: the recording hot path and the snapshot exporters read.

The hot path (a successful, timed operation) takes no lock: it appends the duration to a
list (one C call, atomic under the GIL, so nothing is lost between threads) and every
``FLUSH_SIZE`` values — or when the current window slot ends — one caller folds the batch
into the sketch under the lock. Failures and untimed outcomes are rare and take the lock
directly. Readers flush first, so what they see is exact.

Recent statistics come from a ring of ``WINDOW_SLOTS`` slots, each a few seconds long with
its own counters and sketch; the lifetime sketch receives a slot when the ring reuses it.
Memory per operation is therefore fixed by the ring, not by traffic. A retired slot's
counts also go to the operation's activity ring (``_history``): the last 15 minutes a
status page shows from its first view, kept without touching the hot path.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .._sketch import LatencySketch
from ._history import EMPTY_HISTORY, ActivityRing, OperationHistory

__all__ = [
    "FLUSH_SIZE",
    "WINDOW_SLOTS",
    "MonitorSnapshot",
    "OperationRecorder",
    "OperationSnapshot",
    "OperationStats",
]

FLUSH_SIZE = 512  # per operation: at most 512 pending floats (~16 KB) between flushes
WINDOW_SLOTS = 6
MAX_ERROR_TYPES = 50  # per operation; more share OTHER_ERRORS
OTHER_ERRORS = "__other__"
# Rates divide by at least this many seconds, so a burst right after start-up does not
# read as a million operations per second.
_MIN_RATE_SECONDS = 1.0


class _Slot:
    """Counters and sketch of one window slot (``slot_seconds`` long)."""

    __slots__ = ("count", "failures", "sketch", "start", "total_seconds")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.failures = 0
        self.total_seconds = 0.0
        self.sketch = LatencySketch()

    def reset(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.failures = 0
        self.total_seconds = 0.0
        self.sketch.clear()


@dataclass(frozen=True, slots=True)
class OperationSnapshot:
    """A consistent snapshot of one operation, for exporters and reports (times in seconds).

    Frozen and owned by the reader: the counts are copied, ``errors_by_type`` is a
    read-only mapping and the two sketches are copies no writer touches, so a snapshot
    never changes after it is taken, whatever the monitor records meanwhile.

    ``count = successes + failures`` counts every outcome; ``timed_count`` counts those that
    came with a duration (``record_success``/``record_failure`` carry none), and
    ``total_seconds``, the quantiles and ``cumulative_counts`` cover exactly those: a
    Prometheus histogram or summary takes ``timed_count`` as ``_count`` and
    ``total_seconds`` as ``_sum``. ``recent_*`` cover the last ``window_seconds``;
    ``history`` the last 15 minutes or so, slot by slot (``history.points()``).
    """

    name: str
    count: int
    successes: int
    failures: int
    timed_count: int
    total_seconds: float
    min_seconds: float
    max_seconds: float
    errors_by_type: Mapping[str, int]
    window_seconds: float
    recent_count: int
    recent_failures: int
    recent_timed_count: int
    recent_total_seconds: float
    recent_throughput: float  # operations per second over the recent window
    sketch: LatencySketch = field(repr=False)
    recent_sketch: LatencySketch = field(repr=False)
    # the last ~15 minutes, slot by slot (a copy; points() when a reader wants them)
    history: OperationHistory = field(repr=False, default=EMPTY_HISTORY)

    def quantile(self, q: float) -> float:
        """Lifetime ``q``-quantile in seconds (within 1 %; 0.0 before any timed value).

        ``quantile(0)`` and ``quantile(1)`` are the exact minimum and maximum.
        """
        estimate = self._clamp(self.sketch.quantile(q))
        if q == 1:
            return self.max_seconds
        return self.min_seconds if q == 0 else estimate

    def recent_quantile(self, q: float) -> float:
        """``q``-quantile over the recent window, in seconds."""
        return self._clamp(self.recent_sketch.quantile(q))

    def cumulative_counts(self, bounds: tuple[float, ...] | list[float]) -> list[int]:
        """Timed values ``<=`` each bound (seconds, ascending): histogram ``le`` buckets."""
        return self.sketch.cumulative_counts(bounds)

    @property
    def error_rate(self) -> float:
        """Lifetime failures / count (0.0 before any operation)."""
        return self.failures / self.count if self.count else 0.0

    @property
    def recent_error_rate(self) -> float:
        return self.recent_failures / self.recent_count if self.recent_count else 0.0

    def _clamp(self, value: float) -> float:
        # The exact extremes are known, and every true quantile lies between them.
        if not self.timed_count:
            return 0.0
        return min(max(value, self.min_seconds), self.max_seconds)


OperationStats = OperationSnapshot  # the name before the snapshots were named for all


@dataclass(frozen=True, slots=True)
class MonitorSnapshot:
    """Everything a reader takes from a performance monitor, at one moment.

    ``operations`` maps names to ``OperationSnapshot`` (read-only); ``resources`` is the
    latest process sample (CPU, memory, threads, descriptors) while sampling has run, else
    ``None``; ``uptime_seconds`` is measured on the monitor's clock.
    """

    enabled: bool
    uptime_seconds: float
    operations: Mapping[str, OperationSnapshot]
    resources: Mapping[str, float] | None

    @property
    def mean_seconds(self) -> float | None:
        """Mean duration over every timed call of every operation (``None``: none timed)."""
        timed = sum(s.timed_count for s in self.operations.values())
        total = sum(s.total_seconds for s in self.operations.values())
        return total / timed if timed else None


class OperationRecorder:
    """The mutable statistics of one operation name. Internal: the monitor owns these."""

    __slots__ = (
        "_history",
        "_lock",
        "_on_rotate",
        "_slot_seconds",
        "_slots",
        "count",
        "created",
        "current",
        "errors_by_type",
        "failures",
        "last_error",
        "lifetime_sketch",
        "max_seconds",
        "min_seconds",
        "name",
        "pending",
        "rotate_at",
        "successes",
        "timed_count",
        "total_seconds",
    )

    def __init__(
        self,
        name: str,
        *,
        now: float,
        window_seconds: float,
        on_rotate: Callable[[OperationRecorder], None],
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.pending: list[float] = []  # successful durations not yet in a sketch
        self._slot_seconds = window_seconds / WINDOW_SLOTS
        self._slots = [_Slot(now)] + [_Slot(-math.inf) for _ in range(WINDOW_SLOTS - 1)]
        self.current = 0
        self.rotate_at = now + self._slot_seconds
        self._on_rotate = on_rotate
        self._history = ActivityRing(self._slot_seconds)
        self.created = now
        self.count = 0
        self.successes = 0
        self.failures = 0
        self.timed_count = 0
        self.total_seconds = 0.0
        self.min_seconds = math.inf
        self.max_seconds = 0.0
        self.lifetime_sketch = LatencySketch()  # slots that left the window
        self.errors_by_type: dict[str, int] = {}
        self.last_error: str | None = None

    # --- writing (callers: the timer, the decorator, the monitor) ----------------------

    def flush(self, now: float) -> None:
        """Fold pending durations into the sketches, and move the window on to ``now``."""
        with self._lock:
            self._drain()
            rotated = now >= self.rotate_at
            if rotated:
                self._rotate(now)
        if rotated:
            self._on_rotate(self)  # threshold checks, outside the lock

    def add_outcome(
        self, now: float, seconds: float | None, success: bool, error_type: str | None
    ) -> None:
        """Record one outcome that does not take the lock-free path (failures, untimed)."""
        with self._lock:
            self._drain()
            if now >= self.rotate_at:
                self._rotate(now)
            slot = self._slots[self.current]
            self.count += 1
            slot.count += 1
            if success:
                self.successes += 1
            else:
                self.failures += 1
                slot.failures += 1
                key = error_type or "Error"
                if key not in self.errors_by_type and len(self.errors_by_type) >= MAX_ERROR_TYPES:
                    key = OTHER_ERRORS
                self.errors_by_type[key] = self.errors_by_type.get(key, 0) + 1
            if seconds is not None:
                self.timed_count += 1
                self.total_seconds += seconds
                slot.total_seconds += seconds
                self.min_seconds = min(self.min_seconds, seconds)
                self.max_seconds = max(self.max_seconds, seconds)
                slot.sketch.add(seconds)

    def _drain(self) -> None:
        pending = self.pending
        n = len(pending)
        if not n:
            return
        # Two C calls, each atomic under the GIL: producers only append past these n, and
        # only the lock holder removes from the front, so nothing is lost or seen twice.
        values = pending[:n]
        del pending[:n]
        values.sort()
        slot = self._slots[self.current]
        total = sum(values)
        self.count += n
        self.successes += n
        self.timed_count += n
        self.total_seconds += total
        slot.count += n
        slot.total_seconds += total
        self.min_seconds = min(self.min_seconds, values[0])
        self.max_seconds = max(self.max_seconds, values[-1])
        slot.sketch.add_sorted(values)

    def _rotate(self, now: float) -> None:
        step = self._slot_seconds
        if now - self.rotate_at >= step * WINDOW_SLOTS:
            # Idle for longer than the whole window: every slot leaves it (oldest first,
            # for the activity ring); start afresh.
            for slot in sorted(self._slots, key=lambda s: s.start):
                self._retire(slot, -math.inf)
            self._slots[self.current].start = now
            self.rotate_at = now + step
            return
        while now >= self.rotate_at:
            self.current = (self.current + 1) % WINDOW_SLOTS
            self._retire(self._slots[self.current], self.rotate_at)
            self.rotate_at += step

    def _retire(self, slot: _Slot, start: float) -> None:
        if slot.sketch.count:
            self.lifetime_sketch.merge(slot.sketch)
        if slot.count:
            self._history.add(
                slot.start,
                slot.start + self._slot_seconds,
                count=slot.count,
                failures=slot.failures,
                timed=slot.sketch.count,
                busy=slot.total_seconds,
            )
        slot.reset(start)

    # --- reading --------------------------------------------------------------------

    def snapshot(self, now: float) -> OperationSnapshot:
        """Flush, then copy everything a report or exporter needs, under the lock."""
        self.flush(now)
        with self._lock:
            lifetime = self.lifetime_sketch.copy()
            recent = LatencySketch()
            recent_count = recent_failures = 0
            recent_total = 0.0
            oldest = now
            for slot in self._slots:
                if slot.start == -math.inf:
                    continue
                oldest = min(oldest, slot.start)
                recent.merge(slot.sketch)
                recent_count += slot.count
                recent_failures += slot.failures
                recent_total += slot.total_seconds
            lifetime.merge(recent)
            covered = now - max(oldest, self.created)
            step = self._slot_seconds
            live = sorted(
                (
                    s.start,
                    min(s.start + step, now),
                    s.count,
                    s.failures,
                    s.sketch.count,
                    s.total_seconds,
                )
                for s in self._slots
                if s.count
            )
            history = self._history.history(now, live)
            return OperationSnapshot(
                name=self.name,
                count=self.count,
                successes=self.successes,
                failures=self.failures,
                timed_count=self.timed_count,
                total_seconds=self.total_seconds,
                min_seconds=self.min_seconds if self.timed_count else 0.0,
                max_seconds=self.max_seconds,
                errors_by_type=MappingProxyType(dict(self.errors_by_type)),
                window_seconds=self._slot_seconds * WINDOW_SLOTS,
                recent_count=recent_count,
                recent_failures=recent_failures,
                recent_timed_count=recent.count,
                recent_total_seconds=recent_total,
                recent_throughput=recent_count / max(covered, _MIN_RATE_SECONDS),
                sketch=lifetime,
                recent_sketch=recent,
                history=history,
            )

    def memory_bytes(self) -> int:
        """Bytes held by this operation's statistics (the pending batch included)."""
        with self._lock:
            self._drain()  # a pending batch is transient; measure the settled state
            sizes = [
                sys.getsizeof(self),
                sys.getsizeof(self.pending),
                sys.getsizeof(self._slots),
                sys.getsizeof(self.errors_by_type),
                self.lifetime_sketch.memory_bytes(),
                self._history.memory_bytes(),
            ]
            sizes.extend(sys.getsizeof(s) + s.sketch.memory_bytes() for s in self._slots)
        return sum(sizes)
