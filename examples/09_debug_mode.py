"""The spec's "Debug Mode", runnable.

Each component takes ``debug=True`` and logs through ``coordination.<component>``; the
application configures logging, as the spec does with ``basicConfig``.

    .venv/bin/python examples/09_debug_mode.py
"""

import logging

from coordination.error_handling import CoordinationErrorHandler
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator

# Enable debug logging
logging.basicConfig(level=logging.DEBUG)

# Initialize components with debug mode
validator = CoordinationValidator(debug=True)
error_handler = CoordinationErrorHandler(debug=True)
performance_monitor = CoordinationPerformanceMonitor(debug=True)

# Some work, so there is something to log.
result = validator.validate({"name": "John"}, {"required_fields": ["name", "email"]})
print(f"valid: {result.is_valid}; errors: {[e.message for e in result.errors]}")

attempts = []


def flaky():
    attempts.append(1)
    if len(attempts) < 3:
        raise ConnectionError("temporarily unavailable")
    return "ok"


with performance_monitor.record_operation("flaky"):
    outcome = error_handler.execute_with_error_handling(
        flaky, max_retries=3, base_delay=0, operation_name="flaky"
    )
print(f"flaky() -> {outcome} after {len(attempts)} attempts")
