"""The spec's "Health Check Integration", runnable.

``CoordinationHealthChecker`` is the library's, with the spec's rules (a component's
``get_health_status()``, else its error report's ``status``, else UNKNOWN; a component
that raises makes the whole UNHEALTHY). The spec's usage refers to ``validator``,
``error_handler`` and ``performance_monitor`` without making them; here they are made.

    .venv/bin/python examples/07_health_check.py
"""

from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import CoordinationHealthChecker
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator

validator = CoordinationValidator()
error_handler = CoordinationErrorHandler()
performance_monitor = CoordinationPerformanceMonitor()

# Usage
health_checker = CoordinationHealthChecker(
    {
        "validator": validator,
        "error_handler": error_handler,
        "performance_monitor": performance_monitor,
    }
)

health_status = health_checker.check_health()
print(f"System health: {health_status['overall_status']}")

# A dependency down: its breaker opens, and health says so.
error_handler.force_open("payments")
health_status = health_checker.check_health()
print(f"System health with the payments breaker open: {health_status['overall_status']}")
print(f"error_handler: {health_status['components']['error_handler']['status']}")
