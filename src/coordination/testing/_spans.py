"""``capture_spans()``: the library's spans of a block, recorded by OpenTelemetry's SDK.

The SDK (``opentelemetry-sdk``) is imported when the helper is used, never before: the
library itself needs only the API, and only while a provider is set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .._tracing import use_tracer_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["capture_spans"]


@contextmanager
def capture_spans() -> Iterator[list[ReadableSpan]]:
    """The library's spans ended inside the block, in the order they ended; the list
    fills as they end (read it inside the block too).

    >>> from coordination import handle_errors
    >>> with capture_spans() as spans:
    ...     _ = handle_errors(operation_name="fetch")(lambda: 1)()
    >>> [span.name for span in spans]
    ['fetch']

    Only this library's spans are kept (a provider of its own, not the global one:
    OpenTelemetry lets a process set that once); sampling is the SDK's default, every
    span recorded. Needs ``opentelemetry-sdk``.
    """
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError as exc:
        raise ImportError(
            "capture_spans() needs the OpenTelemetry SDK: pip install opentelemetry-sdk"
        ) from exc

    spans: list[ReadableSpan] = []

    class _Exporter(InMemorySpanExporter):
        # the SDK's in-memory exporter, also appending to the list the block holds
        def export(self, batch: Sequence[ReadableSpan]) -> Any:
            spans.extend(batch)
            return super().export(batch)

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Exporter()))
    try:
        with use_tracer_provider(provider):
            yield spans
    finally:
        provider.shutdown()
