"""Errors raised while the app runs, as the HTTP answers they mean (RFC 9457).

======================  ======  ==============================================
raised inside the app   status  headers
======================  ======  ==============================================
``CircuitOpenError``    503     ``Retry-After`` (its ``retry_after``, rounded up)
``BulkheadFull``        503     ``Retry-After`` (1 unless it has ``retry_after``)
``RateLimitExceeded``   429     ``Retry-After`` (its ``retry_after``, rounded up)
``OperationTimeout``    504
``BodyTooLarge``        413     (the app read past ``max_request_body_bytes``)
======================  ======  ==============================================

The first four are mapped only while ``map_resilience_errors`` is on (apps that map
errors themselves turn it off); ``BodyTooLarge`` is the middleware's own limit and is
always answered. An exception group holding one such error (anyio task groups wrap them)
is answered as that error.
"""

from __future__ import annotations

import logging
import math

from .._errors import BulkheadFull, CircuitOpenError, OperationTimeout, RateLimitExceeded
from .._logging import log_extra
from .._time import Clock, monotonic
from ._http import Rejection
from ._server_spans import note_answered

__all__ = [
    "RESILIENCE_ERRORS",
    "AnswerLog",
    "BodyTooLarge",
    "answer_for",
    "retry_after_header",
]

RESILIENCE_ERRORS: tuple[type[Exception], ...] = (
    CircuitOpenError,
    BulkheadFull,
    RateLimitExceeded,
    OperationTimeout,
)
_LONGEST_WAIT = 86_400  # a day: a Retry-After beyond it says more about a bug than a plan


class BodyTooLarge(Exception):
    """The app read more of a request body without ``Content-Length`` than the limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request body passed {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


def retry_after_header(seconds: float | None) -> tuple[str, str]:
    """``Retry-After`` in whole seconds, rounded up, never below 1 (RFC 9110 §10.2.3)."""
    if seconds is None or not math.isfinite(seconds):
        wait = 1
    else:
        wait = min(_LONGEST_WAIT, max(1, math.ceil(seconds)))
    return ("Retry-After", str(wait))


def _single(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def answer_for(error: BaseException, *, map_resilience: bool) -> Rejection | None:
    """The problem document ``error`` earns, or None to let it propagate unchanged."""
    error = _single(error)
    if isinstance(error, BodyTooLarge):
        return Rejection(
            413,
            f"request body passed {error.size} bytes; the limit is {error.limit} bytes",
        )
    if not map_resilience:
        return None
    # The details name no operation: its name is internal; the log line has it.
    if isinstance(error, CircuitOpenError):
        return Rejection(
            503,
            "a service this request needs is unavailable (its circuit breaker is open)",
            headers=(retry_after_header(error.retry_after),),
        )
    if isinstance(error, BulkheadFull):
        return Rejection(
            503,
            "a service this request needs is at its concurrency limit",
            headers=(retry_after_header(getattr(error, "retry_after", None)),),
        )
    if isinstance(error, RateLimitExceeded):
        return Rejection(
            429,
            "a service this request needs is over its rate limit",
            headers=(retry_after_header(error.retry_after),),
        )
    if isinstance(error, OperationTimeout):
        return Rejection(504, "a service this request needs did not answer in time")
    return None


class AnswerLog:
    """One log record per answered error, naming its operation — without a flood.

    During an outage every request through an open breaker is answered 503: a WARNING
    each would bury everything else. The first answer for an (error type, operation)
    in ``window`` seconds is a WARNING (saying how many were answered quietly since);
    the others are INFO records. The table of keys is bounded (cleared when full). It
    takes no lock: under concurrent answers the "how many since" count is approximate.
    """

    __slots__ = ("_clock", "_last", "_max_keys", "_quiet", "_window", "logger")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        window: float = 10.0,
        clock: Clock = monotonic,
        max_keys: int = 1_000,
    ) -> None:
        self.logger = logger
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[tuple[str, str], float] = {}
        self._quiet: dict[tuple[str, str], int] = {}

    def __call__(self, method: str, path: object, error: BaseException, status: int) -> None:
        error = _single(error)
        if isinstance(error, BodyTooLarge):
            return  # a client's oversized body, like the middleware's other refusals: counted
        note_answered(error)  # on the request's span, when tracing
        operation = getattr(error, "operation", None) or getattr(error, "key", None) or ""
        key = (type(error).__name__, str(operation))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._window:
            self._quiet[key] = self._quiet.get(key, 0) + 1
            level = logging.INFO
            since = ""
        else:
            if len(self._last) >= self._max_keys:
                self._last.clear()
                self._quiet.clear()
            self._last[key] = now
            quiet = self._quiet.pop(key, 0)
            level = logging.WARNING
            since = f" ({quiet} more answered since the last warning)" if quiet else ""
        self.logger.log(
            level,
            "%s %s answered %d: %s: %s%s",
            method,
            path,
            status,
            type(error).__name__,
            error,
            since,
            extra=log_extra(
                str(operation) or None,
                # CircuitState.OPEN's value: the breaker that refused is open
                breaker_state="OPEN" if isinstance(error, CircuitOpenError) else None,
                http_method=method,
                url_path=str(path),
                http_status=status,
                error_type=type(error).__name__,
            ),
        )
