"""Testing mode for users' own test suites: no waits between retries, few attempts.

>>> from coordination.testing import set_testing
>>> with set_testing(True, attempts=2):
...     pass  # every handle_errors/execute_with_error_handling call: at most 2 attempts

Like stamina's: it changes only how retries wait and how many attempts are made; the
breakers, counters and reports behave as in production, so tests see the real thing.
"""

from __future__ import annotations

from types import TracebackType

from ..error_handling import _testmode
from ..error_handling._testmode import TestingMode

__all__ = ["current_testing_mode", "is_testing", "set_testing"]


class _Restore:
    """Returned by ``set_testing``; as a context manager it restores the previous mode."""

    __slots__ = ("_previous",)

    def __init__(self, previous: TestingMode) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _testmode.current = self._previous


def set_testing(testing: bool, *, attempts: int = 1, cap: bool = False) -> _Restore:
    """Turn testing mode on or off, for the whole process.

    On: retries never wait, and each call makes at most ``attempts`` attempts (with
    ``cap=True``, ``attempts`` only lowers an operation's own limit, never raises it).
    Usable as a plain call or as ``with set_testing(True): ...``, which restores the
    previous mode on exit.
    """
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ValueError(f"attempts must be a whole number of at least 1, got {attempts!r}")
    previous = _testmode.current
    _testmode.current = TestingMode(enabled=bool(testing), attempts=attempts, cap=cap)
    return _Restore(previous)


def is_testing() -> bool:
    """True while testing mode is on."""
    return _testmode.current.enabled


def current_testing_mode() -> TestingMode:
    """The current testing mode (``enabled``, ``attempts``, ``cap``)."""
    return _testmode.current
