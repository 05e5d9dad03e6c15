"""The spans of the doors that messages pass: a publish (PRODUCER), an event processed
(CONSUMER), (an error on any of them is recorded by ``_tracing.span_error``, redacted).

Nothing here is called unless ``_tracing.current_tracer()`` answered a tracer, with one
exception: a broker or stream source carrying a producer's trace context makes it
current (``delivered``) even with no tracer provider, so the handler's own
instrumentation still joins the producer's trace, as before spans existed.

How a consumer span gets its facts: the source knows the message (its broker, queue or
stream, id) and the processor knows the event (its type, operation, outcome). The source
says what it knows for the duration of one hand-over (``delivered``, a context variable:
it follows the event into ``asyncio.to_thread`` and a worker thread's copy of the
context), and the processor's span takes it, once: a handler that processes another
event itself does not pass the outer message's facts on.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from ._bounded import OVERFLOW_OPERATION
from ._errors import EventDeadLettered
from ._redact import truncate
from ._tracing import ATTRIBUTE_OPERATION, ATTRIBUTE_OUTCOME, extract_context, span_error

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, Span, Tracer

__all__ = [
    "ATTRIBUTE_EVENT_TYPE",
    "MessageFacts",
    "OpenTelemetryApi",
    "TracedBlock",
    "consumer_span",
    "delivered",
    "operation_for",
    "otel",
    "producer_span",
    "replay_span",
    "span_name",
    "task_publish_span",
    "task_span",
]

ATTRIBUTE_EVENT_TYPE: Final = "coordination.event_type"
_MAX_NAME = 120  # characters of a caller's text in a span name (event types are ≤ 256)


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What a source knows of the message it hands to the processor (messaging semconv)."""

    system: str  # "rabbitmq", "nats", "redis"
    destination: str  # the queue, subject or stream
    message_id: str | None = None  # the message's own id, where it has one (a stream entry's)
    delivery: str | None = None  # how the source's logs name the delivery ("delivery tag 7")


class OpenTelemetryApi:
    """The few OpenTelemetry names the doors call, looked up once per process: an import
    statement inside a function is a Python-level lookup per call (about a microsecond a
    request). Made only once a tracer exists, i.e. once OpenTelemetry is loaded."""

    __slots__ = (
        "CONSUMER",
        "ERROR",
        "INTERNAL",
        "Link",
        "PRODUCER",
        "SERVER",
        "Status",
        "attach",
        "current_span",
        "detach",
        "in_context",
    )

    def __init__(self) -> None:
        from opentelemetry import context, trace

        self.attach = context.attach
        self.detach = context.detach
        self.in_context = trace.set_span_in_context
        self.current_span = trace.get_current_span
        self.Link = trace.Link
        self.CONSUMER = trace.SpanKind.CONSUMER
        self.INTERNAL = trace.SpanKind.INTERNAL
        self.PRODUCER = trace.SpanKind.PRODUCER
        self.SERVER = trace.SpanKind.SERVER
        self.Status = trace.Status
        self.ERROR = trace.StatusCode.ERROR


_api: OpenTelemetryApi | None = None


def otel() -> OpenTelemetryApi:
    """OpenTelemetry's functions (first call: looked up; a race makes two, both right)."""
    global _api
    api = _api
    if api is None:
        api = _api = OpenTelemetryApi()
    return api


_facts: contextvars.ContextVar[MessageFacts | None] = contextvars.ContextVar(
    "coordination_message_facts", default=None
)


def span_name(text: str) -> str:
    """A caller's text (an event type) as it may appear in a span name: short, one line."""
    text = text if len(text) <= _MAX_NAME else text[:_MAX_NAME] + "…"
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


