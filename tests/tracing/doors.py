"""What the door tests share: the library's spans recorded by the real OpenTelemetry SDK
(an in-memory exporter behind ``use_tracer_provider``, never the process-wide provider,
which OpenTelemetry lets a process set once), and W3C ``traceparent`` headers to send."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from coordination._tracing import use_tracer_provider

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Recorded:
    """The finished spans of one test, and the provider that records them."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def of_kind(self, kind: SpanKind) -> list[ReadableSpan]:
        return [span for span in self.spans if span.kind is kind]

    def one(self, kind: SpanKind) -> ReadableSpan:
        found = self.of_kind(kind)
        assert len(found) == 1, [(s.name, s.kind) for s in self.spans]
        return found[0]

    def clear(self) -> None:
        self.exporter.clear()


@contextmanager
def recording() -> Iterator[Recorded]:
    recorded = Recorded()
    with use_tracer_provider(recorded.provider):
        yield recorded
    recorded.provider.shutdown()


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")


def everything_shown(spans: Sequence[ReadableSpan]) -> str:
    """Every name, attribute and event a span exporter would send, as one text."""
    parts: list[Any] = []
    for span in spans:
        parts.append(span.name)
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        parts.append(span.status.description or "")
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    return "\n".join(str(part) for part in parts)
