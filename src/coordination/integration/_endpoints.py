"""The built-in endpoints the middleware can serve: metrics, health probes, status page.

Built from ``coordination.observability`` only when ``config.expose_endpoints`` is on, at
the configured paths; requests to them are answered before the app and are not timed as
app operations (a scrape every few seconds would otherwise dominate the report).

The metrics endpoint also reads the middleware itself, as component ``http``: its
``coordination_http_*`` series (requests by method, route and status, rejections, rate
limits, durations) appear beside the components'.

Under a pre-fork server (gunicorn, uvicorn ``--workers``) the metrics endpoint shows the
whole service, with no setting: at its first request each worker starts sharing its
numbers with the others (``observability._multiprocess.AutoMultiprocess``), and a scrape,
whichever worker answers it, merges them all.
"""

from __future__ import annotations

from typing import Any

from .._config import CoordinationConfig
from .._errors import ConfigError
from .._logging import component_logger, log_extra
from ._components import Components

__all__ = ["Endpoints"]


class Endpoints:
    """Path → (WSGI app, ASGI app) for the enabled endpoints."""

    __slots__ = ("_exact", "_health_prefix", "_pending", "_share", "_shared", "paths")

    def __init__(
        self, components: Components, config: CoordinationConfig, middleware: object
    ) -> None:
        from prometheus_client import make_asgi_app, make_wsgi_app

        from ..observability import (
            CoordinationHealthChecker,
            CoordinationMetricsExporter,
            StatusPage,
        )
        from ..observability._collector import BackendErrorsCollector
        from ..observability._components import LiveHttpDoors
        from ..observability._multiprocess import AutoMultiprocess

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
        # The set's event processors show too, looked up at each read (as a reader given
        # no components finds them): the service's dead letters beside its requests.
        exporter = CoordinationMetricsExporter(
            LiveHttpDoors({**named, "http": middleware}, http=False), config=config
        )
        logger = component_logger("observability", debug=config.debug)
        shared = AutoMultiprocess((exporter.collector, BackendErrorsCollector()), logger=logger)
        self._shared = shared
        own_wsgi, own_asgi = exporter.make_wsgi_app(), exporter.make_asgi_app()
        merged: list[Any] = []  # (WSGI app, ASGI app) over the merged registry, once shared

        def metrics_wsgi(environ: Any, start_response: Any) -> Any:
            app = merged[0] if merged else own_wsgi
            return app(environ, start_response)

        async def metrics_asgi(scope: Any, receive: Any, send: Any) -> None:
            app = merged[1] if merged else own_asgi
            await app(scope, receive, send)

        def share() -> None:
            if shared.activate() and not merged:
                merged.extend((make_wsgi_app(shared.registry), make_asgi_app(shared.registry)))

        self._share = share
        checker = CoordinationHealthChecker(named, config=config)
        page = StatusPage(LiveHttpDoors(named, http=False), config=config)
        health = (checker.make_wsgi_app(), checker.make_asgi_app())
        status = (page.make_wsgi_app(), page.make_asgi_app())
        self._exact: dict[str, tuple[Any, Any]] = {
            config.metrics_path: (metrics_wsgi, metrics_asgi),
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
        self._pending = True  # the first request lets a pre-fork worker share its metrics

    def wsgi_app(self, path: str) -> Any:
        """The WSGI endpoint app serving ``path``, or None."""
        if self._pending:
            self._first_request()
        entry = self._exact.get(path)
        return None if entry is None else entry[0]

    def asgi_app(self, path: str) -> Any:
        """The ASGI endpoint app serving ``path``, or None."""
        if self._pending:
            self._first_request()
        entry = self._exact.get(path)
        return None if entry is None else entry[1]

    def _first_request(self) -> None:
        self._pending = False
        try:
            self._share()
        except Exception:  # metrics must never fail a request
            self._shared.logger.exception(
                "metrics are this worker's alone", extra=log_extra(endpoint="metrics")
            )
