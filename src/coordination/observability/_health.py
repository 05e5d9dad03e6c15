"""``CoordinationHealthChecker``: health rules, custom checks, probes.

Each component is asked ``get_health_status()``, else its ``get_error_report()`` (whose
``status`` counts), else it is UNKNOWN; one that raises is ERROR and makes the whole
UNHEALTHY. The worst status wins, whatever the order; any status is normalised (an Enum
or a string is accepted instead of a dict); the timestamp is UTC.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._config import CoordinationConfig, resolve_config
from .._defaults import ComponentSet
from .._logging import component_logger, log_extra
from .._redact import error_text, truncate
from .._status import HealthStatus, worst_status
from .._time import Clock, monotonic, utc_timestamp
from ._checks import CheckResult, HealthCheck
from ._components import reader_components
from ._readings import component_health

if TYPE_CHECKING:
    from ._health_http import ASGIApp, WSGIApp

__all__ = ["CoordinationHealthChecker"]

_FAILING = (HealthStatus.UNHEALTHY, HealthStatus.ERROR)


class CoordinationHealthChecker:
    """Health of the coordination components and of custom checks, for people and probes.

    >>> checker = CoordinationHealthChecker({"validator": validator})
    >>> checker.check_health()["overall_status"]
    <HealthStatus.HEALTHY: 'HEALTHY'>

    With no components it reads the process's set (``default_coordination()``), which
    every door shares by default; ``coordination=`` reads another set (components given
    as well are a ``TypeError``).
    """

    def __init__(
        self,
        coordination_components: Mapping[str, object] | None = None,
        *,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        coordination: ComponentSet | None = None,
        debug: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.components, config = reader_components(
            "CoordinationHealthChecker", coordination_components, coordination, config
        )
        self.config = resolve_config(config)
        self._clock = clock or monotonic
        self._started = self._clock()
        self._checks: dict[str, HealthCheck] = {}
        self._logger = component_logger("observability", debug=debug or self.config.debug)

    # --- custom checks ------------------------------------------------------------------

    def add_check(
        self,
        name: str,
        check: Callable[[], Any],
        *,
        timeout: float | None = None,
        critical: bool = True,
    ) -> None:
        """Register ``check`` (sync or async) under ``name``.

        ``timeout`` defaults to ``config.health_check_timeout``; a check that takes longer
        counts as ERROR. A failing non-critical check only makes the whole DEGRADED.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a health check needs a non-empty string name, got {name!r}")
        if name in self._checks:
            raise ValueError(f"a health check named {name!r} is already registered")
        if not callable(check):
            raise TypeError(f"health check {name!r} must be callable, got {check!r}")
        seconds = self.config.health_check_timeout if timeout is None else timeout
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValueError(
                f"timeout of health check {name!r} must be a positive number of seconds, "
                f"got {timeout!r}"
            )
        self._checks[name] = HealthCheck(
            name,
            check,
            timeout=float(seconds),
            cache_seconds=self.config.health_cache_seconds,
            critical=critical,
            clock=self._clock,
        )

    def remove_check(self, name: str) -> None:
        """Forget the check registered under ``name`` (KeyError if there is none)."""
        del self._checks[name]

    # --- the checks ---------------------------------------------------------------------

    def check_health(self) -> dict[str, Any]:
        """``{"overall_status", "components", "checks", "timestamp"}``: the worst status of
        the components and checks, each one's own document, and the UTC time.

        Custom checks run concurrently, so the call takes at most the longest timeout.
        """
        components = self._read_components()
        started = [(check, check.start()) for check in self._checks.values()]
        results = {check.name: check.wait(*claimed) for check, claimed in started}
        return self._document(components, results)

    async def acheck_health(self) -> dict[str, Any]:
        """``check_health()`` for async code: nothing here blocks the event loop."""
        # A component may reach a backend (a Redis-backed breaker), so read them off-loop.
        components = await asyncio.to_thread(self._read_components)
        checks = list(self._checks.values())
        outcomes = await asyncio.gather(*(check.arun() for check in checks))
        results = {check.name: outcome for check, outcome in zip(checks, outcomes, strict=True)}
        return self._document(components, results)

    def check_readiness(self) -> dict[str, Any]:
        """Whether the service should receive traffic: the same as ``check_health()``."""
        return self.check_health()

    def check_liveness(self) -> dict[str, Any]:
        """Whether the process itself works: no component or dependency is consulted.

        Kubernetes restarts a container whose liveness probe fails, so a database outage
        must not fail it (a restart cannot fix the database); that is readiness's job.
        """
        return {
            "overall_status": HealthStatus.HEALTHY,
            "uptime_seconds": round(self._clock() - self._started, 3),
            "timestamp": utc_timestamp(),
        }

    # --- HTTP ---------------------------------------------------------------------------

    def make_wsgi_app(self) -> WSGIApp:
        """A WSGI app serving ``application/health+json``: ``…/live``, ``…/ready``, else all."""
        from ._health_http import make_wsgi_app

        return make_wsgi_app(self)

    def make_asgi_app(self) -> ASGIApp:
        """The ASGI twin of ``make_wsgi_app()``."""
        from ._health_http import make_asgi_app

        return make_asgi_app(self)

    # --- internals ----------------------------------------------------------------------

    def _read_components(self) -> dict[str, dict[str, Any]]:
        read: dict[str, dict[str, Any]] = {}
        for name, component in self.components.items():
            try:
                read[name] = component_health(component)
            except Exception as exc:
                self._logger.debug(
                    "health of component %r failed",
                    name,
                    exc_info=True,
                    extra=log_extra(component=name),
                )
                read[name] = {
                    "status": HealthStatus.ERROR,
                    "error": truncate(f"{type(exc).__name__}: {error_text(exc)}"),
                }
        return read

    def _document(
        self, components: dict[str, dict[str, Any]], results: dict[str, CheckResult]
    ) -> dict[str, Any]:
        statuses = [health["status"] for health in components.values()]
        for name, result in results.items():
            status = result.status
            if not self._checks[name].critical and status in _FAILING:
                status = HealthStatus.DEGRADED
            statuses.append(status)
        overall = worst_status(*statuses)
        if overall is HealthStatus.ERROR:
            overall = HealthStatus.UNHEALTHY
        return {
            "overall_status": overall,
            "components": components,
            "checks": {name: result.as_dict() for name, result in results.items()},
            "timestamp": utc_timestamp(),
        }
