"""The built-in endpoints the middleware can serve: metrics, health probes, status page.

Built from ``coordination.observability`` only when ``config.expose_endpoints`` is on, at
the configured paths; requests to them are answered before the app and are not timed as
app operations (a scrape every few seconds would otherwise dominate the report).

The metrics endpoint also reads the middleware itself, as component ``http``: its
``coordination_http_*`` series (requests by method, route and status, rejections, rate
limits, durations) appear beside the components'.
"""

from __future__ import annotations

from typing import Any

from .._config import CoordinationConfig
from .._errors import ConfigError
from ._components import Components

__all__ = ["Endpoints"]


class Endpoints:
    """Path → (WSGI app, ASGI app) for the enabled endpoints."""

    __slots__ = ("_exact", "_health_prefix", "paths")

    def __init__(
        self, components: Components, config: CoordinationConfig, middleware: object
    ) -> None:
        from ..observability import (
            CoordinationHealthChecker,
            CoordinationMetricsExporter,
            StatusPage,
        )

        named = components.as_mapping()
        for field in ("metrics_path", "health_path", "status_page_path"):
            value = getattr(config, field)
            if not value.startswith("/"):
                raise ConfigError(
                    f"{field} must start with '/', got {value!r}",
                    field=field,
                    value=value,
                    source="configuration",
                )
        exporter = CoordinationMetricsExporter({**named, "http": middleware}, config=config)
        checker = CoordinationHealthChecker(named, config=config)
        page = StatusPage(named, config=config)
        health = (checker.make_wsgi_app(), checker.make_asgi_app())
        status = (page.make_wsgi_app(), page.make_asgi_app())
        self._exact: dict[str, tuple[Any, Any]] = {
            config.metrics_path: (exporter.make_wsgi_app(), exporter.make_asgi_app()),
            config.health_path: health,
            page.path: status,
            page.path + "/": status,
            page.json_path: status,
        }
        # /health/live and /health/ready are answered by the same health app.
        self._health_prefix = config.health_path.rstrip("/") + "/"
        for probe in ("live", "ready"):
            self._exact[self._health_prefix + probe] = health
        self.paths = tuple(sorted(self._exact))

    def wsgi_app(self, path: str) -> Any:
        entry = self._exact.get(path)
        return None if entry is None else entry[0]

    def asgi_app(self, path: str) -> Any:
        entry = self._exact.get(path)
        return None if entry is None else entry[1]
