"""The part of the WSGI and ASGI middleware that does not depend on the protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from .._config import CoordinationConfig
from .._time import perf_counter
from ._components import CoordinatedDoor, ErrorHandlerLike, MonitorLike, ValidatorLike
from ._endpoints import Endpoints
from ._http import UNMATCHED, HttpCounters, RequestPolicy
from ._routes import RouteResolver

__all__ = ["MiddlewareBase"]


class MiddlewareBase(CoordinatedDoor):
    """Components, request policy, endpoints and counters, built once per middleware.

    Subclasses name their protocol (``kind``) and how routes are named (``_resolver``).
    """

    kind: ClassVar[str]
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
        debug: bool = False,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a {self.kind} application, got {type(app).__name__}")
        self.app = app
        self._set_up(config, validator, error_handler, performance_monitor, debug)
        cfg = self.config
        self._policy = RequestPolicy(cfg, self.validator, route_rules, allowed_methods)
        self._routes: RouteResolver | None = type(self)._resolver(app, route_resolver)
        self._monitor = self.performance_monitor if cfg.enable_performance_monitoring else None
        self._endpoints = Endpoints(self._components, cfg) if cfg.expose_endpoints else None
        self._counters = HttpCounters()

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
        if error is None and not rejected:  # the common case, without the branches below
            counters.count_status(status)
        else:
            counters.finished(status, rejected=rejected, error=error)
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

    def get_middleware_status(self) -> dict[str, Any]:
        """The three component reports and this middleware's request counters."""
        status = self._components.status()
        status["middleware"] = {
            **self._counters.snapshot(),
            "endpoints": list(self._endpoints.paths) if self._endpoints else [],
        }
        return status
