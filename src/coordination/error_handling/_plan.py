"""One operation's pipeline, composed once: admission → breaker → retry → timeout.

A ``Plan`` holds the resolved options, the operation's state (breaker, limiter, bulkhead,
counters) and every decision of a call: whether an error is retried, how long to wait,
when to give up, and what a rejected, refused or cancelled call ends with. The retry loop
itself is written once, as ``steps``: a generator that yields what it needs done (call the
operation, sleep, take a bulkhead slot, talk to a breaker that does I/O) and is told the
outcome. Two runners drive it, ``SyncRunner`` (``_sync_runner``) and ``AsyncRunner``
(``_async_runner``); only the waiting, the calling (timeouts, cancellation) and the
awaiting differ between them. The plan knows neither runner nor the handler: it is given
a ``Runtime`` (clock, sleeps, logger, error log, timeout workers, the error recorder).

The closed breaker's success path is the breaker's own (``CircuitBreaker.guard``); with
the default in-memory breaker in its CLOSED state it is one attribute read, the call, one
attribute store and one ``next()`` on a ``ReadableCount`` (an ``itertools.count``: atomic,
so the counts stay exact across threads without a lock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from .._counting import ReadableCount, count_value
from .._errors import (
    BulkheadFull,
    CircuitOpenError,
    OperationCancelled,
    OperationTimeout,
)
from .._logging import log_extra
from .._quote import quote
from .._tracing import current_call
from . import _testmode
from ._admission import Admission, admission_for
from ._backends import RAISE, CircuitBreakerBackend, RateLimiterBackend, RetryBudgetBackend
from ._cancellation import Cancellation
from ._details import NO_RESULT, FallbackDetails, RetryDetails, get_on_retry_hooks
from ._options import MISSING, Options
from ._outcomes import FAILURE as FAILED_VERDICT
from ._outcomes import NEITHER, NOT_COUNTED, Verdicts
from ._retry import NOT_RETRIED, retry_after_seconds
from ._runtime import Runtime
from ._severity import ErrorSeverity
from ._snapshot import COUNTERS, operation_counts
from ._workers import AttemptPool

if TYPE_CHECKING:
    from ._adaptive import LimiterSlot
    from ._bulkhead import Bulkhead
    from ._hedging import Hedging
    from ._retry_budget import BudgetSettings

__all__ = [
    "FAILED",
    "NOT_COUNTED",
    "OperationState",
    "Plan",
    "Refused",
    "RetryState",
    "Steps",
    "Stopped",
    "advance",
    "counter_value",
]

_NOTE = "coordination: "
REFUSALS_LOGGED_EVERY = 10.0  # seconds between two log lines of one operation's refusals
_INF = float("inf")

# What ``Plan.steps`` yields: the runner does it and sends the outcome back (a call's value,
# or its exception thrown in). The breaker commands are yielded only to a runner that
# must await a breaker doing I/O; otherwise the steps call the breaker themselves.
# SPEND asks a retry budget doing I/O for one retry (the runner sends back its answer);
# FAILURE_SPEND_ACQUIRE is FAILURE_ACQUIRE with the budget asked in the same step.
(
    CALL,
    SLEEP,
    ENTER,
    ACQUIRE,
    SUCCESS,
    FAILURE,
    RELEASE,
    FAILURE_ACQUIRE,
    SPEND,
    FAILURE_SPEND_ACQUIRE,
) = range(10)
# What a runner sends back for a CALL that raised (the exception is in ``state.error``):
# cheaper than throwing it into the steps, and its traceback stays the runner's.
FAILED: Any = type("_Failed", (), {"__repr__": lambda self: "<the attempt raised>"})()
# How ``Plan.steps`` ends (its return value); ``Plan.conclude`` turns it into the outcome.
# SPENT: a retry was due but the retry budget refused it (the failure is raised at once).
DONE, GIVE_UP, REJECTED, STOPPED, REFUSED, SPENT = range(6)
Steps = Generator[int, Any, int]  # what ``Plan.steps`` makes


counter_value = count_value  # how many times ``next()`` was called on a ReadableCount


class OperationState:
    """Per-operation state shared by every plan of that operation name."""

    __slots__ = (
        "attempt_pool",
        "breaker",
        "budget_logged_at",
        "budget_settings",
        "bulkhead",
        "bulkhead_rejections",
        "failures",
        "fallbacks",
        "hedge_wins",
        "hedged_attempts",
        "hook_errors",
        "limiter",
        "name",
        "pool_workers",
        "rate_limited",
        "refusals_logged_at",
        "refusals_unlogged",
        "rejections",
        "retries",
        "retry_budget",
        "retry_budget_exhausted",
        "severity",
        "successes",
        "timeouts",
    )

    def __init__(self, name: str, breaker: CircuitBreakerBackend, severity: str) -> None:
        self.name = name
        self.breaker = breaker
        self.limiter: RateLimiterBackend | None = None
        # a Bulkhead (max_concurrent), or a LimiterSlot (adaptive_concurrency, _adaptive)
        self.bulkhead: Bulkhead | LimiterSlot | None = None
        self.retry_budget: RetryBudgetBackend | None = None  # retry_budget (_backends)
        self.budget_settings: BudgetSettings | None = None  # what it allows (its note)
        self.budget_logged_at: float | None = None  # its last "spent" warning (one a window)
        # admission refusals (bulkhead, adaptive limit, rate limit): one warning a while
        self.refusals_logged_at: float | None = None
        self.refusals_unlogged = 0
        self.attempt_pool: AttemptPool | None = None  # sync attempts with a timeout run here
        self.pool_workers = 0  # its size, fixed with the operation's other settings
        self.severity = severity
        self.successes = ReadableCount()
        self.failures = ReadableCount()  # calls that ended in an exception or a fallback
        self.retries = ReadableCount()
        self.rejections = ReadableCount()  # by the open breaker
        self.timeouts = ReadableCount()
        self.bulkhead_rejections = ReadableCount()
        self.rate_limited = ReadableCount()
        self.fallbacks = ReadableCount()
        self.hook_errors = ReadableCount()  # on_retry hooks and waits that failed
        self.retry_budget_exhausted = ReadableCount()  # failures raised unretried: no budget
        self.hedged_attempts = ReadableCount()  # hedges started beside a first attempt
        self.hedge_wins = ReadableCount()  # calls a hedge answered, not the first attempt

    def stats(self) -> dict[str, Any]:
        """The counters and the severity, as ``_snapshot.OperationErrorSnapshot.counts()``."""
        return {
            **dict(zip(COUNTERS, operation_counts(self), strict=True)),
            "severity": self.severity,
        }


class RetryState:
    """Where one call's retry loop is: attempts made, first failure's time, last wait,
    and whether the call holds its bulkhead slot (an attempt abandoned by its timeout
    keeps the slot until it really ends; the next attempt then needs a slot of its own);
    ``slot``: the bulkhead (or adaptive limit) the call was admitted by, which its later
    slots are taken from and given back to (a reload may give the operation another
    meanwhile).
    ``wait`` and ``duration`` are the arguments of the step the loop asks for; ``result``
    and ``error`` what the call ends with; ``cancellation`` the caller's scope;
    ``details`` the retry the ``on_retry`` hooks are told of, when there are any."""

    __slots__ = (
        "attempt",
        "cancellation",
        "details",
        "duration",
        "error",
        "holds_slot",
        "last",
        "previous",
        "result",
        "slot",
        "started",
        "wait",
    )

    def __init__(
        self,
        attempt: int,
        started: float | None,
        previous: float,
        last: Exception | None,
        cancellation: Cancellation | None = None,
    ) -> None:
        self.attempt = attempt
        self.started = started
        self.previous = previous
        self.last = last
        self.holds_slot = False
        self.slot: Bulkhead | LimiterSlot | None = None
        self.cancellation = cancellation
        self.wait = 0.0
        self.duration = 0.0
        self.result: Any = None
        self.error: Exception | None = None
        self.details: RetryDetails | None = None


class Stopped(Exception):
    """A runner's signal: the caller's ``Cancellation`` scope ended a running attempt."""


class Refused(Exception):
    """A runner's signal: no timeout worker for the attempt; carries the BulkheadFull."""