class TracedBlock:
    """A span current for the duration of a ``with`` block, ended when the block ends.

    ``outcome`` (``coordination.outcome``) is what the block ended in; an exception out of
    the block sets the ERROR status and is recorded (redacted). Not a generator-based
    context manager: one object per message, no generator frame.
    """

    __slots__ = ("_facts_token", "_token", "outcome", "settled", "span")

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        kind: Any,
        attributes: dict[str, Any],
        facts_token: contextvars.Token[MessageFacts | None] | None = None,
        parent: Context | None = None,
        links: Sequence[Link] | None = None,
    ) -> None:
        api = otel()
        self.outcome = "processed"
        # an exception the block's owner took for a hand-over, not a failure (a Celery
        # retry): the span ends with ``outcome``, unmarked
        self.settled: BaseException | None = None
        self._facts_token = facts_token
        self.span: Span = tracer.start_span(
            name,
            context=parent,  # None: the current context
            kind=kind,
            attributes=attributes,
            links=links,
            record_exception=False,  # recorded redacted by _tracing.span_error, not as it is
            set_status_on_exception=False,
        )
        self._token = api.attach(api.in_context(self.span, parent))

    def __enter__(self) -> TracedBlock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self.span
        try:
            if error is None or error is self.settled:
                span.set_attribute(ATTRIBUTE_OUTCOME, self.outcome)
            elif isinstance(error, EventDeadLettered):
                # Settled: stored for replay. The span shows what the handler raised.
                span.set_attribute(ATTRIBUTE_OUTCOME, "dead_lettered")
                span.set_attribute("coordination.dead_letter_id", str(error.dead_letter_id))
                cause = error.__cause__
                span_error(span, cause if isinstance(cause, BaseException) else error)
            elif isinstance(error, Exception):
                span.set_attribute(ATTRIBUTE_OUTCOME, "error")
                span_error(span, error)
            else:  # cancelled, interrupted: not a failure of the work itself
                span.set_attribute(ATTRIBUTE_OUTCOME, "cancelled")
        finally:
            otel().detach(self._token)
            if self._facts_token is not None:
                _facts.reset(self._facts_token)
            span.end()


def consumer_span(tracer: Tracer, event_type: str, operation: str) -> TracedBlock:
    """The CONSUMER span ``"<event_type> process"`` of one event, child of the current
    context (the producer's, which the source made current), with the facts the source
    gave about the message, if it gave any."""
    facts = _facts.get()
    attributes: dict[str, Any] = {
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        ATTRIBUTE_EVENT_TYPE: truncate(event_type, 256),
        ATTRIBUTE_OPERATION: operation,
    }
    token = None
    if facts is not None:
        attributes["messaging.system"] = facts.system
        attributes["messaging.destination.name"] = facts.destination
        if facts.message_id is not None:
            attributes["messaging.message.id"] = facts.message_id
        if facts.delivery is not None:  # the same words as the source's log lines
            attributes["coordination.delivery"] = facts.delivery
        token = _facts.set(None)  # taken: a nested event is not this message
    # The operation is the bounded name (beyond max_operation_names, the overflow name):
    # a producer inventing event types cannot invent span names.
    shown = OVERFLOW_OPERATION if operation == OVERFLOW_OPERATION else event_type
    return TracedBlock(tracer, f"{span_name(shown)} process", otel().CONSUMER, attributes, token)


def operation_for(processor: object, event_type: str) -> str:
    """The processor's bounded operation name for ``event_type`` (its ``operation_for``),
    or ``""`` for a processor shaped otherwise: the span is then named by the type."""
    names = getattr(processor, "operation_for", None)
    if names is None:
        return ""
    try:
        return str(names(event_type))
    except Exception:  # a processor of the application's own: naming must not fail a publish
        return ""


def producer_span(
    tracer: Tracer, event_type: str, operation: str, system: str, destination: str
) -> TracedBlock:
    """The PRODUCER span ``"<event_type> publish"`` around one publish; the message
    published inside it carries this span's context, so the consumer's span is its child.
    ``operation`` is the processor's bounded name for the type: past its cap the span is
    named by the overflow name, as the consumer's is."""
    attributes: dict[str, Any] = {
        "messaging.system": system,
        "messaging.destination.name": destination,
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        ATTRIBUTE_EVENT_TYPE: truncate(event_type, 256) if isinstance(event_type, str) else "?",
    }
    if operation == OVERFLOW_OPERATION:
        name = OVERFLOW_OPERATION
    else:
        name = span_name(event_type) if isinstance(event_type, str) else "?"
    block = TracedBlock(tracer, f"{name} publish", otel().PRODUCER, attributes)
    block.outcome = "published"
    return block


