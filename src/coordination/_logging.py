"""Per-component loggers, each redacting its records. The library never configures the
root logger.

Redaction is a filter on each ``coordination.*`` logger rather than a formatter, so it
holds whatever handler or formatter the application attaches (a ``StreamHandler``, a JSON
formatter, pytest's ``caplog``): a record is masked once, when it is emitted, before any
handler sees it. Records below the logger's level are never built, so this costs nothing
on a call that logs nothing.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Mapping

from ._redact import REDACTED, is_secret_name, redact, redact_value, safe_repr

__all__ = ["RedactingFilter", "component_logger", "library_logger", "redact_record"]

# What every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def redact_record(record: logging.LogRecord) -> None:
    """Mask secrets in ``record``'s message, exception, stack and ``extra`` values, in place.

    A record with nothing to mask is left as it was (its ``msg`` template and ``args``
    kept for handlers that group by them); one with something to mask gets the masked
    text as ``msg`` and no ``args``, and its exception becomes masked ``exc_text`` (the
    exception object is dropped so no handler formats it again, unmasked).
    """
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging would print the args as they are
        message = _format_leniently(record)
        record.msg, record.args = message, ()
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        masked = redact(text)
        if masked != text:
            record.exc_text, record.exc_info = masked, None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    for key, value in list(vars(record).items()):
        if key in _RECORD_FIELDS:
            continue
        if is_secret_name(key):
            setattr(record, key, REDACTED)
        elif isinstance(value, str | Mapping | list | tuple):
            setattr(record, key, redact_value(value))  # what a JSON formatter would dump


_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0 +-]*+\d*+(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _format_leniently(record: logging.LogRecord) -> str:
    """A record whose arguments do not fit its format (``%d`` given a string): every
    conversion as ``%s``, so a secret lands beside its name for the policy to see; when
    even that fails, the arguments' types only (their text could be anything)."""
    template, args = str(record.msg), record.args
    if isinstance(args, tuple):
        try:
            return _CONVERSION.sub("%s", template) % tuple(map(safe_repr, args))
        except Exception:
            pass
    kinds = ", ".join(type(a).__name__ for a in (args if isinstance(args, tuple) else (args,)))
    return f"{template} (arguments that do not fit the format: {kinds})"


class RedactingFilter(logging.Filter):
    """A logger filter that masks secrets in every record and lets them all through."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_FILTER = RedactingFilter()
_lock = threading.Lock()


def library_logger(name: str = "coordination") -> logging.Logger:
    """The logger ``name`` (one of the library's), with the redacting filter on it."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        with _lock:
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(_FILTER)
    return logger


def component_logger(component: str, *, debug: bool = False) -> logging.Logger:
    """The logger ``coordination.<component>``; ``debug=True`` sets it to DEBUG.

    Handlers stay the application's business: without any, Python's last-resort handler
    shows warnings and errors only, so debug output appears once the application
    configures logging (``logging.basicConfig``).
    """
    logger = library_logger(f"coordination.{component}")
    if debug:
        logger.setLevel(logging.DEBUG)
    return logger
