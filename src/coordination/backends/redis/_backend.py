"""``RedisBackend``: one Redis connection serving shared breakers and rate limits.

    >>> backend = RedisBackend("redis://127.0.0.1:6379/0", namespace="shop")
    >>> handler = CoordinationErrorHandler(
    ...     breaker_factory=backend.breaker, rate_limiter_factory=backend.rate_limiter
    ... )

``CoordinationErrorHandler`` does this by itself when ``config.redis_url`` is set.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..._config import CoordinationConfig, resolve_config
from ..._errors import ConfigError
from ..._rate import Rate, RateLimit
from ..._time import Clock
from ...error_handling._backends import (
    BreakerSettings,
    CircuitBreakerBackend,
    RateLimiterBackend,
    TransitionHook,
)
from ._connection import (
    DEFAULT_SOCKET_TIMEOUT,
    OutagePolicy,
    RedisGuard,
    connect,
    connect_async,
    key_prefix,
)

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from ._breaker import RedisCircuitBreaker
    from ._rate_limit import RedisRateLimiter

__all__ = ["RedisBackend"]

WallClock = Callable[[], float]

# Backends made from configuration, one per (url, namespace, policy): a handful at most.
_shared: dict[tuple[str, str, str], RedisBackend] = {}
_shared_lock = threading.Lock()


class RedisBackend:
    """Shared state in one Redis: a ``BreakerFactory`` and a ``RateLimiterFactory``.

    ``outage_policy`` says what breakers and limiters do while Redis is unreachable
    (``"local"``: their own in-process state, the default; ``"allow"``: admit every call;
    ``"raise"``: ``StoreError``). Keys live under ``namespace`` and expire after
    ``key_ttl`` seconds unused. ``redis_clock`` (wall-clock seconds) replaces the Redis
    server clock, for tests that must not sleep; every process must then share it.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "coordination",
        outage_policy: OutagePolicy | str = OutagePolicy.LOCAL,
        key_ttl: float = 3600.0,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        reconnect_interval: float = 1.0,
        client: redis.Redis | None = None,
        redis_clock: WallClock | None = None,
        clock: Clock | None = None,
    ) -> None:
        if client is None and url is None:
            raise ConfigError(
                "RedisBackend needs a redis_url (or a client)", field="redis_url", value=None
            )
        if not (isinstance(key_ttl, int | float) and key_ttl > 0):
            raise ConfigError(
                f"key_ttl: expected seconds greater than 0, got {key_ttl!r}",
                field="key_ttl",
                value=key_ttl,
            )
        self.url = url
        self.prefix = key_prefix(namespace)
        self.key_ttl = float(key_ttl)
        self.socket_timeout = socket_timeout
        self.client: redis.Redis = (
            client if client is not None else connect(url or "", socket_timeout=socket_timeout)
        )
        self.errors: tuple[type[Exception], ...] = _all_redis_errors()
        self._redis_clock = redis_clock
        self._connections = threading.local()
        self._packer = self._new_connection()  # never connected: it only encodes commands
        self._async: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis] | None = None
        guard = {"policy": outage_policy, "reconnect_interval": reconnect_interval, "clock": clock}
        self.breaker_guard = RedisGuard("breaker", **guard)  # type: ignore[arg-type]
        self.rate_limit_guard = RedisGuard("rate_limit", **guard)  # type: ignore[arg-type]

    @classmethod
    def from_config(
        cls, config: CoordinationConfig | Mapping[str, Any] | None = None
    ) -> RedisBackend:
        """The process-wide backend for ``redis_url``, ``redis_namespace`` and
        ``redis_outage_policy``: every handler configured alike shares its connections,
        and an outage is logged once, not once per handler."""
        resolved = resolve_config(config)
        if resolved.redis_url is None:
            raise ConfigError(
                "redis_url is not set (COORDINATION_REDIS_URL)", field="redis_url", value=None
            )
        key = (resolved.redis_url, resolved.redis_namespace, resolved.redis_outage_policy)
        with _shared_lock:
            backend = _shared.get(key)
            if backend is None:
                backend = cls(
                    resolved.redis_url,
                    namespace=resolved.redis_namespace,
                    outage_policy=resolved.redis_outage_policy,
                )
                _shared[key] = backend
        return backend

    # --- the factories ---------------------------------------------------------------------

    def breaker(
        self,
        name: str,
        settings: BreakerSettings,
        *,
        clock: Clock,
        on_transition: TransitionHook,
    ) -> RedisCircuitBreaker:
        """A ``BreakerFactory``: the shared breaker of operation ``name``."""
        from ._breaker import RedisCircuitBreaker

        if settings.uses_window:
            raise ConfigError(
                f"operation {name!r}: the Redis breaker counts consecutive failures only; "
                "failure_rate_threshold and slow_call_rate_threshold need the in-memory "
                "breaker",
                field="failure_rate_threshold",
                value=settings.failure_rate_threshold,
            )

        def local() -> CircuitBreakerBackend:
            from ...error_handling import CircuitBreaker

            return CircuitBreaker(name, settings, clock=clock, on_transition=on_transition)

        return RedisCircuitBreaker(
            self, name, settings, clock=clock, on_transition=on_transition, local=local
        )

    def rate_limiter(self, rate: Rate | RateLimit, *, clock: Clock) -> RedisRateLimiter:
        """A ``RateLimiterFactory``: a GCRA limit of ``rate`` (every window) per key,
        shared in Redis."""
        from ._rate_limit import RedisRateLimiter

        def local() -> RateLimiterBackend:
            from ...error_handling import InMemoryRateLimiter

            return InMemoryRateLimiter(rate, clock=clock)

        return RedisRateLimiter(self, rate, local=local)

    # --- plumbing shared by breakers and limiters ----------------------------------------

    def execute(self, *command: Any) -> Any:
        """Send one command and read its reply on this thread's own connection.

        The hot path (the scripts) skips the client's connection pool: checking a
        connection out of it costs a lock and a poll of the socket per command, as much
        as the round trip itself on loopback. Each thread (and each process, after a
        fork) gets its own connection, made with the client's options; a failed one is
        closed by redis-py and made again on the next command.
        """
        return self.execute_packed(self.pack(*command))

    def execute_packed(self, packed: list[bytes]) -> Any:
        """``execute`` for a command packed beforehand with ``pack`` (constant commands
        are packed once, which saves a sixth of a loopback call)."""
        local = self._connections
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            connection = self._new_connection()
            local.connection, local.pid = connection, os.getpid()
        connection.send_packed_command(packed)
        return connection.read_response()

    def pack(self, *command: Any) -> list[bytes]:
        """``command`` in the wire format, encoded as the client's connections encode."""
        packed: list[bytes] = self._packer.pack_command(*command)
        return packed

    def _new_connection(self) -> Any:
        pool = self.client.connection_pool
        return pool.connection_class(**pool.connection_kwargs)

    def now_ms(self) -> int | str:
        """The injected wall clock in ms, or ``""`` to let the script read Redis ``TIME``."""
        return "" if self._redis_clock is None else round(self._redis_clock() * 1000)

    def now_us(self) -> int | str:
        return "" if self._redis_clock is None else round(self._redis_clock() * 1_000_000)

    def current_ms(self) -> int:
        """The time the scripts see, in ms: the injected clock or the Redis server's."""
        if self._redis_clock is not None:
            return round(self._redis_clock() * 1000)
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop (asyncio connections are per loop)."""
        loop = asyncio.get_running_loop()
        current = self._async
        if current is None or current[0] is not loop:
            if self.url is None:
                raise ConfigError(
                    "async calls need RedisBackend(url=...), not only a sync client",
                    field="redis_url",
                    value=None,
                )
            current = (loop, connect_async(self.url, socket_timeout=self.socket_timeout))
            self._async = current
        return current[1]

    def status(self) -> dict[str, Any]:
        return {
            "namespace": self.prefix.rstrip(":"),
            "breakers": self.breaker_guard.status(),
            "rate_limits": self.rate_limit_guard.status(),
        }

    def close(self) -> None:
        connection = getattr(self._connections, "connection", None)
        if connection is not None:
            connection.disconnect()
            self._connections.connection = None
        self.client.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async[1].aclose()
            self._async = None


def _all_redis_errors() -> tuple[type[Exception], ...]:
    # Any Redis error (an outage, but also a key of the wrong type left by another program)
    # falls back rather than failing the protected call; each one is counted and logged.
    from redis.exceptions import RedisError

    return (RedisError,)
