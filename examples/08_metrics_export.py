"""The spec's "Metrics Integration", runnable.

``CoordinationMetricsExporter`` is the library's: Prometheus text produced by
``prometheus_client`` from the components at scrape time (the spec's series, plus a
documented set), instead of hand-formatted lines.

    .venv/bin/python examples/08_metrics_export.py
"""

from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import CoordinationMetricsExporter
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator

validator = CoordinationValidator()
error_handler = CoordinationErrorHandler()
performance_monitor = CoordinationPerformanceMonitor()

# Some work to measure.


def checkout(order):
    return {"order": order, "status": "paid"}


for order in range(20):
    with performance_monitor.record_operation("checkout"):
        error_handler.execute_with_error_handling(
            checkout, args=(order,), operation_name="checkout"
        )

# Usage
metrics_exporter = CoordinationMetricsExporter(
    {
        "validator": validator,
        "error_handler": error_handler,
        "performance_monitor": performance_monitor,
    }
)

prometheus_metrics = metrics_exporter.export_metrics()
print(prometheus_metrics)
