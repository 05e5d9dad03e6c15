"""The part of the WSGI and ASGI middleware that does not depend on the protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from .._config import CoordinationConfig
from .._defaults import ComponentSet, register_http_door
from .._http_snapshot import HttpSnapshot
from .._rate import Rate, RateLimit
from .._tracing import watch_doors
from ..error_handling import RateLimiterBackend
from ._app_limit import app_limiter
from ._client_limit import build_client_limit
from ._components import CoordinatedDoor, ErrorHandlerLike, MonitorLike, ValidatorLike
from ._endpoints import Endpoints
from ._http import HttpCounters, RequestPolicy
from ._problems import AnswerLog
from ._request import RequestCore
from ._routes import RouteResolver, check_route_rules

__all__ = ["MiddlewareBase"]


def _no_client(request: Mapping[str, Any]) -> str:
    return ""


class MiddlewareBase(CoordinatedDoor):
    """Components, request policy, endpoints and counters, built once per middleware.

    Subclasses name their protocol (``kind``) and how routes are named (``_resolver``).
    ``client_rate_limit`` (``"100/s"``) and ``client_rate_limit_key`` (``"address"`` or
    ``"header:X-API-Key"``) override the configuration's; ``rate_limiter`` replaces the
    limiter itself (any ``RateLimiterBackend``, such as ``RedisBackend(...).rate_limiter``).
    ``route_limits`` (``{"POST /orders": "5/s"}``) limits each client on a route template;
    ``rate_limit_headers`` (``"rejected"``, ``"always"``, ``"never"``) and
    ``rate_limit_header_style`` (``"ietf"``, ``"x-ratelimit"``, ``"both"``) say which
    rate-limit headers the answers carry (see ``_client_limit``, ``_rate_headers``).
    ``map_resilience_errors`` overrides the configuration's: resilience errors raised
    inside the app become 503/429/504 problem documents (see ``_problems``).

    The validator, error handler and monitor are the process's (``default_coordination()``)
    unless ``coordination=`` names another set or they are given one by one; ``config``
    configures this middleware (its ``redis_*`` keys its client rate limit), not them.
    """

    kind: ClassVar[str]
    # The protocol's translations, named once: how the client limit keys a request, which
    # endpoint lookup serves it, and whether the adapter awaits the client limit.
    _client_key_name: ClassVar[str]
    _endpoint_name: ClassVar[str]
    _awaits: ClassVar[bool]
    _own_component_keys = frozenset(
        {"redis_url", "redis_namespace", "redis_outage_policy", "redis_cluster"}
    )
    _resolver: ClassVar[Callable[[Any, Any], RouteResolver | None]]

    def __init__(
        self,
        app: Any,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        *,
        route_rules: Mapping[str, Any] | None = None,
        route_resolver: Callable[[Mapping[str, Any]], str | None] | None = None,
        allowed_methods: Iterable[str] | None = None,
        validator: ValidatorLike | None = None,
        error_handler: ErrorHandlerLike | None = None,
        performance_monitor: MonitorLike | None = None,
        client_rate_limit: str | Rate | RateLimit | None = None,
        client_rate_limit_key: str | None = None,
        rate_limiter: RateLimiterBackend | None = None,
        route_limits: str | Mapping[str, Any] | None = None,
        rate_limit_headers: str | None = None,
        rate_limit_header_style: str | None = None,
        coordination: ComponentSet | None = None,
        map_resilience_errors: bool | None = None,
        debug: bool = False,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a {self.kind} application, got {type(app).__name__}")
        self.app = app
        self._set_up(config, validator, error_handler, performance_monitor, debug, coordination)
        cfg = self.config
        self._policy = RequestPolicy(cfg, self.validator, route_rules, allowed_methods)
        self._routes: RouteResolver | None = check_route_rules(
            type(self)._resolver(app, route_resolver), list(self._policy.rules), self._logger
        )
        self._monitor = self.performance_monitor if cfg.enable_performance_monitoring else None
        limit = build_client_limit(
            cfg,
            client_rate_limit,
            client_rate_limit_key,
            rate_limiter,
            route_limits=route_limits,
            headers=rate_limit_headers,
            header_style=rate_limit_header_style,
        )
        if limit is not None and limit.routes:
            self._routes = check_route_rules(
                self._routes, list(limit.routes), self._logger, "route_limits"
            )
        self._core_client_limit = limit
        self._counters = HttpCounters(cfg.max_operation_names)
        self._app_limit = app_limiter(cfg)  # app_adaptive_concurrency (None: off)
        reloader = getattr(coordination, "_reloader", None)
        if self._app_limit is not None and reloader is not None:  # it follows the set's reloads
            reloader.follow_app_limit(self._app_limit, config)
        self._endpoints = Endpoints(self._components, cfg, self) if cfg.expose_endpoints else None
        if map_resilience_errors is None:
            map_resilience_errors = cfg.map_resilience_errors
        self._map_errors = bool(map_resilience_errors)
        self._answer_log = AnswerLog(self._logger)
        client_key = _no_client if limit is None else getattr(limit, self._client_key_name)
        endpoints = self._endpoints
        endpoint = None if endpoints is None else getattr(endpoints, self._endpoint_name)
        self._core = RequestCore(
            self._policy,
            self._routes,
            self._counters,
            self._monitor,
            limit,
            client_key,
            endpoint,
            self._map_errors,
            self._answer_log,
            self._logger,
            awaits=self._awaits,
            app_limit=self._app_limit,
        )
        watch_doors()  # each request reads _tracing.DOORS.on, kept true while spans are on
        self._install_error_answers()
        # So CoordinationMetricsExporter() with no components shows this door's requests.
        register_http_door(self.performance_monitor, self)

    def _install_error_answers(self) -> None:
        """Teach the wrapped framework to answer errors it would turn into 500s itself."""

    def http_snapshot(self) -> HttpSnapshot:
        """The request counters, with each route's timings (what the exporters read)."""
        limit = self._core_client_limit
        return self._counters.snapshot(
            self._monitor,
            client_rate_limit=None if limit is None else limit.status(),
            endpoints=() if self._endpoints is None else self._endpoints.paths,
            concurrency=None if self._app_limit is None else self._app_limit.snapshot(),
        )

    def http_stats(self) -> dict[str, Any]:
        """The request counters alone, as a dictionary (cheaper than the status):
        ``requests``, ``in_flight``, ``status_codes`` and ``rejected`` (``{code: n}``;
        rejected: answered by the middleware's own checks), ``rate_limited`` (refused by
        the client rate limit), ``exceptions`` (``{type name: n}``, errors that
        propagated), ``client_disconnects``, ``by_route`` (``[{"method", "route",
        "status", "count"}]``: ``status`` a string, ``"7xx"``-style outside 100–599; a
        method not allowed is ``_OTHER``; a request without a template is ``unmatched``;
        label sets beyond ``max_operation_names`` share ``__overflow__``),
        ``client_rate_limit`` and ``endpoints``."""
        return self.http_snapshot().as_dict()

    def get_middleware_status(self) -> dict[str, Any]:
        """The three component reports and this middleware's request counters."""
        status = self._components.status()
        status["middleware"] = self.http_stats()
        return status
