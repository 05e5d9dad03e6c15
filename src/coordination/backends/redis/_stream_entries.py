"""How events sit in a stream entry (two fields: ``event_type`` and ``event`` as JSON, plus
the W3C trace fields ``traceparent``, ``tracestate``, ``baggage`` when the publisher had a
trace context), and the small conversions of redis-py's replies the stream source needs.

Entries are kept as Redis sent them (bytes) until one is decoded, so a poison entry — not
UTF-8, not JSON, nested too deeply, without its fields — fails alone, in ``decode``, and is
dead-lettered with its raw fields instead of failing the whole read.
"""

from __future__ import annotations

import json
from typing import Any

from ..._errors import ConfigError, StoreError
from ..._redact import redact, safe_repr, truncate
from ..._tracing import inject_context
from .._messages import MAX_DECODED_DEPTH, nested_deeper_than

__all__ = [
    "TRACE_FIELDS",
    "Entry",
    "RawFields",
    "carried",
    "dead_fields",
    "decode",
    "encode",
    "raw_fields",
    "read_entries",
    "text",
]

RawFields = dict[bytes | str, bytes | str]
Entry = tuple[str, RawFields]
TRACE_FIELDS = ("traceparent", "tracestate", "baggage")
_TRACE_KEYS = tuple((name, name.encode()) for name in TRACE_FIELDS)  # as str, as bytes


def encode(event: Any, event_type: str) -> dict[str, str]:
    """The stream fields of one event."""
    if not isinstance(event_type, str) or not event_type:
        raise ConfigError(f"event_type: expected a non-empty string, got {event_type!r}")
    try:
        payload = json.dumps(event, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"event of type {event_type!r} is not JSON: {safe_repr(event)}") from exc
    fields = {"event_type": event_type, "event": payload}
    inject_context(fields)  # the current span's (the publish's PRODUCER span, when tracing)
    return fields


def carried(fields: RawFields) -> dict[str, bytes | str] | None:
    """The entry's trace fields as a carrier for ``_tracing.extract_context`` (redis-py
    hands out bytes keys), or None when it has none: an entry of a producer without a
    trace, or of one written before entries carried them."""
    carrier: dict[str, bytes | str] | None = None
    for name, key in _TRACE_KEYS:
        value = fields.get(key)
        if value is None:
            value = fields.get(name)
        if value is not None:
            if carrier is None:
                carrier = {}
            carrier[name] = value
    return carrier


def _field(fields: RawFields, name: str) -> str | None:
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{name!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    return value


def decode(fields: RawFields) -> tuple[Any, str]:
    """``(event, event_type)`` from stream fields; ``ValueError`` naming what is wrong."""
    event_type = _field(fields, "event_type")
    if not event_type:
        raise ValueError("no 'event_type' field")
    if not event_type.isprintable():
        raise ValueError(f"'event_type' is not printable text: {safe_repr(event_type)}")
    payload = _field(fields, "event")
    if payload is None:
        raise ValueError("no 'event' field")
    if nested_deeper_than(payload, MAX_DECODED_DEPTH):
        raise ValueError(
            f"'event' is nested too deeply to decode (more than {MAX_DECODED_DEPTH} levels)"
        )
    try:
        return json.loads(payload), event_type
    except json.JSONDecodeError as exc:
        raise ValueError(f"'event' is not JSON ({exc})") from None
    except RecursionError:
        raise ValueError("'event' is nested too deeply to decode") from None
    except ValueError as exc:  # e.g. an integer beyond the int-to-text limit
        raise ValueError(f"'event' cannot be decoded ({truncate(str(exc), 200)})") from None


def dead_fields(fields: RawFields, reason: str, dead_letter_id: object) -> RawFields:
    """The entry's own fields (as sent, bytes kept) plus why it was dead-lettered."""
    result: RawFields = {
        key: value for key, value in fields.items() if key not in _DEAD_LETTER_FIELDS
    }
    result["reason"] = truncate(redact(reason), 1000)
    if dead_letter_id is not None:
        result["dead_letter_id"] = str(dead_letter_id)
    return result


_DEAD_LETTER_FIELDS = frozenset(
    {"reason", b"reason", "dead_letter_id", b"dead_letter_id", "source_id", b"source_id"}
)


def text(value: Any) -> str:
    """An entry id or other ASCII reply as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def raw_fields(raw: Any) -> RawFields:
    return dict(raw)


def read_entries(reply: Any) -> list[Entry]:
    if not reply:
        return []
    messages = reply[0][1]
    return [(text(i), raw_fields(f)) for i, f in messages if f is not None]
