"""Retry, circuit breaker, timeout, bulkhead, fallback and rate limit as one pipeline.

The breaker and rate-limiter backends are pluggable through the Protocols in
``_backends`` (memory by default, Redis when configured).
"""

from ._backends import (
    BreakerFactory,
    BreakerSettings,
    BreakerSnapshot,
    BreakerTransition,
    CircuitBreakerBackend,
    CircuitState,
    Rate,
    RateLimiterBackend,
    RateLimiterFactory,
    TransitionHook,
)

__all__ = [
    "BreakerFactory",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerTransition",
    "CircuitBreakerBackend",
    "CircuitState",
    "Rate",
    "RateLimiterBackend",
    "RateLimiterFactory",
    "TransitionHook",
]
