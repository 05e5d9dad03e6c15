"""Scale out on Redis: shared circuit breakers, fleet-wide rate limits, a Streams source.

    >>> from coordination.backends.redis import RedisBackend
    >>> backend = RedisBackend("redis://127.0.0.1:6379/0", namespace="shop")
    >>> handler = CoordinationErrorHandler(
    ...     breaker_factory=backend.breaker, rate_limiter_factory=backend.rate_limiter
    ... )

Importing this package does not import redis-py (an optional extra); building a backend
does. See docs/scaling-out.md for the outage policy and the delivery guarantees.
"""

from ._backend import RedisBackend
from ._breaker import RedisCircuitBreaker
from ._connection import OutagePolicy, RedisGuard, connect, connect_async
from ._provider import RedisProvider
from ._rate_limit import RedisRateLimiter
from ._retry_budget import RedisRetryBudget
from ._streams import EventProcessor, RedisStreamSource, StreamBatch

__all__ = [
    "EventProcessor",
    "OutagePolicy",
    "RedisBackend",
    "RedisCircuitBreaker",
    "RedisGuard",
    "RedisProvider",
    "RedisRateLimiter",
    "RedisRetryBudget",
    "RedisStreamSource",
    "StreamBatch",
    "connect",
    "connect_async",
]
