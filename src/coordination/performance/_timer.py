"""The context manager ``record_operation`` returns, built for a sub-microsecond hot path.

Each operation gets its own subclass of ``_OperationTimer`` with the operation's recorder
and the clock as class attributes, so making a timer is a bare ``Timer()`` (no ``__init__``
call, one slot to fill) — about half the cost of passing them in per call.
"""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar

from .._time import Clock
from ._operation import FLUSH_SIZE, OperationRecorder

__all__ = ["NullTimer", "OperationTimer", "timer_class"]


class OperationTimer:
    """Times a ``with`` block; an exception in it is a failure of its type, re-raised.

    A ``BaseException`` that is not an ``Exception`` (cancellation, ``KeyboardInterrupt``,
    ``SystemExit``) leaves the outcome unknown, so the block is not recorded at all.
    """

    __slots__ = ("_start",)
    _recorder: ClassVar[OperationRecorder]
    _clock: ClassVar[staticmethod[[], float]]  # staticmethod: a Python clock must not bind

    def __enter__(self) -> OperationTimer:
        self._start = self._clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = self._clock()
        recorder = self._recorder
        if exc_type is None:
            if end >= recorder.rotate_at:  # close the old window slot before adding to it
                recorder.flush(end)
            pending = recorder.pending
            pending.append(end - self._start)
            if len(pending) >= FLUSH_SIZE:
                recorder.flush(end)
        elif issubclass(exc_type, Exception):
            recorder.add_outcome(end, end - self._start, False, exc_type.__qualname__)


class NullTimer:
    """What ``record_operation`` returns while monitoring is disabled: does nothing."""

    __slots__ = ()

    def __enter__(self) -> NullTimer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def timer_class(recorder: OperationRecorder, clock: Clock) -> type[OperationTimer]:
    """A timer class bound to one operation's recorder and the monitor's clock."""
    namespace = {"__slots__": (), "_recorder": recorder, "_clock": staticmethod(clock)}
    return type("OperationTimer", (OperationTimer,), namespace)
