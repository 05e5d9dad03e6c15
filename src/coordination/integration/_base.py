"""The part of the WSGI and ASGI middleware that does not depend on the protocol."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._config import CoordinationConfig, resolve_config
from .._logging import component_logger
from .._time import perf_counter
from ._components import ErrorHandlerLike, MonitorLike, ValidatorLike, build_components
from ._endpoints import Endpoints
from ._http import HttpCounters, RequestPolicy, operation_name

__all__ = ["MiddlewareBase"]


class MiddlewareBase:
    """Components, request policy, endpoints and counters, built once per middleware."""

    def __init__(
        self,
        app: Any,
        config: CoordinationConfig | Mapping[str, Any] | None,
        *,
        route_rules: Mapping[str, Any] | None,
        allowed_methods: Iterable[str] | None,
        validator: ValidatorLike | None,
        error_handler: ErrorHandlerLike | None,
        performance_monitor: MonitorLike | None,
        debug: bool,
        kind: str,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a {kind} application, got {type(app).__name__}")
        cfg = resolve_config(config)
        self.app = app
        self.config = cfg
        self._components = build_components(
            cfg,
            validator=validator,
            error_handler=error_handler,
            performance_monitor=performance_monitor,
            debug=debug or cfg.debug,
        )
        self.validator = self._components.validator
        self.error_handler = self._components.error_handler
        self.performance_monitor = self._components.monitor
        self._logger = component_logger("integration", debug=debug or cfg.debug)
        self._policy = RequestPolicy(cfg, self.validator, route_rules, allowed_methods)
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
        self._counters.finished(status, rejected=rejected, error=error)
        if self._monitor is not None:
            failed = error is not None or status >= 500
            self._monitor.record_duration(
                operation_name(method, route),
                perf_counter() - started,
                success=not failed,
                error=error if error is not None else (f"HTTP {status}" if failed else None),
            )

    def get_middleware_status(self) -> dict[str, Any]:
        """The three component reports and this middleware's request counters."""
        status = self._components.status()
        status["middleware"] = {
            **self._counters.snapshot(),
            "endpoints": list(self._endpoints.paths) if self._endpoints else [],
        }
        return status
