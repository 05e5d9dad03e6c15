"""``ReadableCount``: a counter whose increment is one lock-free C call, and that can be read.

The hot paths count with ``next()`` on an ``itertools.count``: one C call, atomic under the
GIL, so exact across threads with no lock. ``itertools.count`` has no public way to read
its position without moving it (``repr()`` parsing and ``__reduce__()`` pickling state are
implementation details; 3.14 removes the latter), so this subclass counts its own reads:

- an increment is ``next(counter)``, inherited unchanged from ``itertools.count`` (the
  subclass overrides no slot, so it is the same C call);
- a read is ``next(counter)`` too, under a lock that only readers take: the value it
  returns is the number of ``next()`` calls before it, i.e. the increments so far plus the
  reads made before this one. Readers are serialised, so "reads made before" is exactly the
  ``_reads`` attribute they keep, and ``value - _reads`` is the number of increments that
  happened before this read: an exact, linearisable snapshot, however many threads are
  incrementing meanwhile. Scrapes and reports read; they are rare next to the increments.

>>> c = ReadableCount()
>>> next(c); next(c)
0
1
>>> c.value(), c.value()
(2, 2)
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import TYPE_CHECKING

__all__ = ["ReadableCount", "count_value"]

# One lock for every counter's reads: reads are rare, and a lock per counter would cost
# memory in tables that hold thousands of them. Increments never take it.
_READS = threading.Lock()


def _before_fork() -> None:
    _READS.acquire()  # no read is halfway (its next() made, its _reads not yet counted)


def _after_fork_in_parent() -> None:
    _READS.release()


def _after_fork_in_child() -> None:
    # A thread of the parent reading a counter at the fork would have left the child's
    # copy of the lock held for ever: every read there (a traced call's attempts, a
    # scrape) would hang. The fork was made holding it, so no read is halfway.
    global _READS
    _READS = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


if TYPE_CHECKING:
    _Count = itertools.count[int]
else:  # itertools.count takes no type arguments at run time
    _Count = itertools.count


class ReadableCount(_Count):
    """An ``itertools.count`` from 0 whose ``value()`` is the number of increments so far."""

    __slots__ = ("_reads",)

    _reads: int

    def __init__(self) -> None:
        self._reads = 0

    def value(self) -> int:
        """How many times ``next()`` was called on this counter (reads excluded)."""
        with _READS:
            advanced: int = next(self)
            reads = self._reads
            self._reads = reads + 1
        return advanced - reads

    def __repr__(self) -> str:
        return f"ReadableCount(value={self.value()})"


def count_value(counter: ReadableCount) -> int:
    """``counter.value()``, as a function (for ``map`` and comprehensions)."""
    return counter.value()
