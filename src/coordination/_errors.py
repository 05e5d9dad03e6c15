"""The exceptions this library raises, all under one base class.

::

    CoordinationError                    base of everything raised by coordination
    ├── ConfigError (ValueError)         a configuration value is wrong; names field, value, source
    │   └── RuleSetError                 a rule file or rule set cannot be loaded or compiled
    ├── ValidationError (ValueError)     data broke a rule set; carries every problem found
    ├── CircuitOpenError                 the operation's breaker is open; the call was not made
    ├── OperationTimeout (TimeoutError)  one attempt took longer than its timeout
    ├── OperationCancelled               the caller's Cancellation scope stopped the call
    ├── BulkheadFull                     too many concurrent calls to the operation
    ├── RateLimitExceeded                the operation's (or client's) rate limit is spent
    ├── EventDeadLettered                an event was stored as a dead letter instead of processed
    │   └── InvalidEvent (ValidationError)   ... because it broke its rules (reason "invalid")
    └── StoreError                       a shared-state backend (Redis) failed

    ConfigWarning (UserWarning)          a setting is ignored: an unknown COORDINATION_* variable

Every validation failure, wherever it is raised, is a ``ValueError``: ``ValidationError``,
``InvalidEvent`` (both), ``ConfigError`` and ``RuleSetError``.

Errors that no retry can fix are never retried by default: ``ConfigError``,
``ValidationError`` and ``CircuitOpenError`` among them (see ``coordination.error_handling``).
Every exception raised because of another is raised ``from`` it, so the cause is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._redact import redact

__all__ = [
    "BulkheadFull",
    "CircuitOpenError",
    "ConfigError",
    "ConfigWarning",
    "CoordinationError",
    "EventDeadLettered",
    "InvalidEvent",
    "OperationCancelled",
    "OperationTimeout",
    "RateLimitExceeded",
    "RuleSetError",
    "StoreError",
    "ValidationError",
]


class CoordinationError(Exception):
    """Base class of every exception raised by this library.

    ``str()`` and ``repr()`` pass through the redaction policy (``coordination.redact``):
    a message quoting a password, a token or a URL's userinfo shows it masked, however it
    is printed (tracebacks, logs, reports). The text is masked when it is read, so raising
    stays cheap.
    """

    def __str__(self) -> str:
        return redact(super().__str__())

    def __repr__(self) -> str:
        # Redact each argument before repr() escapes it: escaping would hide the quotes
        # and backslashes the policy reads.
        shown = (repr(redact(arg)) if isinstance(arg, str) else repr(arg) for arg in self.args)
        return f"{type(self).__name__}({', '.join(shown)})"


class ConfigError(CoordinationError, ValueError):
    """A configuration value is wrong.

    The message names the field, the offending value and where it came from (a keyword
    argument, an environment variable, or a file and line), so it can be fixed at once.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.source = source


class ConfigWarning(UserWarning):
    """Configuration that is ignored, such as a ``COORDINATION_*`` variable no setting reads.

    A warning, not an error: the environment is shared with other programs. Issued once a
    process for each variable; ``-W error::coordination.ConfigWarning`` makes it fatal and
    ``-W ignore::coordination.ConfigWarning`` silences it.
    """


class RuleSetError(ConfigError):
    """A validation rule file or inline rule set cannot be loaded or compiled."""


class ValidationError(CoordinationError, ValueError):
    """Data did not satisfy a rule set.

    ``errors`` holds every problem found (each with a ``code``, ``path``, ``pointer`` and
    ``message``); ``str()`` names every failing field. Never retried.
    """

    def __init__(
        self,
        errors: Sequence[Any],
        *,
        rule_set: str | None = None,
        message: str | None = None,
    ) -> None:
        self.errors = list(errors)
        self.rule_set = rule_set
        if message is None:
            where = f" against rule set {rule_set!r}" if rule_set else ""
            details = "; ".join(str(getattr(e, "message", e)) for e in self.errors)
            message = f"validation failed{where}: {details or 'no details'}"
        super().__init__(message)


