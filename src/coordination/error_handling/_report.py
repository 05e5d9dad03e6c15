"""What the handler remembers about errors, and the report and health built from it.

Health rule (``status``): UNHEALTHY when a CRITICAL operation's breaker is open, or when
every operation that has a breaker is open; DEGRADED when any breaker is open or half-open;
else HEALTHY. Error counts alone do not change the status: retried or fallen-back errors
are the pipeline doing its job, and the breakers already turn persistent failure into state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._counting import ReadableCount
from .._redact import redact
from .._time import utc_timestamp
from ._plan import counter_value
from ._severity import ErrorSeverity
from ._snapshot import HandlerSnapshot, OperationErrorSnapshot, breaker_health

__all__ = [
    "ErrorLog",
    "ErrorRecord",
    "build_report",
    "health_of",
    "operation_stats",
    "redact_text",
    "to_record",
]

_MESSAGE_LIMIT = 300


def redact_text(text: str) -> str:
    """``text`` under the library's one redaction policy (``coordination._redact.redact``)."""
    return redact(text)


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failed call, as kept in ``recent_errors`` and given to alert hooks."""

    timestamp: str
    operation: str
    error_type: str
    message: str
    severity: ErrorSeverity
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "operation": self.operation,
            "error_type": self.error_type,
            "message": self.message,
            "severity": self.severity.value,
            "attempts": self.attempts,
        }


class ErrorLog:
    """Counts of failed attempts by type and severity, and the last failed calls.

    The failure path stays cheap: counts are ``ReadableCount`` objects (``itertools.count``:
    ``next`` is atomic, so no lock once a type has its counter), and a failed call is kept as a raw
    tuple (``deque.append`` is atomic); timestamps are formatted and messages redacted only
    when a report or an alert hook asks for them.
    """

    def __init__(self, max_recent: int) -> None:
        self._lock = threading.Lock()
        self._by_type: dict[str, ReadableCount] = {}
        self._by_severity = {severity.value: ReadableCount() for severity in ErrorSeverity}
        self._recent: deque[_Raw] = deque(maxlen=max(1, max_recent))
        self._type_limit = 200  # distinct type names kept; the rest count under "other"

    def count_type(self, error_type: str) -> None:
        counter = self._by_type.get(error_type)
        if counter is None:
            counter = self._new_type(error_type)
        next(counter)

    def severity_counter(self, severity: ErrorSeverity) -> ReadableCount:
        return self._by_severity[severity.value]

    def _new_type(self, error_type: str) -> ReadableCount:
        with self._lock:
            if error_type not in self._by_type and len(self._by_type) >= self._type_limit:
                error_type = "other"
            return self._by_type.setdefault(error_type, ReadableCount())

    def add(
        self, operation: str, exc: BaseException, severity: ErrorSeverity, attempts: int
    ) -> _Raw:
        try:
            message = str(exc)
        except Exception:  # a hostile __str__ must not break error reporting
            message = f"<unprintable {type(exc).__name__}>"
        if len(message) > _MESSAGE_LIMIT:  # bound memory now; the note is added later
            message = message[: _MESSAGE_LIMIT + 1] + f"\0{len(message)}"
        raw = (time.time(), operation, type(exc).__name__, message, severity, attempts)
        self._recent.append(raw)
        return raw

    def copy(self) -> tuple[dict[str, int], dict[str, int], list[ErrorRecord]]:
        by_type = {name: counter_value(c) for name, c in list(self._by_type.items())}
        by_severity = {name: n for name, c in self._by_severity.items() if (n := counter_value(c))}
        return by_type, by_severity, [to_record(raw) for raw in list(self._recent)]


_Raw = tuple[float, str, str, str, ErrorSeverity, int]


def to_record(raw: _Raw) -> ErrorRecord:
    """A kept failure, formatted for people: ISO timestamp, redacted and truncated message."""
    at, operation, error_type, message, severity, attempts = raw
    if "\0" in message:
        kept, _, total = message.rpartition("\0")
        message = f"{kept[:_MESSAGE_LIMIT]}… [{int(total) - _MESSAGE_LIMIT} more characters]"
    return ErrorRecord(
        timestamp=datetime.fromtimestamp(at, UTC).isoformat(),
        operation=operation,
        error_type=error_type,
        message=redact_text(message),
        severity=severity,
        attempts=attempts,
    )


def build_report(snapshot: HandlerSnapshot) -> dict[str, Any]:
    """``get_error_report()``: the snapshot as a JSON-serialisable dict."""
    return {
        "status": snapshot.health().status.value,
        "total_operations": snapshot.total_operations,
        "successful_operations": snapshot.total("successes"),
        "failed_operations": snapshot.total("failures"),
        "total_retries": snapshot.total("retries"),
        "rejected_by_circuit_breaker": snapshot.total("rejections"),
        "errors_by_type": dict(snapshot.errors_by_type),
        "errors_by_severity": dict(snapshot.errors_by_severity),
        "recent_errors": [record.as_dict() for record in snapshot.recent_errors],
        "circuit_breakers": {name: b.as_dict() for name, b in snapshot.breakers.items()},
        "operations": operation_stats(snapshot.operations.values()),
        "timestamp": utc_timestamp(),
    }


def operation_stats(operations: Iterable[OperationErrorSnapshot]) -> dict[str, dict[str, Any]]:
    """``operation_stats()``: each operation's counts and its breaker's state."""
    return {op.name: op.stats() for op in operations}


def health_of(operations: Iterable[OperationErrorSnapshot]) -> dict[str, Any]:
    """``get_health_status()``: ``breaker_health`` as a dict."""
    ops = list(operations)
    health = breaker_health(ops)
    return {
        "status": health.status.value,
        "reason": health.reason,
        "open_breakers": list(health.open_breakers),
        "half_open_breakers": list(health.half_open_breakers),
        "operations": len(ops),
    }
