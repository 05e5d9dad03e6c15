"""How events sit in a stream entry (two fields: ``event_type`` and ``event`` as JSON), and
the small conversions of redis-py's replies the stream source needs."""

from __future__ import annotations

import json
from typing import Any

from ..._errors import ConfigError, StoreError
from ..._redact import redact, safe_repr, truncate

__all__ = ["Entry", "dead_fields", "decode", "encode", "fields_of", "read_entries", "text"]

Entry = tuple[str, dict[str, str]]


def encode(event: Any, event_type: str) -> dict[str, str]:
    """The stream fields of one event."""
    if not isinstance(event_type, str) or not event_type:
        raise ConfigError(f"event_type: expected a non-empty string, got {event_type!r}")
    try:
        payload = json.dumps(event, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"event of type {event_type!r} is not JSON: {safe_repr(event)}") from exc
    return {"event_type": event_type, "event": payload}


def decode(fields: dict[str, str]) -> tuple[Any, str]:
    """``(event, event_type)`` from stream fields; ``ValueError`` naming what is wrong."""
    event_type = fields.get("event_type")
    if not event_type:
        raise ValueError("no 'event_type' field")
    if "event" not in fields:
        raise ValueError("no 'event' field")
    try:
        return json.loads(fields["event"]), event_type
    except json.JSONDecodeError as exc:
        raise ValueError(f"'event' is not JSON ({exc})") from None


def dead_fields(fields: dict[str, str], reason: str, dead_letter_id: object) -> dict[str, str]:
    result = dict(fields)
    result["reason"] = truncate(redact(reason), 1000)
    if dead_letter_id is not None:
        result["dead_letter_id"] = str(dead_letter_id)
    return result


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fields_of(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def read_entries(reply: Any) -> list[Entry]:
    if not reply:
        return []
    messages = reply[0][1]
    return [(text(i), fields_of(f)) for i, f in messages if f is not None]
