"""The part of the WSGI and ASGI middleware that does not depend on the protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from .._config import CoordinationConfig
from .._defaults import ComponentSet, register_http_door
from .._time import perf_counter
from ..error_handling import Rate, RateLimiterBackend
from ._client_limit import build_client_limit
from ._components import CoordinatedDoor, ErrorHandlerLike, MonitorLike, ValidatorLike
from ._endpoints import Endpoints
from ._http import OTHER_METHOD, UNMATCHED, HttpCounters, RequestPolicy
from ._problems import AnswerLog
from ._routes import RouteResolver, check_route_rules

__all__ = ["MiddlewareBase"]


class MiddlewareBase(CoordinatedDoor):
    """Components, request policy, endpoints and counters, built once per middleware.

    Subclasses name their protocol (``kind``) and how routes are named (``_resolver``).
    ``client_rate_limit`` (``"100/s"``) and ``client_rate_limit_key`` (``"address"`` or
    ``"header:X-API-Key"``) override the configuration's; ``rate_limiter`` replaces the
    limiter itself (any ``RateLimiterBackend``, such as ``RedisBackend(...).rate_limiter``).
    ``map_resilience_errors`` overrides the configuration's: resilience errors raised
    inside the app become 503/429/504 problem documents (see ``_problems``).

    The validator, error handler and monitor are the process's (``default_coordination()``)
    unless ``coordination=`` names another set or they are given one by one; ``config``
    configures this middleware (its ``redis_*`` keys its client rate limit), not them.
    """

    kind: ClassVar[str]
    _own_component_keys = frozenset({"redis_url", "redis_namespace", "redis_outage_policy"})
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
        client_rate_limit: str | Rate | None = None,
        client_rate_limit_key: str | None = None,
        rate_limiter: RateLimiterBackend | None = None,
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
        self._client_limit = build_client_limit(
            cfg, client_rate_limit, client_rate_limit_key, rate_limiter
        )
        self._counters = HttpCounters(cfg.max_operation_names)
        self._endpoints = Endpoints(self._components, cfg, self) if cfg.expose_endpoints else None
        if map_resilience_errors is None:
            map_resilience_errors = cfg.map_resilience_errors
        self._map_errors = bool(map_resilience_errors)
        self._answer_log = AnswerLog(self._logger)
        self._install_error_answers()
        # So CoordinationMetricsExporter() with no components shows this door's requests.
        register_http_door(self.performance_monitor, self)

    def _install_error_answers(self) -> None:
        """Teach the wrapped framework to answer errors it would turn into 500s itself."""

    def _record(
        self,
        method: str,
        route: str | None,
        status: int,
        started: float,
        error: BaseException | None,
        *,
        rejected: bool = False,
    ) -> None:
        """Count the finished request and give its duration to the monitor."""
        counters = self._counters
        if error is None and not rejected:  # the common case: the method was allowed
            counters.count(method, route, status)
        else:
            # A rejected method is whatever the client sent: never a label of its own.
            if method not in self._policy.allowed_methods:
                method = OTHER_METHOD
            counters.finished(method, route, status, rejected=rejected, error=error)
        monitor = self._monitor
        if monitor is None:
            return
        name = f"{method} {route}" if route else UNMATCHED
        if error is None and status < 500:
            monitor.record_duration(name, perf_counter() - started)
        else:
            failure = error if error is not None else f"HTTP {status}"
            monitor.record_duration(name, perf_counter() - started, False, failure)

    def route_after(self, request: Mapping[str, Any], route: str | None) -> str | None:
        """``route`` if found before the app ran, else what the framework matched."""
        if route is None and self._routes is not None:
            try:
                return self._routes.after(request)
            except Exception:
                self._logger.exception("route resolver failed; naming the request 'unmatched'")
        return route

    def route_before(self, request: Mapping[str, Any]) -> str | None:
        """The route template of a request refused before the app ran (for its label)."""
        if self._routes is None:
            return None
        try:
            return self._routes.before(request)
        except Exception:
            self._logger.exception("route resolver failed; naming the request 'unmatched'")
            return None

    def http_stats(self) -> dict[str, Any]:
        """The request counters alone (what exporters read; cheaper than the status)."""
        return {
            **self._counters.snapshot(),
            "client_rate_limit": self._client_limit.status() if self._client_limit else None,
            "endpoints": list(self._endpoints.paths) if self._endpoints else [],
        }

    def get_middleware_status(self) -> dict[str, Any]:
        """The three component reports and this middleware's request counters."""
        status = self._components.status()
        status["middleware"] = self.http_stats()
        return status
