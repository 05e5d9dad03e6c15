"""How an event travels on a broker: a JSON body, its type and trace context in headers.

One envelope for every broker source, so a producer written for one reads the same on
another: the body is the event as UTF-8 JSON, the header ``event-type`` names its type
(RabbitMQ also sets the AMQP ``type`` property, which a consumer reads when the header is
missing), and W3C ``traceparent`` / ``tracestate`` / ``baggage`` headers carry the
publisher's trace context when OpenTelemetry is loaded (``_tracing.inject_context``; the
sources read them back with ``_door_spans.delivered``).

A message that cannot be decoded — over ``max_bytes``, not UTF-8, not JSON, nested too
deeply, without a type — raises ``PoisonMessage`` naming what is wrong; the source
dead-letters it alone, at once, as a bounded description (``describe``), never retried.
"""

from __future__ import annotations

import base64
import codecs
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError, StoreError
from .._redact import redact, safe_repr, truncate
from .._tracing import inject_context

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "EVENT_TYPE_HEADER",
    "MAX_DECODED_DEPTH",
    "Message",
    "PoisonMessage",
    "decode_message",
    "describe",
    "encode_message",
    "nested_deeper_than",
]

EVENT_TYPE_HEADER = "event-type"
_MAX_TYPE_CHARS = 256
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
_DESCRIBED_BODY_CHARS = 4096  # of an undecodable body, kept in its dead letter
_DESCRIBED_HEADERS = 32
_REDACT_WINDOW = 4096  # characters past a shown value's end still redacted before the cut
# Arrays and objects inside each other that a delivered body may open. json's decoder
# gives up with a RecursionError only on some Pythons at some depths (3.13 decodes 4 000
# levels that 3.11 refuses), so the limit is the sources' own, the same on every Python.
MAX_DECODED_DEPTH = 1000
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


class PoisonMessage(ValueError):
    """A delivered message that cannot become an event (the message says why)."""


@dataclass(frozen=True, slots=True)
class Message:
    """What a source publishes: the body and its headers (all text)."""

    body: bytes
    headers: dict[str, str]


def encode_message(event: Any, event_type: str) -> Message:
    """The message for ``event``: JSON body, its type and the current trace context."""
    if (
        not isinstance(event_type, str)
        or not event_type
        or not event_type.isprintable()
        or len(event_type) > _MAX_TYPE_CHARS
    ):  # what decode_message accepts: anything else would be poison to every consumer
        raise ConfigError(
            f"event_type: expected non-empty printable text of at most {_MAX_TYPE_CHARS} "
            f"characters, got {safe_repr(event_type)}"
        )
    try:
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
        raise StoreError(f"event of type {event_type!r} is not JSON: {safe_repr(event)}") from exc
    headers = {EVENT_TYPE_HEADER: event_type}
    inject_context(headers)  # the current span's (a publish's PRODUCER span, when tracing)
    return Message(body, headers)


def decode_message(
    body: bytes,
    headers: Mapping[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    fallback_type: str | None = None,
) -> tuple[Any, str]:
    """``(event, event_type)``; ``PoisonMessage`` naming what is wrong."""
    body = _as_bytes(body)
    if len(body) > max_bytes:
        raise PoisonMessage(
            f"the body has {len(body)} bytes, more than max_message_bytes={max_bytes}"
        )
    event_type = _header_text(headers.get(EVENT_TYPE_HEADER)) or fallback_type
    if not event_type:
        raise PoisonMessage(f"no {EVENT_TYPE_HEADER!r} header")
    if not event_type.isprintable() or len(event_type) > _MAX_TYPE_CHARS:
        raise PoisonMessage(f"the event type is not short printable text: {safe_repr(event_type)}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PoisonMessage(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if nested_deeper_than(text, MAX_DECODED_DEPTH):
        raise PoisonMessage(
            f"the body is nested too deeply to decode (more than {MAX_DECODED_DEPTH} levels)"
        )
    try:
        return json.loads(text), event_type
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"the body is not JSON ({exc})") from None
    except RecursionError:
        raise PoisonMessage("the body is nested too deeply to decode") from None
    except ValueError as exc:  # an integer beyond the int-to-text limit
        raise PoisonMessage(f"the body cannot be decoded ({truncate(str(exc), 200)})") from None


def nested_deeper_than(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` opens more than ``limit`` arrays or objects inside each
    other (brackets inside strings do not count). Linear, and free for a body with fewer
    brackets than ``limit`` in all."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def describe(body: bytes, headers: Mapping[str, Any]) -> dict[str, Any]:
    """A bounded, JSON-safe description of a message that could not be decoded, for its
    dead letter: the body's size, its start (text, or base64 when not UTF-8) and headers."""
    body = _as_bytes(body)
    head = body[: _DESCRIBED_BODY_CHARS * 4]
    try:  # a character cut in two at the end of the head is left out, not called binary
        decoder = codecs.getincrementaldecoder("utf-8")()
        shown = truncate(decoder.decode(head, final=len(head) == len(body)), _DESCRIBED_BODY_CHARS)
        encoding = "utf-8"
    except UnicodeDecodeError:
        shown = base64.b64encode(body[:_DESCRIBED_BODY_CHARS]).decode("ascii")
        encoding = "base64"
    described: dict[str, str] = {}
    for name, value in itertools.islice(headers.items(), _DESCRIBED_HEADERS):
        shown_name = name if isinstance(name, str) else _header_text(name) or "?"
        described[truncate(shown_name, 100)] = _bounded(_header_text(value) or "", 500)
    return {"body": shown, "body_encoding": encoding, "body_bytes": len(body), "headers": described}


def _bounded(text: str, limit: int) -> str:
    """Redacted, then cut (a cut can split a URL's userinfo), from a bounded window."""
    if len(text) <= limit + _REDACT_WINDOW:
        return truncate(redact(text), limit)
    return (
        f"{redact(text[: limit + _REDACT_WINDOW])[:limit]}… [{len(text) - limit} more characters]"
    )


def _as_bytes(body: Any) -> bytes:
    """A body as ``bytes`` (clients hand out ``bytearray`` or ``memoryview`` too)."""
    return body if isinstance(body, bytes) else bytes(body)


def _header_text(value: Any) -> str | None:
    """A header value as text; None when it has none (never raising: a header is input)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        return str(value)
    except Exception:  # an int beyond the int-to-text limit, a nesting too deep, a bad __str__
        return None
