"""coordination: validation, fault tolerance and observability for existing services.

The names a service uses are here and in ``__all__``: the components (validator, error
handler, performance monitor, health checker, metrics exporter) and their decorators, the
configuration, the exceptions, the middlewares and ``Coordination``. Everything else
lives in its subpackage (``coordination.validation``, ``coordination.error_handling``,
``coordination.performance``, ``coordination.integration``,
``coordination.observability``, ``coordination.backends.redis``,
``coordination.testing``).

``import coordination`` is cheap: the exceptions are imported at once, every other name
when it is first used (PEP 562), so PyYAML, jsonschema-rs, prometheus_client, asyncio and
the web frameworks are loaded by the part that needs them, not by the import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    ConfigWarning,
    CoordinationError,
    EventDeadLettered,
    InvalidEvent,
    OperationCancelled,
    OperationTimeout,
    RateLimitExceeded,
    RuleSetError,
    StoreError,
    ValidationError,
)
from ._lazy import lazy_attributes as _lazy_attributes
from ._version import __version__

if TYPE_CHECKING:
    from ._config import (
        CoordinationConfig,
        config_settings,
        describe_config,
        load_coordination_config,
    )
    from ._logging import json_log_formatter
    from ._redact import add_redaction_pattern, redact, remove_redaction_pattern
    from ._status import HealthStatus
    from .error_handling import (
        CircuitState,
        CoordinationErrorHandler,
        ErrorSeverity,
        handle_errors,
    )
    from .integration import (
        Coordination,
        CoordinationASGIMiddleware,
        CoordinationDjangoMiddleware,
        CoordinationEventProcessor,
        CoordinationMiddleware,
        CoordinationServiceWrapper,
        coordinate_operation,
        default_coordination,
        reload_config,
    )
    from .observability import CoordinationHealthChecker, CoordinationMetricsExporter
    from .performance import CoordinationPerformanceMonitor, track_performance
    from .validation import CoordinationValidator, validate_input

__all__ = [
    "BulkheadFull",
    "CircuitOpenError",
    "CircuitState",
    "ConfigError",
    "ConfigWarning",
    "Coordination",
    "CoordinationASGIMiddleware",
    "CoordinationConfig",
    "CoordinationDjangoMiddleware",
    "CoordinationError",
    "CoordinationErrorHandler",
    "CoordinationEventProcessor",
    "CoordinationHealthChecker",
    "CoordinationMetricsExporter",
    "CoordinationMiddleware",
    "CoordinationPerformanceMonitor",
    "CoordinationServiceWrapper",
    "CoordinationValidator",
    "ErrorSeverity",
    "EventDeadLettered",
    "HealthStatus",
    "InvalidEvent",
    "OperationCancelled",
    "OperationTimeout",
    "RateLimitExceeded",
    "RuleSetError",
    "StoreError",
    "ValidationError",
    "__version__",
    "add_redaction_pattern",
    "config_settings",
    "coordinate_operation",
    "default_coordination",
    "describe_config",
    "handle_errors",
    "json_log_formatter",
    "load_coordination_config",
    "redact",
    "reload_config",
    "remove_redaction_pattern",
    "track_performance",
    "validate_input",
]

# The public names not imported above: each is imported from its module on first use.
_LAZY = {
    "CoordinationConfig": "._config",
    "config_settings": "._config",
    "describe_config": "._config",
    "load_coordination_config": "._config",
    "json_log_formatter": "._logging",
    "add_redaction_pattern": "._redact",
    "redact": "._redact",
    "remove_redaction_pattern": "._redact",
    "HealthStatus": "._status",
    "CircuitState": ".error_handling",
    "CoordinationErrorHandler": ".error_handling",
    "ErrorSeverity": ".error_handling",
    "handle_errors": ".error_handling",
    "Coordination": ".integration",
    "CoordinationASGIMiddleware": ".integration",
    "CoordinationDjangoMiddleware": ".integration",
    "CoordinationEventProcessor": ".integration",
    "CoordinationMiddleware": ".integration",
    "CoordinationServiceWrapper": ".integration",
    "coordinate_operation": ".integration",
    "default_coordination": ".integration",
    "reload_config": ".integration",
    "CoordinationHealthChecker": ".observability",
    "CoordinationMetricsExporter": ".observability",
    "CoordinationPerformanceMonitor": ".performance",
    "track_performance": ".performance",
    "CoordinationValidator": ".validation",
    "validate_input": ".validation",
}

# Names that left the top level in 0.x (docs/migration.md, "Moved names"): still found here
# for one release, with a DeprecationWarning naming their place; not in __all__ or dir().
_MOVED = {
    name: place
    for place, names in {
        "coordination.error_handling": """
            Backoff BreakerFactory BreakerSettings BreakerSnapshot BreakerTransition
            Cancellation CircuitBreaker CircuitBreakerBackend ErrorRecord InMemoryRateLimiter
            Rate RateLimiterBackend RateLimiterFactory TransitionHook default_error_handler
            memory_breaker_factory memory_rate_limiter_factory retry_after_seconds
        """,
        "coordination.integration": "DeadLetter DeadLetterStore EventOutcome ReplayFailure "
        "ReplayReport",
        "coordination.observability": "CoordinationCollector OpenTelemetryBridge StatusPage",
        "coordination.performance": """
            LatencySketch OperationStats PerformanceAlert PerformanceAlertHook
            PerformanceThresholds ResourceSampler ThresholdBreach default_monitor
        """,
        "coordination.validation": "ErrorCode RuleSet ValidationIssue ValidationResult "
        "default_validator load_rule_sets",
        "coordination.backends.redis": "OutagePolicy RedisBackend RedisStreamSource",
    }.items()
    for name in names.split()
}


__getattr__, __dir__ = _lazy_attributes(
    __name__,
    _LAZY,
    _MOVED,
    subpackages=(
        "backends",
        "demo",
        "error_handling",
        "integration",
        "observability",
        "performance",
        "testing",
        "validation",
    ),
)