class CircuitOpenError(CoordinationError):
    """The operation's circuit breaker is open, so the call was rejected without being made.

    ``retry_after`` is the number of seconds until the breaker admits a trial call.
    """

    # Raised on every rejected call while a dependency is down, so construction stays
    # cheap: the message is formatted only when someone reads it, and the attributes
    # live in slots (an instance dict would cost more than the rest of the error).
    # (BaseException.__new__ already stores the arguments as ``args``.)
    __slots__ = ("operation", "retry_after")

    def __init__(self, operation: str, retry_after: float) -> None:
        self.operation = operation
        self.retry_after = retry_after if retry_after > 0.0 else 0.0

    def __reduce__(self) -> tuple[Any, ...]:
        # what BaseException.__reduce__ made of the attributes in the instance dict
        state = {"operation": self.operation, "retry_after": self.retry_after}
        return type(self), self.args, {**state, **self.__dict__}

    def __str__(self) -> str:
        return redact(
            f"circuit breaker for {self.operation!r} is open; "
            f"next trial call in {self.retry_after:.3f}s"
        )


class OperationTimeout(CoordinationError, TimeoutError):
    """One attempt of an operation took longer than its timeout."""

    def __init__(self, operation: str, timeout: float) -> None:
        self.operation = operation
        self.timeout = timeout
        super().__init__(f"operation {operation!r} timed out after {timeout:g}s")


class OperationCancelled(CoordinationError):
    """The caller's ``Cancellation`` scope was cancelled, or its deadline passed, so the
    pipeline stopped the call (no further attempt is made). ``__cause__`` is the last
    attempt's error, if one failed."""

    def __init__(self, operation: str, reason: str) -> None:
        self.operation = operation
        self.reason = reason
        super().__init__(f"operation {operation!r} stopped: {reason}")


class BulkheadFull(CoordinationError):
    """The operation already has as many calls in flight as its bulkhead allows."""

    def __init__(self, operation: str, max_concurrent: int) -> None:
        self.operation = operation
        self.max_concurrent = max_concurrent
        super().__init__(
            f"operation {operation!r} already has {max_concurrent} concurrent calls (bulkhead full)"
        )


class RateLimitExceeded(CoordinationError):
    """A rate limit is spent; ``retry_after`` seconds until the next call is allowed."""

    def __init__(self, key: str, retry_after: float) -> None:
        self.key = key
        self.retry_after = max(0.0, retry_after)
        super().__init__(f"rate limit for {key!r} exceeded; retry after {self.retry_after:.3f}s")


class EventDeadLettered(CoordinationError):
    """An event could not be processed and was stored as a dead letter (nothing is lost).

    ``dead_letter_id`` identifies it in the dead-letter store; the cause is ``__cause__``.
    """

    def __init__(self, event_type: str, dead_letter_id: str | int, reason: str) -> None:
        self.event_type = event_type
        self.dead_letter_id = dead_letter_id
        self.reason = reason
        super().__init__(
            f"event of type {event_type!r} was dead-lettered (id {dead_letter_id}): {reason}"
        )


class InvalidEvent(EventDeadLettered, ValidationError):
    """An event broke its rules and was stored as a dead letter (reason ``"invalid"``).

    Both an ``EventDeadLettered`` (``dead_letter_id``, ``reason``) and a
    ``ValidationError`` (so a ``ValueError``), carrying the ``errors`` and ``rule_set`` of
    the failed validation (also its cause).
    """

    def __init__(
        self,
        event_type: str,
        dead_letter_id: str | int,
        reason: str,
        *,
        errors: Sequence[Any] = (),
        rule_set: str | None = None,
    ) -> None:
        # set by hand: the two bases' __init__ take different arguments
        self.event_type = event_type
        self.dead_letter_id = dead_letter_id
        self.reason = reason
        self.errors = list(errors)
        self.rule_set = rule_set
        Exception.__init__(
            self, f"event of type {event_type!r} was dead-lettered (id {dead_letter_id}): {reason}"
        )


class StoreError(CoordinationError):
    """A shared-state backend failed (for example Redis is unreachable)."""
