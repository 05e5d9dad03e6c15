"""One operation's pipeline, composed once: rate limit → bulkhead → breaker → retry → timeout.

A ``Plan`` holds the resolved options and the operation's state (breaker, limiter,
bulkhead, counters); ``run`` / ``arun`` execute a call through it. Everything that can be
decided when the plan is built is decided then, so a call only does per-call work. The
success path with the default in-memory breaker in its CLOSED state is: one attribute read,
the call, one attribute store and one ``next()`` on a ``ReadableCount`` (an
``itertools.count``: atomic, so the counts stay exact across threads without a lock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .._counting import ReadableCount, count_value
from .._errors import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    OperationCancelled,
    OperationTimeout,
    RateLimitExceeded,
    ValidationError,
)
from . import _testmode
from ._backends import (
    CircuitBreakerBackend,
    CircuitState,
    RateLimiterBackend,
    combined_limit_check,
)
from ._breaker import CircuitBreaker
from ._bulkhead import Bulkhead
from ._cancellation import Cancellation, current_cancellation
from ._options import MISSING, Options
from ._retry import NOT_RETRIED, retry_after_seconds
from ._severity import ErrorSeverity
from ._snapshot import COUNTERS, operation_counts
from ._workers import Abandoned, AttemptPool

if TYPE_CHECKING:
    from ._handler import CoordinationErrorHandler

__all__ = ["NOT_COUNTED", "OperationState", "Plan", "RetryState", "counter_value"]

CLOSED = CircuitState.CLOSED
# Errors that say nothing about the dependency's health: they never move the breaker.
NOT_COUNTED = (
    ValidationError,
    ConfigError,
    CircuitOpenError,
    BulkheadFull,
    RateLimitExceeded,
    OperationCancelled,
)
_NOTE = "coordination: "


counter_value = count_value  # how many times ``next()`` was called on a ReadableCount


class OperationState:
    """Per-operation state shared by every plan of that operation name."""

    __slots__ = (
        "attempt_pool",
        "breaker",
        "bulkhead",
        "bulkhead_rejections",
        "failures",
        "fallbacks",
        "limiter",
        "name",
        "pool_workers",
        "rate_limited",
        "rejections",
        "retries",
        "severity",
        "successes",
        "timeouts",
    )

    def __init__(self, name: str, breaker: CircuitBreakerBackend, severity: str) -> None:
        self.name = name
        self.breaker = breaker
        self.limiter: RateLimiterBackend | None = None
        self.bulkhead: Bulkhead | None = None
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

    def stats(self) -> dict[str, Any]:
        """The counters and the severity, as ``_snapshot.OperationErrorSnapshot.counts()``."""
        return {
            **dict(zip(COUNTERS, operation_counts(self), strict=True)),
            "severity": self.severity,
        }


class RetryState:
    """Where one call's retry loop is: attempts made, first failure's time, last wait,
    and whether the call holds its bulkhead slot (an attempt abandoned by its timeout
    keeps the slot until it really ends; the next attempt then needs a slot of its own)."""

    __slots__ = ("attempt", "holds_slot", "last", "previous", "started")

    def __init__(
        self, attempt: int, started: float | None, previous: float, last: Exception | None
    ) -> None:
        self.attempt = attempt
        self.started = started
        self.previous = previous
        self.last = last
        self.holds_slot = False


class Plan:
    """The composed pipeline of one operation with one set of options."""

    def __init__(
        self, handler: CoordinationErrorHandler, op: OperationState, options: Options
    ) -> None:
        self.handler = handler
        self.op = op
        self.options = options
        self.breaker = op.breaker
        self.timeout = options.timeout
        self.fallback = options.fallback
        self.timed = options.timeout is not None or op.breaker.tracks_duration
        self.zero_wait = options.backoff.never_waits
        self.default_retry = options.retry_on is None and options.give_up_on is None
        self.note_prefix = f"{_NOTE}operation {op.name!r} failed after "
        self.log_level = options.severity.log_level
        self.critical = options.severity is ErrorSeverity.CRITICAL
        self.severity_counter = handler._log.severity_counter(options.severity)
        # the fast path: nothing to do before the call but look at the breaker's state
        self.fast = (
            op.limiter is None
            and op.bulkhead is None
            and options.timeout is None
            and type(op.breaker) is CircuitBreaker
            and not op.breaker.tracks_duration
        )
        self.memory_breaker = cast(CircuitBreaker, op.breaker) if self.fast else None
        # The breaker takes the rate limit's check in its own acquire (one round trip to a
        # shared store) when it can and no bulkhead has to come between the two.
        self.limited = combined_limit_check(op.breaker, op.limiter) if op.bulkhead is None else None

    # --- decisions shared by the sync and async paths -----------------------------------

    def should_retry(self, exc: Exception) -> bool:
        options = self.options
        if self.default_retry:
            return (_KINDS.get(type(exc)) or error_kind(type(exc)))[0]
        if options.give_up_on is not None and options.give_up_on(exc):
            return False
        if options.retry_on is not None:
            return options.retry_on(exc)
        return not isinstance(exc, NOT_RETRIED)

    def next_wait(
        self, exc: Exception | None, attempt: int, previous: float, started: float
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based), or -1.0 to give up."""
        options = self.options
        testing = _testmode.current
        limit = testing.max_retries(options.max_retries) if testing.enabled else options.max_retries
        if attempt >= limit or (exc is not None and not self.should_retry(exc)):
            return -1.0
        if testing.enabled:
            return 0.0
        # most exceptions carry no attributes at all: skip the hint lookup for them
        hint = retry_after_seconds(exc) if exc is not None and exc.__dict__ else None
        if hint is not None:
            if hint > options.backoff.max_delay:
                return -1.0  # the dependency asks for longer than we may wait
            wait = hint
        elif self.zero_wait:
            wait = 0.0
        else:
            wait = options.backoff.delay(attempt, previous)
        budget = options.time_budget
        if budget is not None and self.handler._clock() - started + wait > budget:
            return -1.0
        return wait

    def retry_wait(self, state: RetryState, error: Exception | None) -> float:
        """After attempt ``state.attempt`` failed with ``error`` (or its result asked for a
        retry): the wait before the next one, or -1.0 to stop; ``state`` moves on."""
        if state.started is None:
            state.started = self.handler._clock()
        wait = self.next_wait(error, state.attempt, state.previous, state.started)
        state.attempt += 1
        if error is not None:
            state.last = error
        if wait >= 0:
            state.previous = wait
        return wait

    def wants_retry(self, result: Any, state: RetryState) -> bool:
        """True when ``retry_if_result`` asks for another attempt and one is left (its
        wait is then ``state.previous``)."""
        check = self.options.retry_if_result
        return check is not None and check(result) and self.retry_wait(state, None) >= 0

    def failed_attempt(self, exc: Exception, duration: float, tell_breaker: bool = True) -> None:
        """Tell the breaker (unless the caller already has) and the records about one
        failed attempt; lock-free counting once the error type is known."""
        _, counted, timed_out, type_name = _KINDS.get(type(exc)) or error_kind(type(exc))
        if not tell_breaker:
            pass
        elif counted:
            self.breaker.record_failure(duration)
        else:
            self.breaker.release()
        if timed_out:
            next(self.op.timeouts)
        handler = self.handler
        handler._log.count_type(type_name)
        next(self.severity_counter)
        if handler._logger.isEnabledFor(logging.DEBUG):
            handler._logger.debug("operation %r attempt failed: %r", self.op.name, exc)

    def give_up(self, exc: Exception, attempts: int) -> Any:
        """The call is over: count it, then the fallback's value or the original error."""
        next(self.op.failures)
        self.handler._record_final_error(
            self.op, exc, self.options.severity, attempts, self.log_level, self.critical
        )
        if self.fallback is MISSING:
            if attempts > 0:
                _note(exc, f"{self.note_prefix}{attempts} attempt(s)")
            raise exc
        next(self.op.fallbacks)
        return self.fallback(exc) if callable(self.fallback) else self.fallback

    def rejected(self, exc: CircuitOpenError, last: Exception | None) -> Any:
        """The breaker refused the call: counted, never logged or kept (it would flood
        ``recent_errors`` and hide the failures that opened it)."""
        op = self.op
        next(op.rejections)
        next(op.failures)
        if last is not None:
            exc.__cause__ = last
        if self.fallback is MISSING:
            raise exc
        next(op.fallbacks)
        return self.fallback(exc) if callable(self.fallback) else self.fallback

    def stopped(self, cancellation: Cancellation, last: Exception | None) -> Any:
        """The caller's ``Cancellation`` scope ended the call: no fallback (the caller no
        longer wants a result), not logged or kept (it is the caller's decision)."""
        next(self.op.failures)
        raise OperationCancelled(self.op.name, cancellation.reason or "cancelled") from last

    def refused_retry(self, exc: BulkheadFull, state: RetryState) -> Any:
        """The bulkhead has no slot for a retry (an abandoned attempt still holds the
        call's): the call ends with ``BulkheadFull``, caused by the last failure."""
        next(self.op.bulkhead_rejections)
        exc.__cause__ = state.last
        return self.give_up(exc, state.attempt)

    def admit(self) -> bool:
        """The checks before the breaker: the rate limit, then the bulkhead. True when the
        breaker took the rate limit's check and so has already admitted the first attempt
        (else ``CircuitOpenError``)."""
        op = self.op
        if self.limited is not None:
            wait = self.limited.acquire_with_limit(cast(RateLimiterBackend, op.limiter), op.name)
            if wait > 0:
                next(op.rate_limited)
                raise RateLimitExceeded(op.name, wait)
            return True
        if op.limiter is not None:
            wait = op.limiter.try_acquire(op.name)
            if wait > 0:
                next(op.rate_limited)
                raise RateLimitExceeded(op.name, wait)
        if op.bulkhead is not None:
            try:
                op.bulkhead.enter()
            except BulkheadFull:
                next(op.bulkhead_rejections)
                raise
        return False

    # --- sync ---------------------------------------------------------------------------

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` behind this plan, with the closed-breaker success path inlined."""
        run = self.run
        if not self.fast:

            def call(*args: Any, **kwargs: Any) -> Any:
                return run(func, args, kwargs)

            return call

        breaker = cast(CircuitBreaker, self.breaker)  # self.fast guarantees the type
        simple = not breaker.settings.uses_window
        record_success = breaker.record_success
        successes = self.op.successes
        check_result = self.options.retry_if_result
        attempts = self._attempts
        retry_result = self._retry_result

        rejects_for = breaker.rejects_for
        name = self.op.name
        rejections = self.op.rejections
        failures = self.op.failures
        has_fallback = self.fallback is not MISSING
        rejected = self.rejected

        def fast_call(*args: Any, **kwargs: Any) -> Any:
            if breaker._state is not CLOSED:
                remaining = rejects_for()
                if remaining <= 0:
                    return run(func, args, kwargs)
                # rejected: raised from this frame, so the refusal costs one short unwind
                if has_fallback:
                    return rejected(CircuitOpenError(name, remaining), None)
                next(rejections)
                next(failures)
                raise CircuitOpenError(name, remaining)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:  # the first attempt failed: on to the retry loop
                return attempts(func, args, kwargs, None, 0.0, exc)
            if simple:
                breaker._consecutive = 0  # atomic store; see _breaker's docstring
            else:
                record_success(0.0)
            if check_result is not None and check_result(result):
                return retry_result(func, args, kwargs, result)
            next(successes)
            return result

        return fast_call

    def _retry_result(self, func: Callable[..., Any], args: Any, kwargs: Any, result: Any) -> Any:
        """The fast path's first result asks for a retry: retry if one is left."""
        state = RetryState(0, None, self.options.backoff.base_delay, None)
        if self.retry_wait(state, None) < 0:
            next(self.op.successes)
            return result
        return self._attempts(func, args, kwargs, state, state.previous)

    def run(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """One call through the whole pipeline."""
        acquired = False
        if not self.fast:
            try:
                acquired = self.admit()
            except (RateLimitExceeded, BulkheadFull) as exc:
                return self.give_up(exc, 0)
            except CircuitOpenError as exc:  # from the combined check only
                return self.rejected(exc, None)
        state = RetryState(0, None, self.options.backoff.base_delay, None)
        state.holds_slot = self.op.bulkhead is not None
        try:
            return self._attempts(func, args, kwargs, state, acquired=acquired)
        finally:
            if state.holds_slot:
                cast(Bulkhead, self.op.bulkhead).leave()

    def _attempts(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        state: RetryState | None = None,
        wait: float = 0.0,
        pending: Exception | None = None,
        acquired: bool = False,
    ) -> Any:
        """The retry loop; ``pending`` is the error of an attempt the fast path already
        made (so its failure is handled here, once); ``acquired``: the breaker has already
        admitted the first attempt."""
        handler = self.handler
        breaker = self.breaker
        bulkhead = self.op.bulkhead
        clock = handler._clock
        cancellation = current_cancellation()
        if state is None:
            state = RetryState(0, None, self.options.backoff.base_delay, None)
        duration = 0.0
        while True:
            if pending is None:
                if cancellation is not None and state.attempt > 0:
                    if cancellation.cancelled:
                        return self.stopped(cancellation, state.last)
                    left = cancellation.remaining()
                    if left is not None and left < wait:  # the retry would start too late
                        return self.stopped(cancellation, state.last)
                # ask the breaker before waiting: no backoff is spent on an open breaker
                if acquired:
                    acquired = False
                else:
                    try:
                        breaker.acquire()
                    except CircuitOpenError as exc:
                        return self.rejected(exc, state.last)
                if state.attempt > 0:
                    next(self.op.retries)
                if wait > 0:
                    try:
                        if cancellation is None:
                            handler._sleep(wait)
                        else:
                            cancellation.sleep(wait, handler._sleep)
                    except BaseException:
                        breaker.release()
                        raise
                    if cancellation is not None and cancellation.cancelled:
                        breaker.release()
                        return self.stopped(cancellation, state.last)
                if bulkhead is not None and not state.holds_slot:
                    try:  # our abandoned attempt still holds the call's slot: take another
                        bulkhead.enter()
                    except BulkheadFull as exc:
                        breaker.release()
                        return self.refused_retry(exc, state)
                    state.holds_slot = True
                begin = clock() if self.timed else 0.0
                try:
                    if self.timeout is None:  # no extra frame for the common case
                        result = func(*args, **kwargs)
                    else:
                        result = self._call_once(func, args, kwargs, state, cancellation)
                except Exception as exc:
                    pending = exc
                    duration = clock() - begin if self.timed else 0.0
                except BaseException:
                    breaker.release()  # cancelled or interrupted: not the dependency's fault
                    raise
                else:
                    breaker.record_success(clock() - begin if self.timed else 0.0)
                    if self.wants_retry(result, state):
                        wait = state.previous
                        continue
                    next(self.op.successes)
                    return result
            error, pending = pending, None
            if type(error) is _Stopped:  # the scope ended the attempt, not the dependency
                breaker.release()
                return self.stopped(cast(Cancellation, cancellation), state.last)
            if type(error) is _Refused:  # no worker for the attempt: refused, not retried
                breaker.release()
                return self.refused_retry(error.args[0], state)
            self.failed_attempt(error, duration)
            wait = self.retry_wait(state, error)
            if wait < 0:  # no retry left: the real error, even if the scope ended meanwhile
                return self.give_up(error, state.attempt)

    def _call_once(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        state: RetryState,
        cancellation: Cancellation | None,
    ) -> Any:
        """One attempt with a timeout, on the operation's own worker threads.

        A thread cannot be cancelled: the caller stops waiting at the deadline and the
        attempt's late result is discarded. Until it really ends, the abandoned attempt
        keeps its worker and the call's bulkhead slot (released by the worker)."""
        timeout = cast(float, self.timeout)
        op = self.op
        pool = op.attempt_pool or self.handler._attempt_pool(op, self.options)
        bulkhead = op.bulkhead
        on_end = bulkhead.leave if bulkhead is not None and state.holds_slot else None
        try:
            attempt = pool.start(func, args, kwargs)
        except BulkheadFull as exc:  # every worker is busy: refused before it started
            raise _Refused(exc) from None
        try:
            return pool.finish(attempt, timeout, on_end, cancellation)
        except Abandoned:
            state.holds_slot = False  # handed to the running attempt, released at its end
            if cancellation is not None and cancellation.cancelled:
                raise _Stopped from None
            raise OperationTimeout(op.name, timeout) from None


class _Stopped(Exception):
    """Internal: the caller's ``Cancellation`` scope ended a running attempt."""


class _Refused(Exception):
    """Internal: the operation's timeout workers are all busy; carries the BulkheadFull."""


# Per exception type: (retried by default, counted by the breaker, a timeout of ours, name).
# Three isinstance checks against tuples cost more than the rest of a failed attempt.
_KINDS: dict[type, tuple[bool, bool, bool, str]] = {}
_MAX_KINDS = 1024


def error_kind(cls: type[BaseException]) -> tuple[bool, bool, bool, str]:
    kind = (
        not issubclass(cls, NOT_RETRIED),
        not issubclass(cls, NOT_COUNTED),
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
