"""The SERVER span of one HTTP request, by OpenTelemetry's HTTP semantic conventions.

Made only while a tracer provider is set (``_tracing.current_tracer()``). The adapter
starts it as the request arrives, continuing the client's W3C ``traceparent``, and keeps
it current while the app runs, so the app's own spans and the protected calls inside it
are its children. The core ends it where it counts the request (``RequestCore.finish``,
``rejected``, ``failed``): only then is the route template known (Flask names its rule
as the response starts, Starlette after routing), so the span is renamed there to
``"METHOD template"`` — ``"METHOD"`` for a request no route matched, ``"HTTP"`` for a
method that is not allowed — as the conventions ask.

Attributes: ``http.request.method`` (``_OTHER`` and ``http.request.method_original`` for
a method not allowed), ``url.path`` and ``url.scheme`` (the query string is left out: it
is where tokens travel), ``http.route``, ``http.response.status_code``; a 5xx sets the
ERROR status and ``error.type`` (the exception's class, else the status code). A 4xx is
the client's error, not the server's: no error status on a SERVER span.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._door_spans import otel
from .._redact import redact, truncate
from .._tracing import current_tracer, exception_event, exception_type, extract_context, span_error
from ._http import OTHER_METHOD

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

__all__ = ["detach", "end_server_span", "note_answered", "start_server_span"]

_MAX_PATH = 1000  # characters of url.path kept (a path can be as long as a server allows)
_MAX_METHOD = 20  # of a method that is not allowed (anything the client sent)


def start_server_span(
    tracer: Tracer,
    method: str,
    allowed: bool,
    path: str,
    scheme: str | None,
    carrier: Mapping[str, Any],
) -> tuple[Span, object]:
    """The request's span, made current: ``(span, token)``; the adapter detaches the
    token when its call returns, the core ends the span when it counts the request."""
    api = otel()
    parent: Context | None = extract_context(carrier)
    attributes: dict[str, Any] = {
        "http.request.method": method if allowed else OTHER_METHOD,
        # Redacted like every output: a reset link's path can hold its token.
        "url.path": truncate(redact(path), _MAX_PATH),
    }
    if not allowed:
        attributes["http.request.method_original"] = truncate(redact(method), _MAX_METHOD)
    if scheme:
        attributes["url.scheme"] = scheme
    span = tracer.start_span(
        method if allowed else "HTTP",
        context=parent,
        kind=api.SERVER,
        attributes=attributes,
        record_exception=False,  # recorded redacted, by _tracing.span_error
        set_status_on_exception=False,
    )
    token = api.attach(api.in_context(span, parent))
    return span, token


def detach(token: object) -> None:
    otel().detach(token)  # type: ignore[arg-type]


def end_server_span(
    span: Span,
    method: str,
    allowed: bool,
    route: str | None,
    status: int,
    error: BaseException | None,
) -> None:
    """Name the span by its route, set the response's facts, end it."""
    # One set_attributes call: the SDK takes its span lock once, not per attribute.
    facts: dict[str, Any] = {"http.response.status_code": status}
    if route:
        facts["http.route"] = route
        if allowed:
            span.update_name(f"{method} {route}")
    if error is not None and status >= 500:
        span.set_attributes(facts)
        span_error(span, error)
    elif status >= 500:
        api = otel()
        facts["error.type"] = str(status)
        span.set_attributes(facts)
        span.set_status(api.Status(api.ERROR))
    else:
        if error is not None:  # answered below 500 (a resilience error as 429): no error
            facts["error.type"] = exception_type(error)
        span.set_attributes(facts)
    span.end()


def note_answered(error: BaseException) -> None:
    """An error of the app answered as a problem document (503, 429, 504): recorded as an
    ``exception`` event of the current span — the request's, or another instrumentation's
    server span — since its status alone does not say which error it was."""
    if current_tracer() is None:
        return
    span = otel().current_span()
    if span.is_recording():
        exception_event(span, error)
