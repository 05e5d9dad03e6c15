"""``ErrorSeverity``: how much an operation's failures matter.

Severity labels an operation's errors in error records, reports, metrics and logs, and
sets the level of the log line written when a call finally fails (LOW → DEBUG,
MEDIUM → INFO, HIGH → WARNING, CRITICAL → ERROR: the caller also gets the exception, so
the library does not shout twice). A CRITICAL failure also fires the handler's alert hook.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from .._settings import SETTINGS

__all__ = ["ErrorSeverity"]


class ErrorSeverity(StrEnum):
    """LOW / MEDIUM / HIGH / CRITICAL; ``ErrorSeverity.parse("high")`` accepts any case."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @classmethod
    def parse(cls, value: object) -> ErrorSeverity:
        if isinstance(value, ErrorSeverity):
            return value
        # The schema's check and words, as for the configuration's error_severity.
        return cls(SETTINGS["error_severity"].coerce(value, "keyword argument"))

    @property
    def log_level(self) -> int:
        return _LOG_LEVELS[self]


_LOG_LEVELS = {
    ErrorSeverity.LOW: logging.DEBUG,
    ErrorSeverity.MEDIUM: logging.INFO,
    ErrorSeverity.HIGH: logging.WARNING,
    ErrorSeverity.CRITICAL: logging.ERROR,
}
