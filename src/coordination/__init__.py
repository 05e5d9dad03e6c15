"""coordination: validation, fault tolerance and observability for existing services.

Every public name is importable from here and listed in ``__all__``; the subpackages
(``coordination.validation``, ``coordination.error_handling``,
``coordination.performance``, ``coordination.integration``,
``coordination.observability``) mirror the spec's modules.
"""

from ._config import (
    CoordinationConfig,
    config_settings,
    describe_config,
    load_coordination_config,
)
from ._errors import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    CoordinationError,
    EventDeadLettered,
    OperationTimeout,
    RateLimitExceeded,
    RuleSetError,
    StoreError,
    ValidationError,
)
from ._status import HealthStatus
from ._version import __version__
from .error_handling import (
    Backoff,
    BreakerFactory,
    BreakerSettings,
    BreakerSnapshot,
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerBackend,
    CircuitState,
    CoordinationErrorHandler,
    ErrorRecord,
    ErrorSeverity,
    InMemoryRateLimiter,
    Rate,
    RateLimiterBackend,
    RateLimiterFactory,
    TransitionHook,
    default_error_handler,
    handle_errors,
    memory_breaker_factory,
    memory_rate_limiter_factory,
    retry_after_seconds,
)

# Each capability below adds its public names to the imports above and to __all__.

__all__ = [
    "Backoff",
    "BreakerFactory",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerTransition",
    "BulkheadFull",
    "CircuitBreaker",
    "CircuitBreakerBackend",
    "CircuitOpenError",
    "CircuitState",
    "ConfigError",
    "CoordinationConfig",
    "CoordinationError",
    "CoordinationErrorHandler",
    "ErrorRecord",
    "ErrorSeverity",
    "EventDeadLettered",
    "HealthStatus",
    "InMemoryRateLimiter",
    "OperationTimeout",
    "Rate",
    "RateLimitExceeded",
    "RateLimiterBackend",
    "RateLimiterFactory",
    "RuleSetError",
    "StoreError",
    "TransitionHook",
    "ValidationError",
    "__version__",
    "config_settings",
    "default_error_handler",
    "describe_config",
    "handle_errors",
    "load_coordination_config",
    "memory_breaker_factory",
    "memory_rate_limiter_factory",
    "retry_after_seconds",
]
