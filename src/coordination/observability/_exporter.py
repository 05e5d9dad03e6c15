"""``CoordinationMetricsExporter``: the components' metrics, on prometheus_client.

prometheus_client generates every byte from ``CoordinationCollector``, and serves it with
content negotiation (the OpenMetrics format for scrapers that ask for it, gzip when
accepted).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
    make_asgi_app,
    make_wsgi_app,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from .._config import CoordinationConfig, resolve_config
from .._defaults import ComponentSet
from .._logging import component_logger
from ._collector import (
    BackendErrorsCollector,
    CoordinationCollector,
    DurationType,
)
from ._components import LiveHttpDoors, reader_components
from ._health_http import ASGIApp, WSGIApp
from ._multiprocess import MergedSnapshotsCollector, SnapshotWriter

__all__ = ["CoordinationMetricsExporter"]


class CoordinationMetricsExporter:
    """Prometheus metrics of the coordination components, read at scrape time.

    >>> exporter = CoordinationMetricsExporter({"error_handler": handler})
    >>> print(exporter.export_metrics())  # doctest: +SKIP

    ``registry``: the collector registers into it (pass ``prometheus_client.REGISTRY`` to
    serve everything from one endpoint); by default a private registry, which also gets
    prometheus_client's ``process_*`` series (CPU, memory, open files).

    ``multiprocess_dir``: for servers with several worker processes (gunicorn), the
    directory every worker shares (usually ``os.environ["PROMETHEUS_MULTIPROC_DIR"]``);
    each worker writes a snapshot there every ``snapshot_interval`` seconds and a scrape of
    any worker shows the merged numbers of all (docs/observability.md, "Multi-process").
    The private registry then also serves prometheus_client's own multi-process metrics.

    ``durations``: ``"histogram"`` (aggregatable across instances) or ``"summary"`` (the
    latency sketch's quantiles, within 1 %).

    With no components it reads the process's set (``default_coordination()``), which
    every door shares by default; ``coordination=`` reads another set (components given
    as well are a ``TypeError``).
    """

    def __init__(
        self,
        coordination_components: Mapping[str, object] | None = None,
        *,
        registry: CollectorRegistry | None = None,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        coordination: ComponentSet | None = None,
        debug: bool = False,
        multiprocess_dir: str | os.PathLike[str] | None = None,
        snapshot_interval: float = 5.0,
        durations: DurationType = "histogram",
    ) -> None:
        components, config = reader_components(
            "CoordinationMetricsExporter", coordination_components, coordination, config
        )
        # The set's middlewares count the HTTP requests: show them too, so the exporter
        # shows the whole service as the middleware's own /metrics does.
        self.components: Mapping[str, object] = (
            LiveHttpDoors(components) if coordination_components is None else components
        )
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise TypeError(
                f"registry must be a prometheus_client CollectorRegistry, got {registry!r}"
            )
        self.config = resolve_config(config)
        logger = component_logger("observability", debug=debug or self.config.debug)
        self.collector = CoordinationCollector(
            self.components,
            max_label_values=self.config.max_operation_names,
            durations=durations,
            logger=logger,
        )
        self.snapshot_writer: SnapshotWriter | None = None
        served: Collector = self.collector
        if multiprocess_dir is not None:
            self.snapshot_writer = SnapshotWriter(
                self.collector, multiprocess_dir, interval=snapshot_interval, logger=logger
            )
            served = MergedSnapshotsCollector(multiprocess_dir, writer=self.snapshot_writer)
        if registry is None:
            registry = CollectorRegistry()
            if multiprocess_dir is None:
                ProcessCollector(registry=registry)
            else:  # per-process series cannot be merged; users' multi-process metrics can
                MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
        registry.register(served)
        self._redis_errors: BackendErrorsCollector | None = None
        if registry is not REGISTRY and multiprocess_dir is None:
            # REGISTRY has the Redis and broker error counters already; multi-process mode merges it
            # from prometheus_client's own files.
            self._redis_errors = BackendErrorsCollector()
            registry.register(self._redis_errors)
        self.registry = registry
        self._served = served
        if self.snapshot_writer is not None:
            self.snapshot_writer.start()

    def export_metrics(self, *, openmetrics: bool = False) -> str:
        """The registry's metrics as Prometheus text (or OpenMetrics text)."""
        if openmetrics:
            text: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
            return text.decode("utf-8")
        return generate_latest(self.registry).decode("utf-8")

    def make_wsgi_app(self) -> WSGIApp:
        """prometheus_client's WSGI metrics app for this registry (negotiates the format)."""
        app: WSGIApp = make_wsgi_app(self.registry)
        return app

    def make_asgi_app(self) -> ASGIApp:
        """prometheus_client's ASGI metrics app for this registry, shown only the request
        parts it reads, each valid UTF-8 (it decodes every header name and the query
        string as UTF-8, so one header such as ``b"\x80"`` would make it raise: a 500)."""
        served: ASGIApp = make_asgi_app(self.registry)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await served(_negotiation_only(scope), receive, send)

        return app

    def close(self) -> None:
        """Unregister the collector and stop writing snapshots (with a last one)."""
        self.registry.unregister(self._served)
        if self._redis_errors is not None:
            self.registry.unregister(self._redis_errors)
        if self.snapshot_writer is not None:
            self.snapshot_writer.stop()


_NEGOTIATION_HEADERS = frozenset({b"accept", b"accept-encoding"})


def _negotiation_only(scope: Mapping[str, Any]) -> dict[str, Any]:
    """``scope`` with only the headers that choose the format and compression, and a
    query string (``name[]=`` filters) that is valid UTF-8; the rest is not read."""
    headers = []
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() in _NEGOTIATION_HEADERS:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                continue  # no usable preference: the default format, uncompressed
            headers.append((bytes(name).lower(), value))
    query = scope.get("query_string") or b""
    try:
        query.decode("utf-8")
    except UnicodeDecodeError:
        query = b""  # not a filter any metric name could match: show everything
    return {**scope, "headers": headers, "query_string": query}
