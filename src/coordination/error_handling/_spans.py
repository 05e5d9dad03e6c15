"""A span per protected call, made only while a span would be recorded (``_tracing``).

A runner sends its calls here only after ``_tracing`` told it spans are on (it rebinds a
cell of its wrapper; while they are off nothing of this module runs). ``CallSpan`` opens
the span named by the operation as a child of the caller's current span, counts the
attempts through the function it hands the pipeline, and is found by the plan's slow
paths (a retry, a fallback, a spent retry budget, a hedge) through ``_tracing``'s
context variable (``current_call``), so no signature of the pipeline carries it and the
pipeline loads this module only with its first traced call. The outcome, the attempts
and the breaker's state are read when the call ends (pulled, not pushed along the way).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._counting import ReadableCount
from .._errors import (
    BulkheadFull,
    CircuitOpenError,
    OperationCancelled,
    OperationTimeout,
    RateLimitExceeded,
)
from .._redact import redact, redaction_patterns
from .._tracing import (
    ATTRIBUTE_ATTEMPTS,
    ATTRIBUTE_BREAKER_STATE,
    ATTRIBUTE_OPERATION,
    ATTRIBUTE_OUTCOME,
    ATTRIBUTE_SEVERITY,
    close_span,
    enter_call,
    exception_type,
    leave_call,
    open_span,
    span_error,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from ._plan import Plan, RetryState

__all__ = [
    "EVENT_HEDGE",
    "EVENT_RETRY",
    "CallSpan",
    "outcome_of",
]

EVENT_RETRY = "coordination.retry"
EVENT_HEDGE = "coordination.hedge"
ATTRIBUTE_ATTEMPT = "coordination.attempt"
ATTRIBUTE_DELAY = "coordination.retry.delay_s"
ATTRIBUTE_EXCEPTION_TYPE = "exception.type"  # OpenTelemetry's semantic convention name
ATTRIBUTE_REASON = "coordination.retry.reason"
ATTRIBUTE_HEDGE = "coordination.hedge"

# what a call ended with, as the span's outcome attribute: a rejection, a timeout and a
# failure are the operator's three questions (load, slowness, the dependency)
_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (CircuitOpenError, "rejected"),
    (BulkheadFull, "bulkhead_full"),
    (RateLimitExceeded, "rate_limited"),
    (OperationTimeout, "timeout"),
    (OperationCancelled, "cancelled"),
)


def shown_operation(name: str) -> str:
    """The operation's name as a span shows it: redacted, as every log line shows it (an
    operation named after a URL may carry its password). Remembered per name and set of
    redaction patterns: the names are few (``max_operation_names``), the calls many."""
    return _redacted_name(name, redaction_patterns())


@functools.lru_cache(maxsize=1024)
def _redacted_name(name: str, patterns: tuple[object, ...]) -> str:
    return redact(name)


def outcome_of(exc: BaseException) -> str:
    """The outcome attribute of a call that ended with ``exc``."""
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return "failure" if isinstance(exc, Exception) else "interrupted"


class CallSpan:
    """One protected call's span, open from the call's start to its end."""

    __slots__ = (
        "attempts",
        "error",
        "hedges",
        "last",
        "outcome",
        "owner",
        "plan",
        "span",
        "token",
        "var_token",
    )

    def __init__(self, tracer: Tracer, plan: Plan) -> None:
        self.plan = plan
        self.owner = plan.op  # what _tracing.current_call compares
        self.attempts = ReadableCount()  # hedged attempts count from worker threads too
        self.hedges = 0
        self.outcome: str | None = None  # set by the plan's slow paths: fallback, budget
        self.error: BaseException | None = None
        # why the retry decided last is made: an attempt's error (a timeout of ours too),
        # None when retry_if_result asked for it (set by Plan.retry_wait)
        self.last: BaseException | None = None
        shown = shown_operation(plan.op.name)
        self.span, self.token = open_span(
            tracer,
            shown,
            {
                ATTRIBUTE_OPERATION: shown,
                ATTRIBUTE_SEVERITY: plan.options.severity.name,
            },
        )
        self.var_token = enter_call(self)

    def counted(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` counting its calls: the attempts, as the pipeline made them (a hedge
        on a worker thread, a retry, whatever the loop decided)."""

        def attempt(*args: Any, **kwargs: Any) -> Any:
            next(self.attempts)
            return func(*args, **kwargs)

        return attempt

    def acounted(self, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``counted`` for a coroutine function: counted when the attempt is made (its
        awaitable is the runner's to await, bounded by a timeout or raced)."""

        def attempt(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            next(self.attempts)
            return func(*args, **kwargs)

        return attempt

    # --- told by the plan's slow paths ----------------------------------------------------

    def retry(self, state: RetryState) -> None:
        """A retry is decided and admitted by the breaker: its number, wait and why."""
        last = self.last
        attributes: dict[str, Any] = {
            ATTRIBUTE_ATTEMPT: state.attempt + 1,
            ATTRIBUTE_DELAY: state.wait,
        }
        if last is None:  # retry_if_result asked for it
            attributes[ATTRIBUTE_REASON] = "result"
        else:
            attributes[ATTRIBUTE_EXCEPTION_TYPE] = exception_type(last)
            attributes[ATTRIBUTE_REASON] = "exception"
        self.span.add_event(EVENT_RETRY, attributes)

    def hedge(self) -> None:
        """A hedged attempt started beside the one running: its number in this call."""
        self.hedges += 1
        self.span.add_event(EVENT_HEDGE, {ATTRIBUTE_HEDGE: self.hedges})

    def fell_back(self, exc: BaseException) -> None:
        """The fallback answers instead of ``exc``: the call still failed."""
        self.outcome, self.error = "fallback", exc

    def budget_spent(self) -> None:
        """The retry budget refused a retry: the failure is the call's, unretried."""
        self.outcome = "retry_budget_exhausted"

    # --- the end --------------------------------------------------------------------------

    def close(self, exc: BaseException | None) -> None:
        """The call ended (``exc``: what it raised): the attributes read now, the status,
        the span ended and the caller's span current again."""
        span = self.span
        leave_call(self.var_token)
        try:
            self._describe(span, exc)
        except Exception:
            pass
        finally:  # the caller's context is back whatever happened
            close_span(span, self.token)

    def _describe(self, span: Any, exc: BaseException | None) -> None:
        if exc is None:
            outcome = self.outcome or "success"
            error = self.error
        else:
            outcome = self.outcome or outcome_of(exc)
            error = exc if isinstance(exc, Exception) else None
        breaker = self.plan.breaker
        attributes: dict[str, Any] = {
            ATTRIBUTE_ATTEMPTS: self.attempts.value(),
            ATTRIBUTE_OUTCOME: outcome,
        }
        if not breaker.blocking:  # a shared breaker's state is a round trip: not read
            attributes[ATTRIBUTE_BREAKER_STATE] = breaker.state.value
        span.set_attributes(attributes)
        if error is not None:
            span_error(span, error, f"{outcome}: {type(error).__qualname__}")
