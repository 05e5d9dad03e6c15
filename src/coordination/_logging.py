"""Per-component loggers, each redacting its records and carrying the call's context;
the JSON formatter. The library never configures the root logger.

Redaction is a filter on each ``coordination.*`` logger rather than a formatter, so it
holds whatever handler or formatter the application attaches (a ``StreamHandler``, a JSON
formatter, pytest's ``caplog``): a record is masked once, when it is emitted, before any
handler sees it. Records below the logger's level are never built, so this costs nothing
on a call that logs nothing.

The context is in ``extra``, so every formatter sees it as record attributes (structlog's
``ExtraAdder``, python-json-logger, ``%(operation)s``): each log call of the library
passes ``extra=log_extra(...)`` with what it knows (``operation``, ``severity``,
``attempt``, ``breaker_state``, and fields of its own such as ``event_type``), and a
filter on every library logger adds ``trace_id`` / ``span_id`` of the current span, so
no call site has to ask OpenTelemetry. ``json_log_formatter()`` writes a record as one
JSON object per line, redacted again (a handler also gets the application's records,
which no filter of ours has seen).
"""

from __future__ import annotations

import datetime as _datetime
import enum
import itertools
import logging
import math
import re
import threading
import traceback
from collections.abc import Mapping
from typing import Any

from . import _redact as _policy
from ._redact import REDACTED, is_secret_name, redact, redact_value, safe_repr, truncate
from ._tracing import current_ids

__all__ = [
    "FIELD_ATTEMPT",
    "FIELD_BREAKER_STATE",
    "FIELD_ERROR_TYPE",
    "FIELD_OPERATION",
    "FIELD_SEVERITY",
    "FIELD_SPAN_ID",
    "FIELD_TRACE_ID",
    "ContextFilter",
    "JsonLogFormatter",
    "RedactingFilter",
    "component_logger",
    "json_log_formatter",
    "library_logger",
    "log_extra",
    "redact_record",
]

# The context fields, as record attributes and JSON keys (docs/observability.md,
# "Structured logs"). Plain identifiers, not the spans' dotted attribute names: they are
# ``%(operation)s`` in a format string and keyword arguments in structlog.
FIELD_OPERATION = "operation"
FIELD_SEVERITY = "severity"
FIELD_ATTEMPT = "attempt"
FIELD_BREAKER_STATE = "breaker_state"
FIELD_TRACE_ID = "trace_id"
FIELD_SPAN_ID = "span_id"
FIELD_ERROR_TYPE = "error_type"

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
    message = _message(record)
    masked = _masked(message)
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
        elif type(value) is str:
            setattr(record, key, _masked(value))
        elif isinstance(value, str | Mapping | list | tuple):
            setattr(record, key, redact_value(value))  # what a JSON formatter would dump


def _message(record: logging.LogRecord) -> str:
    """The record's message; one whose arguments do not fit its format (logging would
    print them as they are) becomes its lenient text, kept as its ``msg``."""
    try:
        return record.getMessage()
    except Exception:
        message = _format_leniently(record)
        record.msg, record.args = message, ()
        return message


