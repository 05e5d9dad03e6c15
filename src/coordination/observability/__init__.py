"""Observability: health checks and probes, Prometheus metrics, OpenTelemetry.

``CoordinationHealthChecker`` and ``CoordinationMetricsExporter`` are the spec's classes,
built on the real client libraries; see docs/observability.md for every series, the health
document, the endpoints, multi-process servers and the OpenTelemetry bridge.
"""

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
