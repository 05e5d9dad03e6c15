"""The middleware's algorithm once, without I/O: request facts in, decisions out.

In the spirit of h11's sans-IO core, ``RequestCore`` never reads a socket, an environ or a
scope by itself. A protocol adapter (``_wsgi``, ``_asgi``) makes one ``Exchange`` per
request, fills in the facts its protocol carries, and asks the core what to do:

``admit(exchange, header_size, content_length)`` answers

- ``None``: let the app run (``exchange.length`` and ``exchange.route`` are set);
- a ``Rejection``: answer it (a ready problem+json document), then ``rejected()``;
- ``CHECK_CLIENT``: the client rate limit must be awaited (an async adapter; a Redis
  limiter does I/O): ``await acheck_client()``, then ``admit_checked()`` with its answer;
- ``READ_BODY``: the route has a rule set: the adapter reads the whole body (bounded by
  ``max_body``) and hands it to ``check_body()``.

The built-in endpoints are looked up before (``endpoint``). When the request ends the
adapter reports the outcome — ``finish(exchange, status, error)`` — and the core counts it
and times it. Errors the app raised are turned into answers by ``answer()``.

While a tracer provider is set, the adapter asks ``start_span`` for the request's SERVER
span (see ``_server_spans``) and the core ends it where it counts the request, route
template known; ``abandon`` ends one whose request escaped every count (an adapter's own
failure). Without a provider ``exchange.span`` stays None and nothing else is done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from .._logging import log_extra
from .._time import perf_counter
from ._app_limit import aenter_app, app_refusal, enter_app, leave_app
from ._client_limit import ClientRateLimit
from ._components import MonitorLike
from ._http import OTHER_METHOD, UNMATCHED, HttpCounters, Rejection, RequestPolicy
from ._problems import AnswerLog, answer_for
from ._routes import RouteResolver
from ._server_spans import end_server_span, start_server_span

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from ..error_handling._adaptive import AdaptiveLimiter, Entry

__all__ = ["CHECK_CLIENT", "READ_BODY", "Exchange", "RequestCore", "Step"]


class Step:
    """An I/O step the adapter performs before the core can decide."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


CHECK_CLIENT: Final = Step("CHECK_CLIENT")
READ_BODY: Final = Step("READ_BODY")

Decision = Rejection | Step | None


class Exchange:
    """One request's facts, as the core reads them; adapters subclass it with their state.

    ``request`` is the protocol's own mapping (the WSGI environ, the ASGI scope), handed
    unread to the route resolver and the client key function of that protocol.
    """

    __slots__ = (
        "app_entry",
        "length",
        "method",
        "path",
        "rate_headers",
        "request",
        "route",
        "rule_set",
        "span",
        "started",
    )

    def __init__(self, request: Mapping[str, Any], method: str, path: str) -> None:
        self.request = request
        self.method = method
        self.path = path
        self.route: str | None = None  # the template, when known before the app ran
        self.length: int | None = None  # the declared Content-Length, once admitted
        self.rule_set: Any = None  # the route's rule set, when its body must be checked
        self.started = 0.0
        # The RateLimit headers the app's answer carries (rate_limit_headers="always").
        self.rate_headers: tuple[tuple[str, str], ...] = ()
        self.app_entry: Entry | None = None  # its slot of app_adaptive_concurrency's limit
        self.span: Any = None  # its SERVER span while one is open (a tracer provider is set)


