"""``CoordinationMiddleware``: WSGI middleware that checks, times and counts requests.

>>> app.wsgi_app = CoordinationMiddleware(app.wsgi_app)  # doctest: +SKIP

Each request is timed until its response body has been fully sent and the iterable
closed (so streamed bodies count in full), under the route template as operation name.
Requests that break a structural limit or their route's rule set are answered with
``application/problem+json`` before the app runs.

Resilience errors raised inside the app (an open breaker, a full bulkhead, a spent rate
limit, a timeout) are answered as problem documents (503/429/504, see ``_problems``):
caught here when they reach the middleware before the response has begun, and through an
error handler registered on a wrapped Flask app, which would otherwise make them 500s. A
body without ``Content-Length`` is read through a bounded stream, so an app that reads
past ``max_request_body_bytes`` gets a 413 answer instead of an unbounded read.

The whole application is **not** retried: by the time it fails it may have read
``wsgi.input`` (a stream that cannot be rewound), called ``start_response`` or done half
its side effects, so running it again is unsafe. Put
retries around the downstream calls inside the app (``coordinate_operation``). An
exception from the app is recorded (counters, monitor, log) and re-raised, so the
framework or server answers it as it always did.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._tracing import DOORS, current_tracer
from ._base import MiddlewareBase
from ._bounded_input import BoundedInput
from ._framework_errors import install_flask_handlers
from ._http import Rejection, RequestPolicy
from ._problems import answer_for
from ._request import READ_BODY, Exchange, RequestCore
from ._routes import wsgi_route_resolver
from ._server_spans import detach

__all__ = ["CoordinationMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


# The W3C trace headers as the environ holds them: what a SERVER span continues.
_TRACE_KEYS = (
    ("traceparent", "HTTP_TRACEPARENT"),
    ("tracestate", "HTTP_TRACESTATE"),
    ("baggage", "HTTP_BAGGAGE"),
)

# Requests that carry no body unless they say so with Transfer-Encoding.
_BODILESS = frozenset({"GET", "HEAD"})

# The environ's keys as a server builds them (its own keys, then one per header, in the
# order the client sent them) -> the header keys among them and their names' size. A
# client sends the same headers request after request, so the scan of every key is made
# once per shape and the per-request work is a tuple, a lookup and C-level sums. Bounded:
# shapes past the cap (a client inventing header names) are scanned each time.
_SHAPES: dict[tuple[Any, ...], tuple[int, tuple[str, ...]]] = {}
_MAX_SHAPES = 64


def _header_shape(keys: tuple[Any, ...]) -> tuple[int, tuple[str, ...]]:
    names = tuple(key for key in keys if type(key) is str and key[:5] == "HTTP_")
    shape = (sum(len(name) - 5 for name in names), names)  # names as sent, no HTTP_
    if len(_SHAPES) < _MAX_SHAPES:
        _SHAPES[keys] = shape
    return shape


def _header_bytes(environ: Environ) -> int:
    """Header names and values, as sent (``HTTP_`` prefixes aside)."""
    keys = tuple(environ)
    shape = _SHAPES.get(keys)
    if shape is None:
        shape = _header_shape(keys)
    names_size, names = shape
    return (
        names_size
        + sum(map(len, map(environ.__getitem__, names)))
        + len(environ.get("CONTENT_TYPE") or "")
        + len(environ.get("CONTENT_LENGTH") or "")
    )


class CoordinationMiddleware(MiddlewareBase):
    """Validation, timing and counting around a WSGI application (Flask, Django, …).

    ``route_rules`` maps route templates (``"/api/users"``, or ``"POST /api/users"``) to
    rule sets for JSON bodies; ``route_resolver(environ)`` names routes for frameworks
    other than Flask and Django; ``allowed_methods`` replaces the standard methods.

    The validator, error handler and monitor are the process's (``default_coordination()``)
    unless ``coordination=`` names another set; one given by itself replaces that part of
    the set. ``config`` configures this middleware, not them.

    With ``expose_endpoints`` the middleware answers ``metrics_path``, ``health_path``
    (with ``/live`` and ``/ready`` under it) and the status page at ``status_page_path``
    (its data at ``<path>/status.json``) itself, before the app, reading the same
    components; those requests are not counted or timed.
    """

    kind = "WSGI"
    _resolver = staticmethod(wsgi_route_resolver)
    _client_key_name = "wsgi_client"
    _endpoint_name = "wsgi_app"
    _awaits = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        core = self._core
        path = environ.get("PATH_INFO") or "/"
        endpoint = None if core.endpoint is None else core.endpoint(path)
        if endpoint is not None:
            return endpoint(environ, start_response)  # type: ignore[no-any-return]
        exchange = _Exchange(core, environ, start_response, path)
        # DOORS.on: an attribute read; off: no provider, no span, nothing more done
        tracer = current_tracer() if DOORS.on else None
        token = None
        if tracer is not None:
            carrier = {name: environ.get(key) for name, key in _TRACE_KEYS}
            token = core.start_span(tracer, exchange, carrier, environ.get("wsgi.url_scheme"))
        try:
            decision = core.admit(exchange, _header_bytes(environ), environ.get("CONTENT_LENGTH"))
            if decision is READ_BODY:
                decision = _check_body(core, exchange, environ)
            elif decision is None and exchange.length is None:
                method = exchange.method
                if method not in _BODILESS or "HTTP_TRANSFER_ENCODING" in environ:
                    # No length announced: the server reads until the body ends (chunked),
                    # so the limit is enforced as the app reads.
                    stream = environ.get("wsgi.input")
                    if stream is not None:
                        environ["wsgi.input"] = BoundedInput(stream, core.max_body)
            if decision is None and core.app_limit is not None:
                decision = core.enter_app(exchange)  # the limit in front of the app
            if decision is not None:
                return _reject(core, exchange, decision)  # type: ignore[arg-type]
            stream = environ.get("wsgi.input")
            if type(stream) is BoundedInput:  # ours, or an outer middleware's
                exchange.bounded = stream
            try:
                body = self.app(environ, exchange.start_response)
            except Exception as exc:
                answer = exchange.answer(exc)
                if answer is None:
                    exchange.finish(exc)
                    raise
                return _closing(answer, exchange)
            exchange.body = body
            if type(body) is list:  # already in memory: iterate it at C speed, keep close()
                if exchange.replacement is not None:
                    return _closing(exchange.replacement, exchange)
                return _closing(body, exchange)
            return exchange
        except BaseException as exc:  # ends the span of a request nothing counted; re-raised
            if token is not None:
                core.abandon(exchange, exc)
            raise
        finally:
            # The span stays open while a streamed body is sent; it is current only
            # while the app is called (the server iterates the body later).
            if token is not None:
                detach(token)

    def _install_error_answers(self) -> None:
        install_flask_handlers(self.app, self._answer_log, self._map_errors)


def _check_body(core: RequestCore, exchange: _Exchange, environ: Environ) -> Rejection | None:
    """The ``READ_BODY`` step: read the body, check it, give the app the same bytes."""
    try:
        body, rejection = _read_body(environ, exchange.length, core.policy)
    except Exception as exc:  # the input stream failed: counted, raised
        core.failed(exchange, exc)
        raise
    if rejection is None:
        rejection = core.check_body(exchange, body, environ.get("CONTENT_TYPE"))
    # The app reads the same bytes from a fresh stream.
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return rejection


def _read_body(
    environ: Environ, length: int | None, policy: RequestPolicy
) -> tuple[bytes, Rejection | None]:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b"", None
    if length is None:
        if not environ.get("wsgi.input_terminated"):
            return b"", None  # no length and no end marker: reading could block forever
        body = stream.read(policy.max_body + 1)
        if len(body) > policy.max_body:
            return b"", policy.too_large(len(body))
        return body, None
    return stream.read(length), None


def _reject(core: RequestCore, exchange: _Exchange, rejection: Rejection) -> list[bytes]:
    body = rejection.body(exchange.path)
    exchange.upstream(rejection.status_line, rejection.response_headers(body))
    core.rejected(exchange, rejection)
    return [b"" if exchange.method == "HEAD" else body]


# Status lines seen, parsed once: frameworks send the same few ("200 OK") every time.
_STATUS_CODES: dict[str, int] = {}


def _status_code(status: str) -> int:
    try:
        code = int(status[:3])
    except ValueError:
        return 500
    if len(_STATUS_CODES) < 256 and type(status) is str:  # bounded: a cache, not a log
        _STATUS_CODES[status] = code
    return code


class _Exchange(Exchange):
    """One request: the ``start_response`` wrapper and the closing, timing body iterable."""

    __slots__ = (
        "_done",
        "body",
        "bounded",
        "called",
        "core",
        "replacement",
        "sent",
        "status",
        "upstream",
    )

    body: Iterable[bytes]
    bounded: BoundedInput | None
    replacement: list[bytes] | None

    def __init__(
        self, core: RequestCore, environ: Environ, upstream: StartResponse, path: str
    ) -> None:
        # Exchange's fields set here directly: one call per request, not two.
        self.request = environ
        self.method = environ.get("REQUEST_METHOD") or "GET"
        self.path = path
        self.route = None
        self.length = None
        self.rule_set = None
        self.started = 0.0
        self.rate_headers = ()
        self.app_entry = None
        self.span = None
        self.core = core
        self.upstream = upstream
        self.status = 500  # until the app says otherwise (``body``: set once it returns)
        self.called = False  # the app called start_response
        self.sent = False  # a non-empty body chunk went to the server: headers are out
        self.bounded = None  # the body stream, when it is bounded
        self.replacement = None  # the body sent instead of the app's
        self._done = False

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.called = True
        responding = self.core.responding
        if responding is not None and self.route is None:
            self.route = responding(self.request)
        code = _STATUS_CODES.get(status)
        if code is None:
            code = _status_code(status)
        self.status = code
        bounded = self.bounded
        if bounded is not None and bounded.overflow is not None and self.status >= 500:
            # The app caught the body limit's error and answered it as its own failure
            # (a catch-all handler): the client's body was too large, so it gets 413.
            rejection = answer_for(bounded.overflow, map_resilience=False)
            if rejection is not None:
                body = rejection.body(self.path)
                self.replacement = [b"" if self.method == "HEAD" else body]
                self.status = rejection.status
                status, headers = rejection.status_line, rejection.response_headers(body)
        if self.rate_headers:  # rate_limit_headers="always": the app's answer carries them
            headers = [*headers, *self.rate_headers]
        if exc_info is None:
            return self.upstream(status, headers)
        return self.upstream(status, headers, exc_info)

    def answer(self, error: Exception) -> list[bytes] | None:
        """Answer ``error`` as its problem document, if it has one and headers are not out.

        Once the server has sent the headers the status cannot change: the error is then
        re-raised, so the server aborts the response (PEP 3333), and logged as a failure.
        """
        rejection = self.core.answer(error)
        if rejection is None or self.sent:
            return None
        body = rejection.body(self.path)
        headers = rejection.response_headers(body)
        try:
            if self.called:  # replaces the app's headers; raises if they were sent
                self.upstream(rejection.status_line, headers, sys.exc_info())
            else:
                self.upstream(rejection.status_line, headers)
        except Exception:
            return None
        self.called = True
        self.status = rejection.status
        self.core.answered(self, error, rejection.status)
        return [b"" if self.method == "HEAD" else body]

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.body:
                if self.replacement is not None:
                    break  # the app's error page is not sent (close() still closes it)
                if chunk:
                    self.sent = True
                yield chunk
        except Exception as exc:
            answer = self.answer(exc)
            if answer is None:
                self.finish(exc)
                raise
            yield from answer
            return
        if self.replacement is not None:
            yield from self.replacement

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.finish(None)

    def finish(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        bounded = self.bounded
        if error is None and bounded is None:  # the common case
            self.core.finish(self, self.status)
        elif error is not None:
            self.core.failure_log(self, error)
            self.core.finish(self, 500, error)
        else:
            # A body past the limit is refused like one with a too large Content-Length.
            overflowed = bounded is not None and bounded.overflow is not None
            self.core.finish(self, self.status, None, overflowed and self.status == 413)


class _ClosingList(list[bytes]):
    """A list body that tells its exchange when the server closes it (PEP 3333)."""

    __slots__ = ("_exchange",)

    _exchange: _Exchange

    def close(self) -> None:
        self._exchange.finish(None)


def _closing(body: list[bytes], exchange: _Exchange) -> _ClosingList:
    # list's own constructor (C) and one attribute: no __init__ of ours per request.
    closing = _ClosingList(body)
    closing._exchange = exchange
    return closing