def task_publish_span(tracer: Tracer, operation: str, task_name: str) -> TracedBlock:
    """The PRODUCER span ``"<operation> publish"`` around sending one Celery task
    (``delay``, ``apply_async``, a signature's); the task's headers sent inside it carry
    this span's context, so the worker's delivery span (``task_span``) is its child.
    ``operation`` is the task's operation name (the application's, bounded by its
    tasks), never a value of the call."""
    attributes: dict[str, Any] = {
        "messaging.system": "celery",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        ATTRIBUTE_OPERATION: operation,
        "coordination.celery.task": task_name,
    }
    block = TracedBlock(tracer, f"{span_name(operation)} publish", otel().PRODUCER, attributes)
    block.outcome = "published"
    return block


def task_span(
    tracer: Tracer,
    operation: str,
    carrier: Mapping[str, Any],
    attributes: dict[str, Any],
) -> TracedBlock:
    """The CONSUMER span of one task execution (a Celery delivery), named by the
    operation, child of the publisher's context when the task's headers carry one
    (``traceparent``, as OpenTelemetry's Celery instrumentation sends it), else of the
    current context."""
    attributes = {
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        ATTRIBUTE_OPERATION: operation,
        **attributes,
    }
    parent = extract_context(carrier)
    return TracedBlock(tracer, span_name(operation), otel().CONSUMER, attributes, parent=parent)


def replay_span(
    tracer: Tracer,
    event_type: str,
    dead_letter_id: int,
    reason: str,
    attempts: int,
    trace_headers: Mapping[str, str] | None = None,
) -> TracedBlock:
    """The span ``"<event_type> replay"`` of one dead letter fed back through its
    processor (the event's own CONSUMER span is its child), child of the current context
    (whoever asked for the replay). ``trace_headers`` are the W3C headers the letter kept
    of the span current when the event failed (its CONSUMER span, or a Celery task's):
    the replay span *links* to that span (a cause in an earlier trace, as the messaging
    conventions link a batch to its messages), so the failure and its replay meet. Headers
    that do not hold a valid span context (an old row, a hand-edited one) add no link."""
    attributes: dict[str, Any] = {
        ATTRIBUTE_EVENT_TYPE: truncate(event_type, 256),
        "coordination.dead_letter_id": str(dead_letter_id),
        "coordination.dead_letter.reason": truncate(reason, 200),
        "coordination.dead_letter.attempts": attempts,
    }
    links = None if trace_headers is None else _link_to(trace_headers)
    block = TracedBlock(
        tracer, f"{span_name(event_type)} replay", otel().INTERNAL, attributes, links=links
    )
    block.outcome = "replayed"
    return block


def _link_to(trace_headers: Mapping[str, str]) -> list[Link] | None:
    """A link to the span ``trace_headers`` name, or ``None`` when they name none
    (``extract_context`` drops what is malformed, too long or not text)."""
    try:
        context = extract_context(trace_headers)
        if context is None:
            return None
        api = otel()
        span_context = api.current_span(context).get_span_context()
        if not span_context.is_valid:
            return None
        return [api.Link(span_context)]
    except Exception:  # whatever a stored value makes OpenTelemetry raise: no link
        return None


@contextmanager
def delivered(carrier: Mapping[str, Any], facts: MessageFacts | None) -> Iterator[None]:
    """While one delivered message is handed to the processor: the producer's trace
    context (from ``carrier``, its headers or stream fields) is current, and ``facts``
    (None: no tracer, so no span to give them to) wait for the processor's span."""
    parent = extract_context(carrier)
    token = None
    if parent is not None:
        token = otel().attach(parent)
    facts_token = None if facts is None else _facts.set(facts)
    try:
        yield
    finally:
        if facts_token is not None:
            _facts.reset(facts_token)
        if token is not None:
            otel().detach(token)