class Plan:
    """The composed pipeline of one operation with one set of options: its decisions."""

    def __init__(self, runtime: Runtime, op: OperationState, options: Options) -> None:
        self.runtime = runtime
        self.op = op
        self.options = options
        self.breaker = op.breaker
        self.admission: Admission | None = admission_for(op, options.rate_limit_wait, runtime)
        self.timeout = options.timeout
        self.fallback = options.fallback
        # a time budget counts from the first attempt's start: the attempts are timed
        self.timed = (
            options.timeout is not None
            or op.breaker.tracks_duration
            or options.time_budget is not None
        )
        self.zero_wait = options.backoff.never_waits
        self.wait = options.wait
        self.retry_hooks = options.on_retry
        self.default_retry = options.retry_on is None and options.give_up_on is None
        self.note_prefix = f"{_NOTE}operation {op.name!r} failed after "
        self.log_level = options.severity.log_level
        self.critical = options.severity is ErrorSeverity.CRITICAL
        self.severity_counter = runtime.error_log.severity_counter(options.severity)
        # What the breaker counts, when the options say more than the defaults (None:
        # the shared per-type answers of _KINDS). A result to check goes from the guard
        # to result_state, which tells the breaker whether it counts as a failure.
        counting = options.counting
        self.verdicts = (
            None
            if counting.is_default
            else Verdicts(counting, op.name, runtime.logger, runtime.error_log.count_type)
        )
        self.trip_if_result = counting.trip_if_result
        # hedge_after: one attempt of the loop is a race of attempts (_hedging)
        self.hedging: Hedging | None = None
        if options.hedge_after is not None:
            from ._hedging import Hedging  # imported only by plans that hedge

            self.hedging = Hedging(self, options.hedge_after, options.max_hedged_attempts)
        # nothing to do before a call but ask the breaker: its guard may take the call
        self.direct = self.admission is None and options.timeout is None and self.hedging is None
        # the guard hands a first attempt's result to the plan (result_state)
        self.looks_at_results = (
            options.retry_if_result is not None or self.trip_if_result is not None
        )
        # a time budget counts from the call's start: a guard must read the clock first
        self.from_start = options.time_budget is not None
        # a breaker that records a retried failure with the next attempt's acquire (one
        # round trip for a shared store; optional, see _backends)
        self.failure_acquire: Callable[[float], None] | None = getattr(
            op.breaker, "record_failure_and_acquire", None
        )
        # retries (and hedged attempts) at most a share of the calls (retry_budget)
        self.budget = op.retry_budget
        # a breaker that also asks the budget with a retried failure's acquire (one round
        # trip when both live in one store; optional, see _backends)
        self.failure_spend_acquire: Callable[[float, RetryBudgetBackend], bool] | None = (
            None
            if self.budget is None
            else getattr(op.breaker, "record_failure_spend_and_acquire", None)
        )

    # --- what an error, a result, a wait mean -------------------------------------------

    def should_retry(self, exc: Exception) -> bool:
        options = self.options
        if self.default_retry:
            return (_KINDS.get(type(exc)) or error_kind(type(exc)))[0]
        if options.give_up_on is not None and options.give_up_on(exc):
            return False
        if options.retry_on is not None:
            return options.retry_on(exc)
        return not isinstance(exc, NOT_RETRIED)

    def next_wait(self, exc: Exception | None, state: RetryState, result: Any, now: float) -> float:
        """Seconds to wait before retry number ``state.attempt`` (0-based), or -1.0 to give
        up. ``exc`` is the attempt's error, or ``None`` when ``retry_if_result`` asked for
        the retry with ``result``; ``now`` the clock, ``state.started`` the call's start."""
        options = self.options
        attempt = state.attempt
        testing = _testmode.current
        limit = testing.max_retries(options.max_retries) if testing.enabled else options.max_retries
        if attempt >= limit or (exc is not None and not self.should_retry(exc)):
            return -1.0
        elapsed = now - cast(float, state.started)
        if testing.enabled:
            wait = 0.0
        else:
            # most exceptions carry no attributes at all: skip the hint lookup for them
            hint = (
                retry_after_seconds(exc)
                if exc is not None and (exc.__dict__ or isinstance(exc, CircuitOpenError))
                else None
            )
            if hint is not None:  # the dependency's own hint comes before any wait of ours
                if hint > options.backoff.max_delay:
                    return -1.0  # the dependency asks for longer than we may wait
                wait = hint
            else:
                wait = 0.0 if self.zero_wait else options.backoff.delay(attempt, state.previous)
                if self.wait is not None:
                    wait = self.chosen_wait(exc, result, attempt, wait, elapsed)
            budget = options.time_budget
            if budget is not None and elapsed + wait > budget:
                return -1.0
        if self.retry_hooks or get_on_retry_hooks():
            state.details = RetryDetails(self.op.name, attempt + 1, wait, exc, result, elapsed)
        return wait

    def chosen_wait(
        self, exc: Exception | None, result: Any, attempt: int, backoff: float, elapsed: float
    ) -> float:
        """The ``wait`` callable's answer, capped at ``max_delay``; the backoff's wait when
        it answers ``None``, or (logged and counted in ``hook_errors``) when it raises or
        answers anything but a number of seconds >= 0."""
        details = RetryDetails(self.op.name, attempt + 1, backoff, exc, result, elapsed)
        logger = self.runtime.logger
        try:
            value = cast(Callable[[RetryDetails], Any], self.wait)(details)
        except Exception:
            next(self.op.hook_errors)
            logger.exception(
                "operation %r: wait %r failed; the backoff's wait is used",
                self.op.name,
                self.wait,
                extra=self.log_fields(attempt + 1),
            )
            return backoff
        if value is None:
            return backoff
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < _INF:
            next(self.op.hook_errors)
            logger.error(
                "operation %r: wait %r returned %s, not a finite number of seconds >= 0; "
                "the backoff's wait is used",
                self.op.name,
                self.wait,
                quote(value),
                extra=self.log_fields(attempt + 1),
            )
            return backoff
        return min(float(value), self.options.backoff.max_delay)

    def retry_wait(
        self, state: RetryState, error: Exception | None, result: Any = NO_RESULT
    ) -> float:
        """After attempt ``state.attempt`` failed with ``error`` (or its ``result`` asked for
        a retry): the wait before the next one, or -1.0 to stop; ``state`` moves on.

        The call's start is set at its first failure: the first attempt's start when the
        attempts are timed (``state.duration`` is then that attempt's), else that failure."""
        now = self.runtime.clock()
        if state.started is None:
            state.started = now - state.duration
        wait = self.next_wait(error, state, result, now)
        state.attempt += 1
        if error is not None:
            state.last = error
        if wait >= 0:
            state.previous = wait
            call = current_call(self.op)  # a traced call: what its retry event names
            if call is not None:
                call.last = error
        return wait

    def retried(self, state: RetryState) -> None:
        """A retry is decided and admitted by the breaker, its wait comes next: tell the
        ``on_retry`` hooks, the operation's own then the process's (outside any lock); one
        that raises is logged and counted in ``hook_errors``, never breaks the call."""
        details, state.details = cast(RetryDetails, state.details), None
        for hook in self.retry_hooks + get_on_retry_hooks():
            try:
                hook(details)
            except Exception:
                next(self.op.hook_errors)
                self.runtime.logger.exception(
                    "operation %r: on_retry hook %r failed",
                    self.op.name,
                    hook,
                    extra=self.log_fields(details.attempt),
                )

    def wants_retry(self, result: Any, state: RetryState) -> bool:
        """True when ``retry_if_result`` asks for another attempt and one is left (its
        wait is then ``state.previous``)."""
        check = self.options.retry_if_result
        return check is not None and check(result) and self.retry_wait(state, None, result) >= 0

    def new_state(self, cancellation: Cancellation | None) -> RetryState:
        return RetryState(0, None, self.options.backoff.base_delay, None, cancellation)

    def result_state(
        self,
        result: Any,
        cancellation: Callable[[], Cancellation | None],
        *,
        spend: bool = True,
    ) -> RetryState | None:
        """A first attempt made by the breaker's guard returned ``result``: the breaker is
        told (the guard leaves that to the plan when it looks at results), then None when
        the call is over (counted), else the state to retry from (``cancellation()``: the
        caller's scope, asked only then). The retry budget is asked here unless ``spend``
        is false (an async runner awaits a budget doing I/O itself: ``budget_refuses``)."""
        if self.trip_if_result is not None and cast(Verdicts, self.verdicts).result_trips(
            result
        ):  # a returned value that counts as a failure (an HTTP 503)
            self.breaker.record_failure(0.0)
        else:
            self.breaker.record_success(0.0)
        check = self.options.retry_if_result
        if check is not None and check(result):
            state = self.new_state(cancellation())
            if self.retry_wait(state, None, result) >= 0 and not (
                spend and self.budget is not None and self.budget_refuses(self.budget.try_spend())
            ):
                state.wait = state.previous
                return state
        next(self.op.successes)
        return None

    def budget_refuses(self, allowed: bool) -> bool:
        """The retry budget answered ``allowed`` for a retry asked for by a result: when
        it refused, counted and logged (the result is the call's, as it is)."""
        if not allowed:
            _spent(self.op, self.runtime)
        return not allowed

    def counted_failure(self, exc: Exception) -> int:
        """Count one failed attempt in the records; what it is to the breaker:
        ``FAILURE``, ``SUCCESS`` (the dependency answered: ``trip_on`` does not name it,
        or ``give_up_on`` does) or ``NEITHER`` (only released). Lock-free once the type
        is known (see ``_outcomes``)."""
        _, verdict, timed_out, type_name = _KINDS.get(type(exc)) or error_kind(type(exc))
        if timed_out:
            next(self.op.timeouts)
        runtime = self.runtime
        runtime.error_log.count_type(type_name)
        next(self.severity_counter)
        if runtime.logger.isEnabledFor(logging.DEBUG):
            runtime.logger.debug(
                "operation %r attempt failed: %r",
                self.op.name,
                exc,
                extra=self.log_fields(error_type=type(exc).__name__),
            )
        verdicts = self.verdicts
        return verdict if verdicts is None else verdicts.verdict(exc)

    def too_late(self, cancellation: Cancellation, wait: float) -> bool:
        """The scope is cancelled, or its deadline comes before the next attempt would start."""
        left = cancellation.remaining()
        return cancellation.cancelled or (left is not None and left < wait)

    # --- the retry loop, written once ---------------------------------------------------

    def steps(
        self,
        state: RetryState,
        *,
        io: bool = False,
        bounded_first: bool = False,
        acquired: bool = False,
        pending: Exception | None = None,
        call: tuple[Callable[..., Any], Any, Any] | None = None,
        call_once: Callable[[Callable[..., Any], Any, Any, RetryState], Any] | None = None,
    ) -> Steps:
        """The retry loop: yields commands (``CALL``, ``SLEEP``, ...), returns an ending.

        ``io``: yield the breaker's commands, for a runner that awaits a breaker doing
        I/O. ``bounded_first``: the caller's scope is checked before the first attempt too
        (an async attempt can be cancelled, so a scope bounds it). ``acquired``: the
        admission already took the first attempt's breaker permit. ``pending``: the error
        of a first attempt already made (by the breaker's guard), handled here, once.
        ``call``: a sync runner's ``(func, args, kwargs)``, called here instead of
        yielding ``CALL`` (a generator resumed per attempt costs as much as the rest of a
        failed attempt), through ``call_once`` when given (an attempt with a timeout).
        """
        breaker = self.breaker
        bulkhead = state.slot  # a call not admitted by a bulkhead takes no slot for a retry
        clock = self.runtime.clock
        timed = self.timed
        cancellation = state.cancellation
        trip_if_result = self.trip_if_result
        while True:
            if pending is None:
                if (
                    cancellation is not None
                    and (bounded_first or state.attempt > 0)
                    and self.too_late(cancellation, state.wait)
                ):
                    if acquired:
                        yield from self._release(io)
                    return STOPPED
                # ask the breaker before waiting: no backoff is spent on an open breaker
                if acquired:
                    acquired = False
                else:
                    try:
                        if io:
                            yield ACQUIRE
                        else:
                            breaker.acquire()
                    except CircuitOpenError as exc:
                        state.error = exc
                        return REJECTED
                if state.attempt > 0:
                    next(self.op.retries)
                    traced = current_call(self.op)  # the retry path only: one variable read
                    if traced is not None:
                        traced.retry(state)
                    if state.details is not None:  # on_retry hooks to tell, before the wait
                        try:
                            self.retried(state)
                        except BaseException:  # interrupted in a hook: give the permit back
                            yield from self._release(io)
                            raise
                if state.wait > 0:
                    yield SLEEP  # the runner gives the permit back if the sleep is interrupted
                    if cancellation is not None and cancellation.cancelled:
                        yield from self._release(io)
                        return STOPPED
                if bulkhead is not None and not state.holds_slot:
                    try:  # our abandoned attempt still holds the call's slot: take another
                        yield ENTER
                    except BulkheadFull as exc:
                        yield from self._release(io)
                        state.error = exc
                        return REFUSED
                    state.holds_slot = True
                begin = clock() if timed else 0.0
                if call is None:
                    result = yield CALL
                else:
                    try:
                        if call_once is None:
                            result = call[0](*call[1], **call[2])
                        else:
                            result = call_once(*call, state)
                    except Exception as exc:
                        state.error, result = exc, FAILED
                    except BaseException:  # cancelled or interrupted: not the dependency's
                        breaker.release()
                        raise
                state.duration = clock() - begin if timed else 0.0
                if result is FAILED:  # the attempt raised: the runner left it in state.error
                    pending, state.error = state.error, None
                    if type(pending) is Stopped:  # the scope ended it, not the dependency
                        yield from self._release(io)
                        return STOPPED
                    if type(pending) is Refused:  # no worker for it: refused, not retried
                        yield from self._release(io)
                        state.error = pending.args[0]
                        return REFUSED
                else:
                    if trip_if_result is not None and cast(Verdicts, self.verdicts).result_trips(
                        result
                    ):  # a returned value that counts as a failure (an HTTP 503)
                        if io:
                            yield FAILURE
                        else:
                            breaker.record_failure(state.duration)
                    elif io:
                        yield SUCCESS
                    else:
                        breaker.record_success(state.duration)
                    if self.wants_retry(result, state):
                        if self.budget is None or (yield from self._spend(io)):
                            state.wait = state.previous
                            continue
                        _spent(self.op, self.runtime)  # as it is
                    state.result = result
                    return DONE
            error, pending = cast(Exception, pending), None
            verdict = self.counted_failure(error)
            if verdict == FAILED_VERDICT and self.failure_spend_acquire is not None:
                state.wait = self.retry_wait(state, error)
                if state.wait >= 0:  # the failure, the budget and the next acquire at once
                    try:
                        if io:
                            allowed = yield FAILURE_SPEND_ACQUIRE
                        else:
                            allowed = self.failure_spend_acquire(
                                state.duration, cast(RetryBudgetBackend, self.budget)
                            )
                    except CircuitOpenError as exc:
                        state.error = exc
                        return REJECTED
                    if not allowed:
                        state.error = error
                        return SPENT
                    acquired = True
                    continue
                if io:
                    yield FAILURE
                else:
                    breaker.record_failure(state.duration)
                state.error = error
                return GIVE_UP
            if verdict == FAILED_VERDICT and self.failure_acquire is not None:
                state.wait = self.retry_wait(state, error)
                if state.wait >= 0 and self.budget is not None and not (yield from self._spend(io)):
                    if io:
                        yield FAILURE
                    else:
                        breaker.record_failure(state.duration)
                    state.error = error
                    return SPENT
                if state.wait >= 0:  # retried: the failure goes with the next acquire
                    try:
                        if io:
                            yield FAILURE_ACQUIRE
                        else:
                            self.failure_acquire(state.duration)
                    except CircuitOpenError as exc:
                        state.error = exc
                        return REJECTED
                    acquired = True
                    continue
                if io:
                    yield FAILURE
                else:
                    breaker.record_failure(state.duration)
                state.error = error
                return GIVE_UP
            if verdict == FAILED_VERDICT:
                if io:
                    yield FAILURE
                else:
                    breaker.record_failure(state.duration)
            elif verdict == NEITHER:
                yield from self._release(io)
            elif io:  # SUCCESS: an error that is the dependency's answer, not its outage
                yield SUCCESS
            else:
                breaker.record_success(state.duration)
            state.wait = self.retry_wait(state, error)
            if state.wait < 0:  # no retry left: the real error, even if the scope ended
                state.error = error
                return GIVE_UP
            if self.budget is not None and not (yield from self._spend(io)):
                state.error = error
                return SPENT

    def _spend(self, io: bool) -> Generator[int, Any, bool]:
        """Ask the retry budget for the retry just decided: True when it allows it (a
        budget doing I/O is the runner's to ask, as ``SPEND``, when ``io``)."""
        budget = cast(RetryBudgetBackend, self.budget)
        if io and budget.blocking:
            allowed: bool = yield SPEND
            return allowed
        return budget.try_spend()

    def _release(self, io: bool) -> Generator[int, Any, None]:
        if io:
            yield RELEASE
        else:
            self.breaker.release()

    # --- how a call ends ----------------------------------------------------------------

    def conclude(self, state: RetryState, ending: int, args: Any, kwargs: Any) -> Any:
        """The outcome of a call of ``(*args, **kwargs)`` whose ``steps`` ended with
        ``ending``."""
        if ending == DONE:
            next(self.op.successes)
            return state.result
        error = cast(Exception, state.error)
        if ending == GIVE_UP:
            return self.give_up(error, state.attempt, args, kwargs)
        if ending == REJECTED:
            return self.rejected(cast(CircuitOpenError, error), args, kwargs, state)
        if ending == REFUSED:
            return self.refused_retry(cast(BulkheadFull, error), state, args, kwargs)
        if ending == SPENT:
            reason = _spent(self.op, self.runtime)
            return self.give_up(error, state.attempt, args, kwargs, reason)
        return self.stopped(cast(Cancellation, state.cancellation), state.last)

    def not_admitted(self, exc: Exception, args: Any, kwargs: Any) -> Any:
        """The admission refused the call (rate limit, bulkhead, or a combined check's
        open breaker): no attempt was made."""
        if isinstance(exc, CircuitOpenError):
            return self.rejected(exc, args, kwargs)
        return self.refused(exc, args, kwargs)

    def refused(self, exc: Exception, args: Any, kwargs: Any) -> Any:
        """The bulkhead, the adaptive limit or the rate limit turned the call away before
        any attempt: counted (``failures`` and the refusal's own counter), then the
        fallback's answer or the error. Like the breaker's rejections, a refusal is a
        decision about load, not a failure of the dependency: it is not kept in
        ``recent_errors`` nor given to the alert hooks, and it is logged at most once per
        ``REFUSALS_LOGGED_EVERY`` seconds per operation, with the count since the last
        line (shedding under load refuses thousands of calls a second)."""
        op = self.op
        next(op.failures)
        op.refusals_unlogged += 1  # a lost update under a race only miscounts the log line
        now = self.runtime.clock()
        last = op.refusals_logged_at
        if last is None or now - last >= REFUSALS_LOGGED_EVERY:
            count, op.refusals_unlogged, op.refusals_logged_at = op.refusals_unlogged, 0, now
            self.runtime.logger.warning(
                "operation %r: %d call(s) refused%s, the last with %s: %s "
                "(logged at most once per %g s; see bulkhead_rejections and rate_limited)",
                op.name,
                count,
                "" if last is None else f" in the last {now - last:.0f} s",
                type(exc).__name__,
                exc,
                REFUSALS_LOGGED_EVERY,
                extra=self.log_fields(error_type=type(exc).__name__, refused=count),
            )
        if self.fallback is MISSING:
            raise exc
        return self.fallen_back(exc, 0, args, kwargs)

    def give_up(
        self, exc: Exception, attempts: int, args: Any, kwargs: Any, reason: str = ""
    ) -> Any:
        """The call is over: count it, then the fallback's answer or the original error
        (noted with the attempts made, and ``reason`` when there is one)."""
        next(self.op.failures)
        self.runtime.record_final_error(
            self.op, exc, self.options.severity, attempts, self.log_level, self.critical
        )
        if self.fallback is MISSING:
            if attempts > 0:
                _note(exc, f"{self.note_prefix}{attempts} attempt(s){reason and '; ' + reason}")
            raise exc
        return self.fallen_back(exc, attempts, args, kwargs)

    def rejected(
        self, exc: CircuitOpenError, args: Any, kwargs: Any, state: RetryState | None = None
    ) -> Any:
        """The breaker refused the call (before its first attempt, or a retry when
        ``state`` is given): counted, never logged or kept (it would flood
        ``recent_errors`` and hide the failures that opened it)."""
        op = self.op
        next(op.rejections)
        next(op.failures)
        if state is not None and state.last is not None:
            exc.__cause__ = state.last
        if self.fallback is MISSING:
            raise exc
        return self.fallen_back(exc, 0 if state is None else state.attempt, args, kwargs)

    def refusal(self, exc: CircuitOpenError, args: Any, kwargs: Any) -> Any:
        """``rejected`` for a breaker's guard: ``RAISE`` instead of raising (the guard
        raises from its own frame)."""
        op = self.op
        next(op.rejections)
        next(op.failures)
        if self.fallback is MISSING:
            return RAISE
        return self.fallen_back(exc, 0, args, kwargs)

    def fallen_back(self, exc: Exception, attempts: int, args: Any, kwargs: Any) -> Any:
        """The fallback's answer: its value, or what the callable answers to the call's
        ``FallbackDetails`` (an awaitable, from an async fallback, is the runner's to await)."""
        next(self.op.fallbacks)
        traced = current_call(self.op)
        if traced is not None:
            traced.fell_back(exc)
        fallback = self.fallback
        if not callable(fallback):
            return fallback
        details = FallbackDetails(
            exc,
            args if type(args) is tuple else tuple(args),
            MappingProxyType(kwargs if isinstance(kwargs, dict) else dict(kwargs or {})),
            self.op.name,
            attempts,
        )
        return fallback(details)

    def stopped(self, cancellation: Cancellation, last: Exception | None) -> Any:
        """The caller's ``Cancellation`` scope ended the call: no fallback (the caller no
        longer wants a result), not logged or kept (it is the caller's decision)."""
        next(self.op.failures)
        raise OperationCancelled(self.op.name, cancellation.reason or "cancelled") from last

    def refused_retry(self, exc: BulkheadFull, state: RetryState, args: Any, kwargs: Any) -> Any:
        """The bulkhead has no slot for a retry (an abandoned attempt still holds the
        call's): the call ends with ``BulkheadFull``, caused by the last failure."""
        next(self.op.bulkhead_rejections)
        exc.__cause__ = state.last
        return self.give_up(exc, state.attempt, args, kwargs)

    def log_fields(self, attempt: int | None = None, **more: object) -> dict[str, object]:
        """The ``extra`` of a log line about this plan's call (failure paths only)."""
        return log_extra(
            self.op.name,
            severity=self.options.severity,
            attempt=attempt,
            breaker=self.breaker,
            **more,
        )

    def attempt_pool(self) -> AttemptPool:
        """The operation's timeout workers (made on its first timed sync attempt)."""
        return self.op.attempt_pool or self.runtime.attempt_pool_for(self.op, self.options)


