"""``RedisRetryBudget``: one operation's retry budget, shared by every process on a Redis.

The buckets of ``error_handling._retry_budget`` kept in one hash (the ``RETRY_BUDGET``
script): every ask for a retry is one round trip (the breaker's own when the breaker is on the
same Redis: ``BREAKER_RETRY_BUDGETED``), which also **pushes** the calls this
process made since its last push, read from the operation's own counters (nothing is
counted per call). A push whose previous one is more than a slice ago is prorated to the
last slice (its calls are spread evenly over the time since), so calls made long before a
retry do not fill the window it is judged by; the budget then errs on the side of fewer
retries.

While Redis is unreachable the backend's outage policy applies: ``"local"`` (default) an
in-process ``RetryBudget`` over the same counters, ``"allow"`` the retry, ``"raise"`` no
retry (the failure is raised as it is: a retry the fleet cannot account for is not made).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._counting import ReadableCount
from ..._time import Clock
from ...error_handling._retry_budget import BudgetSettings, RetryBudget
from ._connection import OutagePolicy, owned_key
from ._scripts import RETRY_BUDGET

if TYPE_CHECKING:
    from ._backend import RedisBackend

__all__ = ["RedisRetryBudget"]


class RedisRetryBudget:
    """A ``RetryBudgetBackend`` whose buckets live in Redis (``RedisBackend.retry_budget``).

    ``calls()`` answers this process's calls of the operation so far; ``record_call()``
    adds to them (for a budget used on its own: the pipeline pulls its counters).
    """

    blocking = True

    def __init__(
        self,
        backend: RedisBackend,
        name: str,
        settings: BudgetSettings,
        *,
        calls: Callable[[], int] | None = None,
        clock: Clock,
    ) -> None:
        self.backend = backend
        self.name = name
        self.settings = settings
        self.guard = backend.retry_budget_guard
        self.key = owned_key(backend.prefix, name, "retry_budget")
        self._source = calls
        self._recorded = ReadableCount()
        self._clock = clock
        self._lock = threading.Lock()
        self._pushed = (clock(), self.calls())  # (when, calls) of the last push
        self._constant = (
            repr(float(settings.ratio)),
            repr(float(settings.reserve)),
            max(1, round(settings.window * 1000)),
            settings.slices,
            max(1000, round(backend.key_ttl * 1000), round(settings.window * 2000)),
        )
        self._local: RetryBudget | None = None

    def calls(self) -> int:
        """This process's calls so far (the source's, plus ``record_call``'s)."""
        recorded = self._recorded.value()
        return recorded if self._source is None else self._source() + recorded

    def record_call(self) -> None:
        next(self._recorded)

    async def arecord_call(self) -> None:
        next(self._recorded)

    def push(self) -> int:
        """The calls to push with this ask: those since the last push, prorated to one
        slice when that push is older than a slice."""
        now, calls = self._clock(), self.calls()
        with self._lock:
            then, before = self._pushed
            self._pushed = (now, calls)
        new = max(0, calls - before)
        elapsed, width = now - then, self.settings.slice
        if elapsed > width and new:
            new = int(new * width / elapsed)
        return new

    def script_args(self, pushed: int) -> tuple[object, ...]:
        """``RETRY_BUDGET``'s KEYS and ARGV."""
        return (self.key, self.backend.now_ms(), *self.budget_args(pushed))

    def budget_args(self, pushed: int) -> tuple[object, ...]:
        """The budget's arguments, the last six of any script that asks it (the breaker's
        ``BREAKER_RETRY_BUDGETED`` too)."""
        return (pushed, *self._constant)

    def try_spend(self) -> bool:
        pushed = self.push()
        if self.guard.usable():
            try:
                reply = RETRY_BUDGET(self.backend.execute, *self.script_args(pushed))
            except self.backend.errors as exc:
                self.guard.failed(exc)
            else:
                return self.answer(reply)
        return self._outage()

    async def atry_spend(self) -> bool:
        pushed = self.push()
        if self.guard.usable():
            try:
                client = self.backend.async_client()
                reply = await RETRY_BUDGET.run_async(client, *self.script_args(pushed))
            except self.backend.errors as exc:
                self.guard.failed(exc)
            else:
                return self.answer(reply)
        return self._outage()

    def answer(self, reply: list[int]) -> bool:
        """Whether the script granted the retry (``{allowed, retries, calls}``)."""
        self.answered()
        return bool(int(reply[0]))

    def answered(self) -> None:
        """Redis answered for this budget (its own script or the breaker's)."""
        self.guard.succeeded()
        self._local = None  # Redis is back: the next outage starts afresh

    def outage(self) -> bool:
        """The outage policy's answer for a retry Redis could not be asked about."""
        return self._outage()

    def _outage(self) -> bool:
        policy = self.guard.policy
        if policy is OutagePolicy.ALLOW:
            return True
        if policy is OutagePolicy.RAISE:
            return False
        if self._local is None:
            self._local = RetryBudget(self.settings, calls=self.calls, clock=self._clock)
        return self._local.try_spend()

    def window(self) -> tuple[int, int]:
        """``(retries, calls)`` of the shared window now, as the script counts them (a
        read: nothing is pushed or spent)."""
        fields, now_ms = self.backend.read_hash(self.key)
        width = max(1, round(self.settings.window * 1000) // self.settings.slices)
        start = now_ms - round(self.settings.window * 1000)
        retries = calls = 0
        for raw, value in fields.items():
            name = raw.decode()
            at = int(name[1:])
            if (at + 1) * width <= start:
                continue
            if name[0] == "c":
                calls += int(value) if at * width >= start else 0
            else:
                retries += int(value)
        return retries, calls
