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
from ._http import Rejection

__all__ = [
    "RESILIENCE_ERRORS",
    "BodyTooLarge",
    "answer_for",
    "log_answer",
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


def log_answer(
    logger: logging.Logger, method: str, path: object, error: BaseException, status: int
) -> None:
    """The one log line of an error answered for the app (its message names the operation)."""
    error = _single(error)
    logger.warning("%s %s answered %d: %s: %s", method, path, status, type(error).__name__, error)
