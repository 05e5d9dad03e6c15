"""``CoordinationMiddleware``: WSGI middleware that checks, times and counts requests.

>>> app.wsgi_app = CoordinationMiddleware(app.wsgi_app)  # doctest: +SKIP

Each request is timed until its response body has been fully sent and the iterable
closed (so streamed bodies count in full), under the route template as operation name.
Requests that break a structural limit or their route's rule set are answered with
``application/problem+json`` before the app runs.

The whole application is **not** retried, unlike the spec's sketch: by the time it fails
it may have read ``wsgi.input`` (a stream that cannot be rewound), called
``start_response`` or done half its side effects, so running it again is unsafe. Put
retries around the downstream calls inside the app (``coordinate_operation``). An
exception from the app is recorded (counters, monitor, log) and re-raised, so the
framework or server answers it as it always did.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._time import perf_counter
from ._base import MiddlewareBase
from ._http import Rejection
from ._routes import wsgi_route_resolver

__all__ = ["CoordinationMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


# Keys servers put in every environ that are not headers. Subtracting them (one C-level
# set operation) leaves a handful of keys for the Python loop below; a key missing here
# is still checked, so the list only needs to be good, not complete.
_NOT_HEADERS = frozenset(
    {
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
        "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
        "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_HOST", "REMOTE_USER", "REQUEST_URI", "RAW_URI",
        "GATEWAY_INTERFACE", "HTTPS", "wsgi.version", "wsgi.url_scheme", "wsgi.input",
        "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
        "wsgi.file_wrapper", "wsgi.input_terminated", "gunicorn.socket", "werkzeug.socket",
        "werkzeug.request", "werkzeug.server.shutdown", "uwsgi.version", "uwsgi.node",
    }
)  # fmt: skip


def _header_bytes(environ: Environ) -> int:
    """Header names and values, as sent (``HTTP_`` prefixes aside)."""
    size = len(environ.get("CONTENT_TYPE") or "") + len(environ.get("CONTENT_LENGTH") or "")
    for key in environ.keys() - _NOT_HEADERS:
        if key[:5] == "HTTP_":
            size += len(key) + len(environ[key]) - 5
    return size


class CoordinationMiddleware(MiddlewareBase):
    """Validation, timing and counting around a WSGI application (Flask, Django, …).

    ``route_rules`` maps route templates (``"/api/users"``, or ``"POST /api/users"``) to
    rule sets for JSON bodies; ``route_resolver(environ)`` names routes for frameworks
    other than Flask and Django; ``allowed_methods`` replaces the standard methods.
    """

    kind = "WSGI"
    _resolver = staticmethod(wsgi_route_resolver)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self._endpoints is not None:
            endpoint = self._endpoints.wsgi_app(environ.get("PATH_INFO") or "/")
            if endpoint is not None:
                return endpoint(environ, start_response)  # type: ignore[no-any-return]
        started = perf_counter()
        self._counters.started()
        method = environ.get("REQUEST_METHOD") or "GET"
        route = None
        try:
            rejection, route = self._check(environ, method)
        except Exception as exc:  # a broken resolver or validator: counted, then raised
            self._logger.exception("checking the request failed")
            self._record(method, None, 500, started, exc)
            raise
        if rejection is not None:
            return self._reject(environ, start_response, rejection, method, route, started)
        exchange = _Exchange(self, environ, start_response, method, route, started)
        try:
            body = self.app(environ, exchange.start_response)
        except Exception as exc:
            exchange.finish(exc)
            raise
        exchange.body = body
        if type(body) is list:  # already in memory: iterate it at C speed, keep close()
            return _ClosingList(body, exchange)
        return exchange

    def _check(self, environ: Environ, method: str) -> tuple[Rejection | None, str | None]:
        policy = self._policy
        rejection = policy.check_method(method) or policy.check_header_size(_header_bytes(environ))
        if rejection is None and self._client_limit is not None:
            limit = self._client_limit
            rejection = limit.check(limit.wsgi_client(environ))
        if rejection is not None:
            return rejection, None
        length, rejection = policy.check_content_length(environ.get("CONTENT_LENGTH"))
        if rejection is not None:
            return rejection, None
        if not policy.rules or self._routes is None:
            return None, None
        route = self._routes.before(environ)
        rule_set = policy.rules_for(method, route)
        if rule_set is None:
            return None, route
        body, rejection = self._read_body(environ, length)
        if rejection is None:
            rejection = policy.check_json(body, environ.get("CONTENT_TYPE"), rule_set)
        # The app reads the same bytes from a fresh stream.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return rejection, route

    def _read_body(self, environ: Environ, length: int | None) -> tuple[bytes, Rejection | None]:
        stream = environ.get("wsgi.input")
        if stream is None:
            return b"", None
        if length is None:
            if not environ.get("wsgi.input_terminated"):
                return b"", None  # no length and no end marker: reading could block forever
            body = stream.read(self._policy.max_body + 1)
            if len(body) > self._policy.max_body:
                return b"", self._policy.too_large(len(body))
            return body, None
        return stream.read(length), None

    def _reject(
        self,
        environ: Environ,
        start_response: StartResponse,
        rejection: Rejection,
        method: str,
        route: str | None,
        started: float,
    ) -> list[bytes]:
        body = rejection.body(environ.get("PATH_INFO") or "/")
        start_response(rejection.status_line, rejection.response_headers(body))
        if route is None:
            route = self.route_before(environ)
        self._record(method, route, rejection.status, started, None, rejected=True)
        return [b"" if method == "HEAD" else body]


class _Exchange:
    """One request: the ``start_response`` wrapper and the closing, timing body iterable."""

    __slots__ = (
        "_done",
        "body",
        "environ",
        "method",
        "middleware",
        "route",
        "started",
        "status",
        "upstream",
    )

    def __init__(
        self,
        middleware: CoordinationMiddleware,
        environ: Environ,
        upstream: StartResponse,
        method: str,
        route: str | None,
        started: float,
    ) -> None:
        self.middleware = middleware
        self.environ = environ
        self.upstream = upstream
        self.method = method
        self.route = route
        self.started = started
        self.status = 500  # until the app says otherwise
        self.body: Iterable[bytes] = ()
        self._done = False

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        try:
            self.status = int(status[:3])
        except ValueError:
            self.status = 500
        if exc_info is None:
            return self.upstream(status, headers)
        return self.upstream(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        except Exception as exc:
            self.finish(exc)
            raise

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
        if error is not None:
            self.middleware._logger.warning(
                "%s %s raised %s: %s",
                self.method,
                self.environ.get("PATH_INFO"),
                type(error).__name__,
                error,
            )
        status = 500 if error is not None else self.status
        route = self.middleware.route_after(self.environ, self.route)
        self.middleware._record(self.method, route, status, self.started, error)


class _ClosingList(list[bytes]):
    """A list body that tells its exchange when the server closes it (PEP 3333)."""

    __slots__ = ("_exchange",)

    def __init__(self, body: list[bytes], exchange: _Exchange) -> None:
        super().__init__(body)
        self._exchange = exchange

    def close(self) -> None:
        self._exchange.finish(None)