# Per exception type: (retried by default, what it is to the breaker by default — FAILURE,
# or NEITHER for the library's own verdicts —, a timeout of ours, name). The same for
# every plan: a plan with rules of its own (trip_on & co.) asks its Verdicts instead.
# Three isinstance checks against tuples cost more than the rest of a failed attempt.
_KINDS: dict[type, tuple[bool, int, bool, str]] = {}
_MAX_KINDS = 1024


def advance(steps: Steps, value: Any, failure: Exception | None) -> int:
    """The next command of ``steps``, told the last one's ``value`` (or with its
    ``failure`` thrown in); when the steps end, ``-1 - ending`` (always negative)."""
    try:
        return steps.send(value) if failure is None else steps.throw(failure)
    except StopIteration as end:
        ending: int = end.value
        return -1 - ending
    except RuntimeError as error:
        escaped = _escaped(error)
        if escaped is None:
            raise
    raise escaped  # outside the handler: the RuntimeError is not added as its context


def _escaped(error: RuntimeError) -> StopIteration | None:
    # A StopIteration that a user's callable (retry_on, give_up_on, retry_if_result, a
    # breaker backend, the clock) raised into the steps: the generator turned it into this
    # RuntimeError (PEP 479). Only when made at the steps' own boundary (nothing below this
    # frame in its traceback): a user's RuntimeError, even one made so, passes unchanged.
    cause, trace = error.__cause__, error.__traceback__
    made_by_steps = type(error) is RuntimeError and trace is not None and trace.tb_next is None
    return cause if made_by_steps and isinstance(cause, StopIteration) else None


def error_kind(cls: type[BaseException]) -> tuple[bool, int, bool, str]:
    kind = (
        not issubclass(cls, NOT_RETRIED),
        NEITHER if issubclass(cls, NOT_COUNTED) else FAILED_VERDICT,
        issubclass(cls, OperationTimeout),
        cls.__name__,
    )
    if len(_KINDS) < _MAX_KINDS:  # bounded: classes made on the fly must not grow it
        _KINDS[cls] = kind
    return kind


def _note(exc: BaseException, text: str) -> None:
    """Add (or replace) this library's note, so a reused exception does not pile them up."""
    notes = exc.__dict__.get("__notes__")  # add_note keeps them there; no AttributeError
    if notes is not None:
        notes[:] = [n for n in notes if not n.startswith(_NOTE)]
    exc.add_note(text)


def _spent(op: OperationState, runtime: Runtime) -> str:
    """The budget refused a retry: counted and logged by ``_retry_budget.spent``, loaded
    only then (plans without a budget never need the module)."""
    from ._retry_budget import spent

    call = current_call(op)
    if call is not None:
        call.budget_spent()
    return spent(op, runtime, op.budget_settings)