_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0 +-]*+\d*+(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _format_leniently(record: logging.LogRecord) -> str:
    """A record whose arguments do not fit its format (``%d`` given a string): every
    conversion as ``%s``, so a secret lands beside its name for the policy to see; when
    even that fails, the arguments' types only (their text could be anything)."""
    args = record.args
    try:
        template = str(record.msg)
    except Exception:  # a message object whose __str__ raises (logger.error(exc))
        template = f"<unprintable {type(record.msg).__name__}>"
    if not args:
        return template
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


class ContextFilter(logging.Filter):
    """A logger filter that adds what every record can know without its call site:
    ``trace_id`` and ``span_id`` (W3C hex) of the current span, and ``error_type`` of
    the exception logged with it; it lets every record through.

    A filter runs in the thread that logs, where the span is current; a handler may
    format later elsewhere (a ``QueueHandler``'s listener), where it is not. Without
    OpenTelemetry loaded it is one dictionary lookup."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if FIELD_TRACE_ID not in fields:  # a caller's own extra wins
            ids = current_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        exc_info = record.exc_info
        if isinstance(exc_info, tuple) and FIELD_ERROR_TYPE not in fields:
            error = exc_info[1]
            if error is not None:
                record.error_type = type(error).__name__
        return True


_FILTER = RedactingFilter()
_CONTEXT_FILTER = ContextFilter()
_lock = threading.Lock()


def library_logger(name: str = "coordination") -> logging.Logger:
    """The logger ``name`` (one of the library's), with the context and redacting
    filters on it (in that order: the context is in place before anything is masked)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        with _lock:
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(_CONTEXT_FILTER)
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


# --- the context of a log call ----------------------------------------------------------


def log_extra(
    operation: str | None = None,
    *,
    severity: object = None,
    attempt: int | None = None,
    breaker: object = None,
    breaker_state: object = None,
    **more: object,
) -> dict[str, object]:
    """The ``extra=`` of a library log call: the fields that apply, ``None`` left out.

    ``severity``, ``breaker_state`` and any enum in ``more`` are written as their value
    (``"HIGH"``, ``"OPEN"``). ``breaker``: a circuit breaker whose state is read when that
    costs no I/O (an in-memory one; a Redis breaker's state is a round trip, not made
    for a log line). A name a ``LogRecord`` already has (``name``, ``module``...) would
    make logging raise; it gets a trailing underscore instead. For example
    ``log_extra("charge", severity=ErrorSeverity.HIGH, attempt=3)`` is
    ``{"operation": "charge", "severity": "HIGH", "attempt": 3}``.
    """
    extra: dict[str, object] = {}
    if operation is not None:
        extra[FIELD_OPERATION] = operation
    if severity is not None:
        extra[FIELD_SEVERITY] = _plain(severity)
    if attempt is not None:
        extra[FIELD_ATTEMPT] = attempt
    if breaker_state is None and breaker is not None:
        breaker_state = _known_state(breaker)
    if breaker_state is not None:
        extra[FIELD_BREAKER_STATE] = _plain(breaker_state)
    for key, value in more.items():
        if value is not None:
            extra[f"{key}_" if key in _RECORD_FIELDS else key] = _plain(value)
    return extra


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _known_state(breaker: object) -> object:
    """``breaker.state`` when reading it does no I/O, else None; never raises (a log
    line must not fail because a custom breaker's property does)."""
    if getattr(breaker, "blocking", True):
        return None
    try:
        return getattr(breaker, "state", None)
    except Exception:
        return None


# --- one JSON object per line ---------------------------------------------------------

# The keys every line can have, in the order written; ``rename`` may change them.
_STANDARD_KEYS = ("timestamp", "level", "logger", "message", "exception", "stack")
_MAX_DEPTH = 10  # nested extra values deeper than this are written as their short repr
_MAX_INT_BITS = 10_000  # about 3 000 digits
_MAX_TEXT = 2000  # characters of an object written as its str() (a value of no JSON type)
# Items of one extra value written, all its containers together: a list holding itself
# ten times is 10**10 items at depth 10, which the depth alone does not bound.
_MAX_ITEMS = 1000


class JsonLogFormatter(logging.Formatter):
    """Writes each record as one line of JSON; made by ``json_log_formatter``."""

    def __init__(
        self,
        *,
        fields: Mapping[str, object] | None = None,
        rename: Mapping[str, str] | None = None,
        ensure_ascii: bool = False,
        trace_ids: bool = True,
    ) -> None:
        super().__init__()
        import json  # here, not at import: `import coordination` never loads json

        self._keys = _checked_keys(rename)
        self._fields = _checked_fields(fields)
        if not isinstance(ensure_ascii, bool):
            raise TypeError(f"ensure_ascii must be True or False, got {safe_repr(ensure_ascii)}")
        if not isinstance(trace_ids, bool):
            raise TypeError(f"trace_ids must be True or False, got {safe_repr(trace_ids)}")
        self._ascii = ensure_ascii
        self._trace_ids = trace_ids
        # made once: json.dumps with any option builds a new encoder per call
        self._encode = json.JSONEncoder(ensure_ascii=ensure_ascii).encode
        self._escaped = json.JSONEncoder(ensure_ascii=True).encode

    def format(self, record: logging.LogRecord) -> str:
        timestamp, level, logger, message, exception, stack = keys = self._keys
        document: dict[str, object] = {
            timestamp: _timestamp(record.created),
            level: record.levelname,
            logger: record.name,
            message: _masked(_message(record)),
        }
        for key, value in self._fields.items():
            _put(document, keys, key, value)
        for key, value in record.__dict__.items():
            if key in _RECORD_FIELDS:
                continue
            if is_secret_name(key):
                value = REDACTED
            elif type(value) is str:  # most fields: no type dispatch
                value = _masked(value)
            else:
                value = _json_value(value)
            if key in document or key in keys:
                _put(document, keys, key, value)
            else:
                document[key] = value
        if self._trace_ids and FIELD_TRACE_ID not in record.__dict__:
            ids = current_ids()  # a record of the application's, logged inside a span
            if ids is not None:
                _put(document, keys, FIELD_TRACE_ID, ids[0])
                _put(document, keys, FIELD_SPAN_ID, ids[1])
        text = record.exc_text
        if not text and record.exc_info and record.exc_info[0] is not None:
            text = self.formatException(record.exc_info)
        if text:
            document[exception] = redact(text)
        if record.stack_info:
            document[stack] = redact(self.formatStack(record.stack_info))
        line: str = self._encode(document)
        if not line.isascii():
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: as \\udcxx, never a failed write
                line = self._escaped(document)
        return line


def _put(document: dict[str, object], keys: tuple[str, ...], key: str, value: object) -> None:
    """``document[key] = value``; a key taken already, or one of the line's own ``keys``
    (``level`` in ``extra``, a static field named ``message``), as ``extra_<key>``: the
    line's own fields stay what they say."""
    while key in document or key in keys:
        key = f"extra_{key}"
    document[key] = value


# The last second written and its text: the lines of one second share it (one tuple,
# swapped whole, so threads formatting at once never see a second with another's text).
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC, to the microsecond: ``2026-12-02T01:17:16.123456Z``."""
    global _last_second
    try:
        second = math.floor(created)
        micros = round((created - second) * 1_000_000)  # to the nearest, as datetime does
        if micros == 1_000_000:
            second, micros = second + 1, 0
        known, text = _last_second
        if second != known:
            moment = _datetime.datetime.fromtimestamp(second, _datetime.UTC)
            text = moment.strftime("%Y-%m-%dT%H:%M:%S")
            _last_second = (second, text)
    except (OverflowError, ValueError, OSError, TypeError):  # a record made by hand
        return safe_repr(created)
    return f"{text}.{micros:06d}Z"


# Short texts recur on every line (operation names, states, error types, logger names,
# a message logged again) and redacting one costs more than the rest of its field. The
# texts found to hold nothing to mask are remembered — never one that held a secret, so
# no secret outlives its record here —, at most _CLEAN_TEXTS of them (then forgotten
# all at once), and only under the redaction patterns they were checked with: adding or
# removing a pattern makes a new tuple, which starts a new set.
_CLEAN_TEXT = 256
_CLEAN_TEXTS = 4096
_clean: tuple[tuple[re.Pattern[str], ...], dict[str, None]] = ((), {})


def _masked(text: str) -> str:
    """``redact(text)``, remembering the short texts it leaves as they are."""
    global _clean
    if type(text) is not str or len(text) > _CLEAN_TEXT:
        return redact(text)
    patterns = _policy._extra_patterns
    checked, clean = _clean
    if checked is not patterns:
        clean = {}
        _clean = (patterns, clean)
    elif text in clean:
        return text
    masked = redact(text)
    if masked == text:
        if len(clean) >= _CLEAN_TEXTS:
            clean.clear()  # unique texts (trace ids) must not pin it full
        clean[text] = None
    return masked


def _json_value(value: Any, depth: int = _MAX_DEPTH, budget: list[int] | None = None) -> Any:
    """``value`` as JSON types, redacted: strings masked, secret-named keys' values
    replaced (and the value of a ``(name, value)`` pair, as in a list of headers), deep or
    cyclic nesting cut at ``depth`` and wide nesting after ``_MAX_ITEMS`` items, values
    of no JSON type as their text (enums as their value, dates in ISO 8601). Never
    raises: a value that fails to be read (a lazy proxy whose ``__class__`` raises, a
    list whose ``__iter__`` does) is written as ``<unprintable type>``."""
    if budget is None:
        budget = [_MAX_ITEMS]
    try:
        return _json_item(value, depth, budget)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _json_item(value: Any, depth: int, budget: list[int]) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        # Past ~4 300 digits Python refuses to write an int as text (CVE-2020-10735)
        return (
            value if value.bit_length() <= _MAX_INT_BITS else f"<int of {value.bit_length()} bits>"
        )
    if isinstance(value, str):
        # str.__str__: the characters themselves, not a subclass's methods (which redact
        # would call, and which could raise or lie)
        return _masked(str.__str__(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN nor inf
    if isinstance(value, enum.Enum):
        return _json_value(value.value, depth - 1, budget) if depth > 0 else safe_repr(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if depth <= 0 or budget[0] <= 0:
            # not its repr: the repr of a wide nesting is as big as the nesting
            return f"<{type(value).__name__} of {len(value)} items>"
        if isinstance(value, Mapping):
            try:  # read up to what may be written (a mapping of a million items)
                items = list(itertools.islice(value.items(), budget[0] + 1))
            except Exception:  # a mapping of the application's that cannot be listed
                return safe_repr(value)
            document: dict[str, Any] = {}
            for key, item in items:
                if budget[0] <= 0:
                    document["…"] = f"{len(value) - len(document)} more items"
                    break
                budget[0] -= 1
                document[_json_key(key)] = (
                    REDACTED if _secret_key(key) else _json_value(item, depth - 1, budget)
                )
            return document
        written: list[Any] = []
        for item in value:
            if budget[0] <= 0:
                written.append(f"… {len(value) - len(written)} more items")
                break
            budget[0] -= 1
            written.append(_json_value(item, depth - 1, budget))
        if len(written) == 2 and isinstance(value, list | tuple) and _secret_key(value[0]):
            written[1] = REDACTED  # a (name, value) pair: ("authorization", "Bearer …")
        return written
    if isinstance(value, _datetime.date | _datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return safe_repr(bytes(value[:201]), 200)  # 201: safe_repr says it was cut
    try:
        text = (
            f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
        )
    except Exception:  # a hostile __str__ must not lose the line
        return f"<unprintable {type(value).__name__}>"
    return truncate(redact(text), _MAX_TEXT)


def _secret_key(key: object) -> bool:
    """A secret-looking name, also as bytes (ASGI headers: ``b"authorization"``)."""
    if isinstance(key, bytes | bytearray):
        key = bytes(key[:256]).decode("latin-1")
    return is_secret_name(key)


def _json_key(key: object) -> str:
    if isinstance(key, str):
        return _masked(str.__str__(key))
    value = _json_value(key, 0)
    return value if isinstance(value, str) else safe_repr(value)


def _checked_keys(rename: Mapping[str, str] | None) -> tuple[str, ...]:
    if rename is None:
        return _STANDARD_KEYS
    if not isinstance(rename, Mapping):
        raise TypeError(f"rename must be a mapping of key to new key, got {safe_repr(rename)}")
    unknown = sorted(map(safe_repr, set(rename) - set(_STANDARD_KEYS)))
    if unknown:
        raise ValueError(
            f"rename: {', '.join(unknown)} is not a key of the line "
            f"(one of {', '.join(_STANDARD_KEYS)})"
        )
    keys = tuple(rename.get(key, key) for key in _STANDARD_KEYS)
    for old, new in zip(_STANDARD_KEYS, keys, strict=True):
        if not isinstance(new, str) or not new:
            raise TypeError(f"rename[{old!r}] must be a non-empty string, got {safe_repr(new)}")
    if len(set(keys)) != len(keys):
        shown = ", ".join(f"{old} -> {new}" for old, new in rename.items())
        raise ValueError(f"rename gives two keys of the line one name ({shown})")
    return keys


def _checked_fields(fields: Mapping[str, object] | None) -> dict[str, object]:
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise TypeError(f"fields must be a mapping of name to value, got {safe_repr(fields)}")
    checked: dict[str, object] = {}
    for key, value in fields.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"fields: a name must be a non-empty string, got {safe_repr(key)}")
        checked[key] = REDACTED if is_secret_name(key) else _json_value(value)
    return checked


def json_log_formatter(
    *,
    fields: Mapping[str, object] | None = None,
    rename: Mapping[str, str] | None = None,
    ensure_ascii: bool = False,
    trace_ids: bool = True,
) -> logging.Formatter:
    """A ``logging.Formatter`` writing each record as one JSON object per line.

    Each line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    every ``extra`` field of the record (the library's context: ``operation``,
    ``severity``, ``attempt``, ``breaker_state``, ``trace_id``, ``span_id``...), then
    ``exception`` and ``stack`` when there are. Everything written is redacted, nested
    values too, whichever logger the record came from.

    ``fields``: static fields on every line (``{"service": "checkout"}``). ``rename``:
    other names for the standard keys (``{"timestamp": "@timestamp"}``). ``ensure_ascii``:
    escape non-ASCII text. ``trace_ids``: give the application's own records the current
    span's ids too (the library's records always carry them).

    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(json_log_formatter(fields={"service": "checkout"}))
    """
    return JsonLogFormatter(
        fields=fields, rename=rename, ensure_ascii=ensure_ascii, trace_ids=trace_ids
    )