class RequestCore:
    """Request policy, client limit, routes, counters and monitor: the one algorithm.

    ``client_key`` and ``routes`` are the protocol's (they read its request mapping);
    ``endpoint(path)`` returns the built-in endpoint app of the protocol, or None.
    """

    __slots__ = (
        "_allowed",
        "_body_checks",
        "_client_key",
        "_limit",
        "_limit_sync",
        "_logger",
        "_max_headers",
        "_monitor",
        "answer_log",
        "app_limit",
        "counters",
        "endpoint",
        "map_errors",
        "max_body",
        "policy",
        "responding",
        "routes",
    )

    def __init__(
        self,
        policy: RequestPolicy,
        routes: RouteResolver | None,
        counters: HttpCounters,
        monitor: MonitorLike | None,
        client_limit: ClientRateLimit | None,
        client_key: Callable[[Mapping[str, Any]], str],
        endpoint: Callable[[str], Any] | None,
        map_errors: bool,
        answer_log: AnswerLog,
        logger: logging.Logger,
        *,
        awaits: bool,
        app_limit: AdaptiveLimiter | None = None,
    ) -> None:
        self.policy = policy
        # app_adaptive_concurrency: the adapter asks enter_app() once the checks passed
        self.app_limit = app_limit
        self.routes = routes
        # The route as the resolver reads it when the app starts its response (Flask's
        # rule), where it can: then nothing is resolved when the request ends.
        self.responding: Callable[[Any], str | None] | None = getattr(routes, "responding", None)
        self.counters = counters
        self._monitor = monitor
        self._limit = client_limit
        self._client_key = client_key
        # An async adapter awaits the limit (a Redis limiter does I/O; acheck() calls an
        # in-memory one directly).
        self._limit_sync = not awaits
        # None when the endpoints are off: the adapters skip the lookup altogether.
        self.endpoint: Callable[[str], Any] | None = endpoint
        self.map_errors = map_errors
        self.answer_log = answer_log
        self._logger = logger
        self._allowed = policy.allowed_methods
        self._max_headers = policy.max_headers
        self.max_body = policy.max_body
        self._body_checks = bool(policy.rules) and routes is not None  # bodies to check

    # --- admission -----------------------------------------------------------------------

    def admit(self, exchange: Exchange, header_size: int, content_length: str | None) -> Decision:
        """The first decision on a request: its method, headers, client and body length."""
        exchange.started = perf_counter()
        self.counters.started()
        method = exchange.method
        if method not in self._allowed or header_size > self._max_headers:
            policy = self.policy
            rejection = policy.check_method(method) or policy.check_header_size(header_size)
            if rejection is not None:
                return rejection
        limit = self._limit
        if limit is not None:
            if not self._limit_sync:
                return CHECK_CLIENT
            route = None if not limit.routes else self._route_limit(limit, exchange)
            rejection, exchange.rate_headers = limit.check(
                self._client_key(exchange.request), route
            )
            if rejection is not None:
                return rejection
        elif not self._body_checks:  # the common case, inline: a plain length, no rules
            if content_length is None:
                return None
            if content_length.isdigit() and content_length.isascii() and len(content_length) < 19:
                length = int(content_length)
                if length <= self.max_body:
                    exchange.length = length
                    return None
        return self._body(exchange, content_length)

    async def acheck_client(self, exchange: Exchange) -> Rejection | None:
        """The client's rate limits (the client's, the route's), awaited (the
        ``CHECK_CLIENT`` step)."""
        limit = self._limit
        if limit is None:  # CHECK_CLIENT is only asked for with a limit
            return None
        rejection, exchange.rate_headers = await limit.acheck(
            self._client_key(exchange.request), self._route_limit(limit, exchange)
        )
        return rejection

    def _route_limit(self, limit: ClientRateLimit, exchange: Exchange) -> Any:
        """The route's limit for this request (its route resolved now, once), or None."""
        if not limit.routes or self.routes is None:
            return None
        route = exchange.route
        if route is None:
            route = exchange.route = self._resolve(self.routes.before, exchange.request)
        return limit.route_limit(exchange.method, route)

    def admit_checked(
        self, exchange: Exchange, rejection: Rejection | None, content_length: str | None
    ) -> Decision:
        """``admit`` resumed once the awaited client rate limit answered ``rejection``."""
        if rejection is not None:
            return rejection
        return self._body(exchange, content_length)

    def _body(self, exchange: Exchange, raw: str | None) -> Decision:
        if raw is None:
            length = None
        elif raw.isdigit() and raw.isascii() and len(raw) <= 18:  # the common value
            length = int(raw)
            if length > self.max_body:
                return self.policy.too_large(length)
        else:
            length, rejection = self.policy.check_content_length(raw)
            if rejection is not None:
                return rejection
        exchange.length = length
        policy = self.policy
        if policy.rules and self.routes is not None:
            try:  # a route limit may have named the route already
                route = exchange.route or self.routes.before(exchange.request)
            except Exception as exc:
                # A resolver that raises is the app's bug; skipping the rule set would let
                # the body through unchecked, so it is counted and raised.
                self.failed(exchange, exc)
                raise
            exchange.route = route
            rule_set = policy.rules_for(exchange.method, route)
            if rule_set is not None:
                exchange.rule_set = rule_set
                return READ_BODY
        return None

    def check_body(
        self, exchange: Exchange, body: bytes, content_type: str | None
    ) -> Rejection | None:
        """The ``READ_BODY`` step's answer: the body against the route's rule set."""
        rule_set, exchange.rule_set = exchange.rule_set, None
        return self.policy.check_json(body, content_type, rule_set)

    def enter_app(self, exchange: Exchange) -> Rejection | None:
        """A slot of the limit in front of the app (``app_limit``: the adapter asks only
        when there is one), or the 503 of a request beyond it (then ``rejected``)."""
        entry = enter_app(cast("AdaptiveLimiter", self.app_limit))
        if entry is None:
            return app_refusal()
        exchange.app_entry = entry
        return None

    async def aenter_app(self, exchange: Exchange) -> Rejection | None:
        entry = await aenter_app(cast("AdaptiveLimiter", self.app_limit))
        if entry is None:
            return app_refusal()
        exchange.app_entry = entry
        return None

    # --- answers -------------------------------------------------------------------------

    def answer(self, error: BaseException) -> Rejection | None:
        """The problem document an error of the app earns, or None to let it propagate."""
        return answer_for(error, map_resilience=self.map_errors)

    def answered(self, exchange: Exchange, error: BaseException, status: int) -> None:
        self.answer_log(exchange.method, exchange.path, error, status)

    # --- the request's span ----------------------------------------------------------

    def start_span(
        self, tracer: Tracer, exchange: Exchange, carrier: Mapping[str, Any], scheme: str | None
    ) -> object:
        """Open the request's SERVER span, current until the adapter detaches the token
        returned (``_server_spans.detach``); the core ends it with the request's count."""
        method = exchange.method
        exchange.span, token = start_server_span(
            tracer, method, method in self._allowed, exchange.path, scheme, carrier
        )
        return token

    def _end_span(
        self, exchange: Exchange, route: str | None, status: int, error: BaseException | None
    ) -> None:
        span, exchange.span = exchange.span, None
        method = exchange.method
        end_server_span(span, method, method in self._allowed, route, status, error)

    def abandon(self, exchange: Exchange, error: BaseException) -> None:
        """End the span of a request that escaped every count (an adapter's step raised
        before ``finish``): a 500 with ``error``. Nothing when the span is already ended."""
        if exchange.span is not None:
            self._end_span(exchange, exchange.route, 500, error)

    # --- outcomes ------------------------------------------------------------------------

    def failed(self, exchange: Exchange, error: Exception) -> None:
        """Count a request whose checks failed (the route resolver or the body stream
        raised); the adapter re-raises ``error``."""
        self._logger.exception(
            "checking the request failed", exc_info=error, extra=_request_fields(exchange)
        )
        if exchange.span is not None:
            self._end_span(exchange, None, 500, error)
        self._record(exchange.method, None, 500, exchange.started, error)

    def failure_log(self, exchange: Exchange, error: BaseException) -> None:
        """The warning for an error of the app that no answer handles (it propagates)."""
        self._logger.warning(
            "%s %s raised %s: %s",
            exchange.method,
            exchange.path,
            type(error).__name__,
            error,
            extra=_request_fields(exchange, error_type=type(error).__name__),
        )

    def rejected(self, exchange: Exchange, rejection: Rejection) -> None:
        """Count a request answered with ``rejection`` before the app ran."""
        route = exchange.route
        if route is None and self.routes is not None:
            route = self._resolve(self.routes.before, exchange.request)
        if exchange.span is not None:
            self._end_span(exchange, route, rejection.status, None)
        self._record(exchange.method, route, rejection.status, exchange.started, None, True)

    def finish(
        self,
        exchange: Exchange,
        status: int,
        error: BaseException | None = None,
        rejected: bool = False,
    ) -> None:
        """Count and time a request the app ran (``error``: what it raised, if anything)."""
        entry = exchange.app_entry
        if entry is not None:  # its slot back, with its sample
            exchange.app_entry = None
            leave_app(cast("AdaptiveLimiter", self.app_limit), entry, status, error)
        route = exchange.route
        if route is None and self.routes is not None:
            try:
                route = self.routes.after(exchange.request)
            except Exception:
                self._logger.exception(
                    "route resolver failed; naming the request 'unmatched'",
                    extra=_request_fields(exchange),
                )
        if exchange.span is not None:
            self._end_span(exchange, route, status, error)
        if error is not None or rejected:
            self._record(exchange.method, route, status, exchange.started, error, rejected)
            return
        # The common case: the method was allowed, nothing was raised.
        method = exchange.method
        self.counters.count(method, route, status)
        monitor = self._monitor
        if monitor is not None:
            name = f"{method} {route}" if route else UNMATCHED
            if status < 500:
                monitor.record_duration(name, perf_counter() - exchange.started)
            else:
                duration = perf_counter() - exchange.started
                monitor.record_duration(name, duration, False, f"HTTP {status}")

    def _record(
        self,
        method: str,
        route: str | None,
        status: int,
        started: float,
        error: BaseException | None,
        rejected: bool = False,
    ) -> None:
        # A rejected method is whatever the client sent: never a label of its own.
        if method not in self._allowed:
            method = OTHER_METHOD
        self.counters.finished(method, route, status, rejected=rejected, error=error)
        monitor = self._monitor
        if monitor is None:
            return
        name = f"{method} {route}" if route else UNMATCHED
        if error is None and status < 500:
            monitor.record_duration(name, perf_counter() - started)
        else:
            failure = error if error is not None else f"HTTP {status}"
            monitor.record_duration(name, perf_counter() - started, False, failure)

    def _resolve(
        self, resolve: Callable[[Mapping[str, Any]], str | None], request: Mapping[str, Any]
    ) -> str | None:
        try:
            return resolve(request)
        except Exception:
            self._logger.exception(
                "route resolver failed; naming the request 'unmatched'",
                extra=log_extra(resolver=getattr(resolve, "__qualname__", None)),
            )
            return None


def _request_fields(exchange: Exchange, error_type: str | None = None) -> dict[str, object]:
    """The ``extra`` of a log line about a request: its method, route template (then
    its operation, the monitor's name for it) and path."""
    route = exchange.route
    return log_extra(
        f"{exchange.method} {route}" if route else None,
        http_method=exchange.method,
        http_route=route,
        url_path=exchange.path,
        error_type=error_type,
    )
