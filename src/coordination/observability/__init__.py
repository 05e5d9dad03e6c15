"""Observability: health checks and probes, Prometheus metrics, OpenTelemetry.

``CoordinationHealthChecker`` and ``CoordinationMetricsExporter`` read the components when
asked, on prometheus_client (and opentelemetry-api for the bridge); see
docs/observability.md for every series, the health document, the endpoints, multi-process
servers and the OpenTelemetry bridge.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
    from ._collector import CoordinationCollector
    from ._exporter import CoordinationMetricsExporter
    from ._health import CoordinationHealthChecker
    from ._otel import OpenTelemetryBridge
    from ._status_page import StatusPage

__all__ = [
    "CoordinationCollector",
    "CoordinationHealthChecker",
    "CoordinationMetricsExporter",
    "OpenTelemetryBridge",
    "StatusPage",
]

# Each reader is imported when first used: a health check never loads prometheus_client.
__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "CoordinationCollector": "._collector",
        "CoordinationHealthChecker": "._health",
        "CoordinationMetricsExporter": "._exporter",
        "OpenTelemetryBridge": "._otel",
        "StatusPage": "._status_page",
    },
)
