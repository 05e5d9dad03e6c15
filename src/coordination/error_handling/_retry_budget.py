"""The retry budget (``retry_budget``): retries at most a fraction of an operation's calls.

Finagle's ``RetryBudget`` and Envoy's ``retry_budget`` keep a fleet from multiplying its
own load when a dependency fails: each call deposits ``ratio`` of a retry, each retry
withdraws one, and a reserve of ``min_per_second × window`` retries lets a quiet operation
retry at all. Over any sliding ``window`` seconds, retries (and hedged attempts) stay at
most ``ratio × calls + min_per_second × window``.

Counting every call would cost the closed path, so the budget **pulls** instead: it reads
the operation's own call counters (``successes + failures``, counted anyway) only when a
retry is asked for, and keeps a small ring of time buckets, one per ``window / slices``
seconds, touched only by retries:

- each bucket remembers the call count read when its first retry was asked, and how many
  retries it granted;
- the calls of the window are the calls since the oldest bucket that starts inside it
  (never more than really happened in the window: a lower bound);
- the retries of the window are those of every bucket that overlaps it (never fewer than
  really happened: an upper bound).

So the bound above holds exactly, whatever the traffic (``tests/error_handling/
test_retry_budget.py`` checks it with Hypothesis); the price is that calls made before the
first retry of a window (for up to one slice) are not counted yet, and retries up to one
slice older than the window still are. The memory is ``slices + 2`` buckets whatever the
traffic. ``RedisRetryBudget`` (``backends.redis``) keeps the same buckets in Redis.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .._counting import ReadableCount
from .._logging import log_extra
from .._settings import SETTINGS, default_of
from .._time import Clock

if TYPE_CHECKING:
    from ._backends import RetryBudgetBackend
    from ._options import Options
    from ._plan import OperationState
    from ._runtime import Runtime

__all__ = [
    "DEFAULT_SLICES",
    "BudgetSettings",
    "RetryBudget",
    "RetryBudgetFactory",
    "budget_settings",
    "memory_retry_budget_factory",
    "spent",
]

DEFAULT_SLICES = 20  # buckets per window: a steady stream earns (20 - 1) / (20 + 1) of its share
# A spent budget is logged once per window, and never more often than this (seconds).
_LOGGED_AT_MOST_EVERY = 1.0

# BudgetSettings' attributes and the settings they hold (their checks, in their words).
_BUDGET_SETTINGS = (
    ("ratio", "retry_budget"),
    ("window", "retry_budget_window"),
    ("min_per_second", "retry_budget_min_per_second"),
)


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """One operation's retry budget: retries at most ``ratio`` of its calls over the last
    ``window`` seconds, plus a reserve of ``min_per_second × window`` retries.

    >>> settings = BudgetSettings(0.2, window=10.0, min_per_second=10.0)
    >>> settings.reserve, settings.allowance(500)
    (100.0, 200.0)
    """

    ratio: float
    window: float = default_of("retry_budget_window")
    min_per_second: float = default_of("retry_budget_min_per_second")
    slices: int = DEFAULT_SLICES

    def __post_init__(self) -> None:
        for attribute, name in _BUDGET_SETTINGS:
            value = getattr(self, attribute)
            SETTINGS[name].check(value, f"BudgetSettings({attribute}=...)")
            if value is None or not math.isfinite(value):
                raise SETTINGS[name].error(value, f"BudgetSettings({attribute}=...)", "not finite")
        if isinstance(self.slices, bool) or not isinstance(self.slices, int) or self.slices < 1:
            from .._errors import ConfigError

            raise ConfigError(
                f"BudgetSettings(slices=...): expected a whole number of at least 1, "
                f"got {self.slices!r}",
                field="slices",
                value=self.slices,
            )

    @property
    def reserve(self) -> float:
        """Retries a window always allows, however few calls it had."""
        return self.min_per_second * self.window

    @property
    def slice(self) -> float:
        """Seconds of one bucket."""
        return self.window / self.slices

    def allowance(self, calls: float) -> float:
        """Retries a window of ``calls`` calls allows in all."""
        return self.ratio * calls + self.reserve

    def describe(self) -> str:
        """The budget in words, for the note on an error it did not retry."""
        return f"{self.ratio:.0%} of calls over {self.window:g} s + {self.min_per_second:g}/s"


def budget_settings(options: Options) -> BudgetSettings | None:
    """The retry budget ``options`` ask for, or None (``retry_budget`` not set)."""
    if options.retry_budget is None:
        return None
    return BudgetSettings(
        options.retry_budget, options.retry_budget_window, options.retry_budget_min_per_second
    )


class RetryBudgetFactory(Protocol):
    """Makes the retry budget of one operation; called once per operation name.

    ``calls()`` answers how many calls the operation has made so far (the pipeline's
    own counters, read only when a retry is asked for)."""

    def __call__(
        self, name: str, settings: BudgetSettings, *, calls: Callable[[], int], clock: Clock
    ) -> RetryBudgetBackend: ...


class RetryBudget:
    """An in-memory ``RetryBudgetBackend``: the buckets of this module's docstring.

    ``calls()`` is read when a retry is asked for; ``record_call()`` adds calls to it (for
    a budget used on its own: the pipeline never calls it, it pulls its counters).
    ``try_spend()`` takes a lock for a few list operations; never across a call.

    >>> now = [0.0]
    >>> budget = RetryBudget(BudgetSettings(0.5, 10.0, 0.0), clock=lambda: now[0])
    >>> for _ in range(4):
    ...     budget.record_call()
    >>> budget.try_spend(), budget.try_spend(), budget.try_spend()
    (False, False, False)
    >>> now[0] = 1.0  # the calls before the window's first retry are not counted yet
    >>> for _ in range(4):
    ...     budget.record_call()
    >>> budget.try_spend(), budget.try_spend(), budget.try_spend()
    (True, True, False)
    """

    blocking = False

    __slots__ = ("_buckets", "_calls", "_clock", "_lock", "_recorded", "settings")

    def __init__(
        self,
        settings: BudgetSettings,
        *,
        calls: Callable[[], int] | None = None,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self._recorded = ReadableCount()
        self._calls = calls
        self._clock = clock
        self._lock = threading.Lock()
        # [bucket index, time of its first ask, calls then, retries granted, last grant]
        self._buckets: deque[list[float]] = deque(maxlen=settings.slices + 2)

    def calls(self) -> int:
        """The calls counted so far (the source's, plus ``record_call``'s)."""
        source = self._calls
        recorded = self._recorded.value()
        return recorded if source is None else source() + recorded

    def record_call(self) -> None:
        next(self._recorded)

    def try_spend(self) -> bool:
        return self.spend_at(self._clock(), self.calls())

    async def arecord_call(self) -> None:
        next(self._recorded)

    async def atry_spend(self) -> bool:
        return self.try_spend()

    def spend_at(self, now: float, calls: int) -> bool:
        """``try_spend`` at time ``now`` with ``calls`` calls counted so far."""
        settings = self.settings
        start = now - settings.window  # the window is (start, now]
        index = math.floor(now / settings.slice)
        with self._lock:
            buckets = self._buckets
            if buckets and buckets[-1][0] >= index:
                current = buckets[-1]  # the same bucket (or a clock that went back)
            else:
                current = [index, now, calls, 0, now]
                buckets.append(current)
            # a bucket whose last retry is not after the window's start holds none of it
            while buckets[0] is not current and buckets[0][4] <= start:
                buckets.popleft()
            # the calls since the first sample taken inside the window all fall in it
            first_inside = next(b for b in buckets if b[1] >= start or b is current)
            granted = sum(b[3] for b in buckets)
            if granted + 1 <= settings.allowance(max(0, calls - first_inside[2])):
                current[3] += 1
                current[4] = max(current[4], now)
                return True
            return False

    def window_retries(self) -> int:
        """Retries granted in the buckets kept (the window and at most one slice more)."""
        with self._lock:
            return int(sum(b[3] for b in self._buckets))


def memory_retry_budget_factory(
    name: str, settings: BudgetSettings, *, calls: Callable[[], int], clock: Clock
) -> RetryBudgetBackend:
    """The default ``RetryBudgetFactory``: an in-process ``RetryBudget``."""
    del name  # the state is this object's own
    return RetryBudget(settings, calls=calls, clock=clock)


def calls_of(op: OperationState) -> Callable[[], int]:
    """How many calls ``op`` has ended so far: read from its counters, when asked."""
    successes, failures = op.successes, op.failures

    def calls() -> int:
        return successes.value() + failures.value()

    return calls


def spent(op: OperationState, runtime: Runtime, settings: BudgetSettings | None) -> str:
    """A retry the budget refused: counted, logged at most once per window; the note
    added to the error raised instead."""
    next(op.retry_budget_exhausted)
    # once per window, but never more than once a second: a window of 1e-9 s logged
    # every refused retry (a flood under exactly the load the budget is for)
    window = max(settings.window if settings is not None else 10.0, _LOGGED_AT_MOST_EVERY)
    now = runtime.clock()
    last = op.budget_logged_at
    if last is None or now - last >= window:
        op.budget_logged_at = now
        runtime.logger.warning(
            "operation %r: retry budget spent (%s); failures are raised without retries "
            "(logged once per %g s)",
            op.name,
            "a shared budget" if settings is None else settings.describe(),
            window,
            extra=log_extra(op.name, severity=op.severity, breaker=op.breaker),
        )
    described = "" if settings is None else f" ({settings.describe()})"
    return f"not retried: the retry budget{described} is spent"
