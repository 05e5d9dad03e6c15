"""An operation's recent activity, kept from the window slots the recorder retires anyway.

The recorder's recent window is a ring of slots (``_operation``); when the ring reuses a
slot, its counts would be lost to everything but the lifetime sketch. ``ActivityRing``
keeps them instead: one row (start, end, calls, failures, timed calls, busy seconds) per
retired slot, slots shorter than ``MIN_BUCKET_SECONDS`` folded together, in a fixed array
of ``HISTORY_POINTS`` rows. Nothing is added to the recording hot path: a slot is retired
under the recorder's lock at most once per slot length, by the caller that rotates the
window, and memory per operation is the same fixed array whatever the traffic (the
number of operations is capped by ``max_operation_names``).

A reader gets an ``OperationHistory`` with the operation's snapshot: a copy of the rows
(one ``array`` copy, so a Prometheus scrape that never looks at it pays almost nothing)
plus the slots still in the window, and the clock reading they are relative to. Empty
slots are not kept: a time no row covers had no calls.

>>> ring = ActivityRing(slot_seconds=10.0)
>>> ring.add(0.0, 10.0, count=5, failures=1, timed=5, busy=0.5)
>>> [(p.start, p.count) for p in ring.history(now=12.0).points()]
[(0.0, 5)]
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "HISTORY_POINTS",
    "HISTORY_SECONDS",
    "MIN_BUCKET_SECONDS",
    "ActivityPoint",
    "ActivityRing",
    "OperationHistory",
]

HISTORY_SECONDS = 900.0  # what a first look at the status page shows: the last 15 minutes
HISTORY_POINTS = 90  # rows per operation: 90 x 6 doubles, 4 KB, preallocated
# Slots shorter than this share a row, so 90 rows still cover the 15 minutes when the
# recent window is short (a 6 s window has 1 s slots).
MIN_BUCKET_SECONDS = HISTORY_SECONDS / HISTORY_POINTS
_FIELDS = 6  # start, end, count, failures, timed count, busy seconds


@dataclass(frozen=True, slots=True)
class ActivityPoint:
    """What one operation did from ``start`` to ``end`` (the monitor's clock, seconds):
    ``count`` outcomes, ``failures`` of them failed, ``timed_count`` came with a duration
    and took ``total_seconds`` together."""

    start: float
    end: float
    count: int
    failures: int
    timed_count: int
    total_seconds: float


@dataclass(frozen=True, slots=True)
class OperationHistory:
    """An operation's activity over about the last 15 minutes, oldest first.

    ``taken_at`` is the monitor's clock when the snapshot was taken: a reader on another
    clock places a point ``taken_at - point.end`` seconds before its own now. The rows are
    a private copy; ``points()`` builds the typed view when asked.
    """

    taken_at: float
    rows: Sequence[float]  # an array('d'): six numbers per point

    def points(self, since: float | None = None) -> tuple[ActivityPoint, ...]:
        """The points, oldest first; with ``since``, only those ending after it."""
        rows = self.rows
        cut = -float("inf") if since is None else since
        return tuple(
            ActivityPoint(
                rows[i],
                rows[i + 1],
                int(rows[i + 2]),
                int(rows[i + 3]),
                int(rows[i + 4]),
                rows[i + 5],
            )
            for i in range(0, len(rows), _FIELDS)
            if rows[i + 1] > cut
        )


EMPTY_HISTORY = OperationHistory(0.0, array("d"))


class ActivityRing:
    """The retired slots of one operation: a fixed ring of ``HISTORY_POINTS`` rows.

    Internal to the recorder, which calls ``add`` and ``history`` under its own lock.
    """

    __slots__ = ("_bucket", "_next", "_rows", "_size")

    def __init__(self, slot_seconds: float) -> None:
        self._bucket = max(slot_seconds, MIN_BUCKET_SECONDS)
        self._rows = array("d", bytes(8 * _FIELDS * HISTORY_POINTS))
        self._next = 0  # the row the next bucket goes into
        self._size = 0

    def add(
        self, start: float, end: float, *, count: int, failures: int, timed: int, busy: float
    ) -> None:
        """One retired slot; a slot that starts within the last row's bucket joins it."""
        if not count:
            return  # an empty slot says nothing a gap does not
        rows = self._rows
        if self._size:
            last = ((self._next - 1) % HISTORY_POINTS) * _FIELDS
            if start < rows[last] + self._bucket:
                rows[last + 1] = max(rows[last + 1], end)
                rows[last + 2] += count
                rows[last + 3] += failures
                rows[last + 4] += timed
                rows[last + 5] += busy
                return
        at = self._next * _FIELDS
        rows[at : at + _FIELDS] = array("d", (start, end, count, failures, timed, busy))
        self._next = (self._next + 1) % HISTORY_POINTS
        self._size = min(self._size + 1, HISTORY_POINTS)

    def history(
        self, now: float, live: Iterable[tuple[float, float, int, int, int, float]] = ()
    ) -> OperationHistory:
        """A copy of the rows, oldest first, then ``live`` (the slots still in the window,
        oldest first, as rows)."""
        rows = self._rows
        split = self._next * _FIELDS
        # Not yet full: the rows so far; full: from the oldest (the next to be overwritten).
        full = self._size == HISTORY_POINTS
        copied = rows[split:] + rows[:split] if full else rows[:split]
        for row in live:
            if row[2]:
                copied.extend(row)
        return OperationHistory(now, copied)

    def memory_bytes(self) -> int:
        return sys.getsizeof(self) + sys.getsizeof(self._rows)
