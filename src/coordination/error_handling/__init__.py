"""Retry, circuit breaker, timeout, bulkhead, fallback and rate limit as one pipeline.

>>> from coordination.error_handling import handle_errors
>>> @handle_errors(max_retries=3, error_severity="HIGH")
... def charge(order_id: str) -> str:
...     return f"charged {order_id}"

The breaker and rate-limiter backends are pluggable through the Protocols in
``_backends`` (memory by default, Redis when configured). See docs/error-handling.md.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes
from .._rate import Quota, Rate, RateLimit, WindowQuota
from ._backends import (
    BreakerFactory,
    BreakerSettings,
    BreakerSnapshot,
    BreakerTransition,
    CircuitBreakerBackend,
    CircuitState,
    QuotaLimiter,
    RateLimiterBackend,
    RateLimiterFactory,
    RetryBudgetBackend,
    TransitionHook,
)
from ._breaker import CircuitBreaker, memory_breaker_factory
from ._cancellation import Cancellation
from ._decorate import default_error_handler, handle_errors
from ._details import (
    NO_RESULT,
    FallbackDetails,
    RetryDetails,
    get_on_retry_hooks,
    set_on_retry_hooks,
)
from ._handler import CoordinationErrorHandler
from ._ratelimit import InMemoryRateLimiter, memory_rate_limiter_factory
from ._reload_log import ReloadRecord, ReloadSnapshot
from ._report import ErrorRecord
from ._retry import Backoff, retry_after_seconds
from ._severity import ErrorSeverity
from ._snapshot import BreakerHealth, HandlerSnapshot, OperationErrorSnapshot

if TYPE_CHECKING:
    from .._concurrency_snapshot import ConcurrencySnapshot
    from ._retry_budget import (
        BudgetSettings,
        RetryBudget,
        RetryBudgetFactory,
        memory_retry_budget_factory,
    )

__all__ = [
    "NO_RESULT",
    "Backoff",
    "BreakerFactory",
    "BreakerHealth",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerTransition",
    "BudgetSettings",
    "Cancellation",
    "CircuitBreaker",
    "CircuitBreakerBackend",
    "CircuitState",
    "ConcurrencySnapshot",
    "CoordinationErrorHandler",
    "ErrorRecord",
    "ErrorSeverity",
    "FallbackDetails",
    "HandlerSnapshot",
    "InMemoryRateLimiter",
    "OperationErrorSnapshot",
    "Quota",
    "QuotaLimiter",
    "Rate",
    "RateLimit",
    "RateLimiterBackend",
    "RateLimiterFactory",
    "ReloadRecord",
    "ReloadSnapshot",
    "RetryBudget",
    "RetryBudgetBackend",
    "RetryBudgetFactory",
    "RetryDetails",
    "TransitionHook",
    "WindowQuota",
    "default_error_handler",
    "get_on_retry_hooks",
    "handle_errors",
    "memory_breaker_factory",
    "memory_rate_limiter_factory",
    "memory_retry_budget_factory",
    "retry_after_seconds",
    "set_on_retry_hooks",
]

# What handle_errors does not need is loaded when first used (the import's module budget).
__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "ConcurrencySnapshot": ".._concurrency_snapshot",
        # loaded with the first use of a retry budget, not by every handle_errors import
        "BudgetSettings": "._retry_budget",
        "RetryBudget": "._retry_budget",
        "RetryBudgetFactory": "._retry_budget",
        "memory_retry_budget_factory": "._retry_budget",
    },
)
