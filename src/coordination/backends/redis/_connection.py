"""Connecting to Redis, and what to do while it is unreachable.

Every Redis-backed component talks to Redis through a ``RedisGuard``. While Redis answers,
the guard stays out of the way (one comparison per call). When a command fails with a
connection or timeout error, the guard logs a warning once for the whole outage, counts
the error in the ``coordination_redis_errors_total`` metric, and for
``reconnect_interval`` seconds tells the component to use its outage policy instead of
waiting for Redis again; after that it lets **one** call try (single flight: while that
probe is out, every other call takes the outage policy at once instead of waiting on a
hung server too), and redis-py reconnects by itself. Short socket timeouts (0.25 s by
default) bound what that one call pays when Redis hangs.

``cluster=True`` makes the clients redis-py's Redis Cluster clients (``RedisCluster``,
``redis.asyncio.cluster.RedisCluster``), with the same timeouts and no hidden retries.
Every key of one owner is ``owned_key(...)``, hash-tagged by its owner, so each script
touches a single slot.

redis-py is an optional extra: it is imported when a client is built, never at import.
"""

from __future__ import annotations

import logging
import threading
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from prometheus_client import Counter

from ..._errors import ConfigError, StoreError
from ..._logging import component_logger, log_extra
from ..._redact import error_text
from ..._time import Clock, monotonic

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster

__all__ = [
    "DEFAULT_SOCKET_TIMEOUT",
    "ClientOnDemand",
    "OutagePolicy",
    "RedisGuard",
    "check_cluster_url",
    "connect",
    "connect_async",
    "existing_redis_errors",
    "is_cluster_client",
    "key_prefix",
    "owned_key",
    "redis_errors",
    "store_errors",
]

DEFAULT_SOCKET_TIMEOUT = 0.25
# How long one probe of a down Redis has the floor before another call may probe (a probe
# that never reports back, e.g. its thread died, must not keep Redis unprobed forever).
PROBE_GRACE = 1.0

_counter_lock = threading.Lock()
_counter: Counter | None = None


def redis_errors() -> Counter:
    """The ``coordination_redis_errors_total`` counter, registered on first use (so merely
    importing the package adds nothing to an application's /metrics). One counter for
    every Redis-backed component; its label is the component kind, a small fixed set."""
    global _counter
    with _counter_lock:
        if _counter is None:
            _counter = Counter(
                "coordination_redis_errors",
                "Redis commands that failed (connection, timeout or server errors), by component.",
                ["component"],
            )
        return _counter


def existing_redis_errors() -> Counter | None:
    """The counter if a Redis-backed component made it in this process, else None (for
    exporters: the series appears from the first Redis-backed component on)."""
    return _counter


class OutagePolicy(StrEnum):
    """What a Redis-backed component does while Redis is unreachable.

    - ``LOCAL`` (the default): keep going on this process's own in-memory state, so the
      breaker and limits still protect, per process, until Redis is back.
    - ``ALLOW``: fail open: admit every call (no breaker, no limit) during the outage.
    - ``RAISE``: raise ``StoreError`` instead of making the call.
    """

    LOCAL = "local"
    ALLOW = "allow"
    RAISE = "raise"

    @classmethod
    def parse(cls, value: OutagePolicy | str) -> OutagePolicy:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise ConfigError(
                f"outage_policy: {value!r} is not one of {choices}",
                field="outage_policy",
                value=value,
            ) from None


def key_prefix(namespace: str) -> str:
    """``namespace`` checked (non-empty, no spaces or braces) and ending in ``:``."""
    if (
        not isinstance(namespace, str)
        or not namespace
        or any(c.isspace() or c in "{}" for c in namespace)
    ):
        raise ConfigError(
            "redis namespace: expected a non-empty string without spaces or braces, "
            f"got {namespace!r}",
            field="redis_namespace",
            value=namespace,
        )
    return namespace if namespace.endswith(":") else namespace + ":"


def owned_key(prefix: str, owner: str, kind: str) -> str:
    """The key of ``owner``'s (an operation's, a client's) state of ``kind``.

    ``owner`` is the key's hash tag (``coordination:{payments}:breaker``): every key of one
    owner lands in the same Redis Cluster slot, so a script touching several of them (the
    breaker's combined rate-limit check, a limit of several windows) stays single-slot.
    The namespace may hold no brace, so the owner's first ``{`` opens the tag.
    """
    return f"{prefix}{{{owner}}}:{kind}"


def _client_options(socket_timeout: float) -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if socket_timeout <= 0:
        raise ConfigError(
            f"socket_timeout: must be greater than 0, got {socket_timeout!r}",
            field="socket_timeout",
            value=socket_timeout,
        )
    # No client-side retries: the guard decides when to try again, so an outage costs one
    # short timeout per reconnect interval instead of several per call.
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }


def _check_url(url: str) -> None:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"redis_url: expected redis://, rediss:// or unix:// URL, got {url!r}",
            field="redis_url",
            value=url,
        )


def _missing_redis(exc: ImportError) -> StoreError:  # pragma: no cover - installation
    return StoreError("the Redis backend needs redis-py: pip install 'coordination-systems[redis]'")


def check_cluster_url(url: str) -> None:
    """``url`` can name a Redis Cluster node: a ``redis://`` or ``rediss://`` URL."""
    _check_url(url)
    if url.startswith("unix://"):
        raise ConfigError(
            f"redis_url: a Redis Cluster is reached over TCP (redis:// or rediss://), got {url!r}",
            field="redis_url",
            value=url,
        )


@overload
def connect(
    url: str, *, socket_timeout: float = ..., cluster: Literal[False] = False
) -> redis.Redis: ...
@overload
def connect(
    url: str, *, socket_timeout: float = ..., cluster: bool
) -> redis.Redis | redis.RedisCluster: ...
def connect(
    url: str, *, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT, cluster: bool = False
) -> redis.Redis | redis.RedisCluster:
    """A redis-py client for ``url`` with short timeouts and no hidden retries.

    With ``cluster=True``, a ``RedisCluster`` whose startup node is ``url``: it asks that
    node for the slot map when it is built (so building it needs the cluster up), and
    routes each command to the master of its key's slot.
    """
    _check_url(url)
    try:
        import redis as redis_module
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise _missing_redis(exc) from exc
    options = _client_options(socket_timeout)
    if cluster:
        check_cluster_url(url)
        return redis_module.RedisCluster.from_url(url, **options)
    return redis_module.Redis.from_url(url, **options)


class ClientOnDemand:
    """The redis-py client of a backend or a stream source: the one given, a ``Redis`` made
    at once, or a ``RedisCluster`` made by the first command that needs it.

    Building a cluster client reads the slot map from the startup node, so a cluster that
    is down when the process starts becomes an outage its caller's policy handles, not an
    error when the handler or the source is built.
    """

    __slots__ = ("_lock", "_made", "_socket_timeout", "_url")

    def __init__(
        self,
        url: str | None,
        client: redis.Redis | redis.RedisCluster | None,
        *,
        cluster: bool,
        socket_timeout: float,
    ) -> None:
        if client is None and not cluster:
            client = connect(url or "", socket_timeout=socket_timeout)
        elif client is None:
            check_cluster_url(url or "")
        self._made = client
        self._url = url or ""
        self._socket_timeout = socket_timeout
        self._lock = threading.Lock()

    @property
    def made(self) -> redis.Redis | redis.RedisCluster | None:
        """The client, or None while a cluster client is not made yet."""
        return self._made

    def get(self) -> redis.Redis | redis.RedisCluster:
        """The client, made now when it is a cluster client not made yet (this may raise
        a Redis error: the cluster is unreachable)."""
        client = self._made
        if client is None:
            with self._lock:
                client = self._made
                if client is None:
                    client = self._made = connect(
                        self._url, socket_timeout=self._socket_timeout, cluster=True
                    )
        return client

    def close(self) -> None:
        if self._made is not None:
            self._made.close()


def is_cluster_client(client: object) -> bool:
    """``client`` is a redis-py ``RedisCluster``."""
    if client is None:
        return False
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


@overload
def connect_async(
    url: str, *, socket_timeout: float = ..., cluster: Literal[False] = False
) -> redis.asyncio.Redis: ...
@overload
def connect_async(
    url: str, *, socket_timeout: float = ..., cluster: bool
) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster: ...
def connect_async(
    url: str, *, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT, cluster: bool = False
) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
    """The asyncio twin of ``connect`` (the asyncio cluster client reads the slot map on
    its first command, not when it is built)."""
    _check_url(url)
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise _missing_redis(exc) from exc
    if cluster:
        from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

        return connect_async_cluster(url, AsyncRedisCluster, socket_timeout=socket_timeout)
    return aioredis.Redis.from_url(url, **_client_options(socket_timeout))


AsyncCluster = TypeVar("AsyncCluster", bound="redis.asyncio.cluster.RedisCluster")


def connect_async_cluster(
    url: str, cluster_class: type[AsyncCluster], *, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
) -> AsyncCluster:
    """``connect_async(url, cluster=True)`` made as ``cluster_class`` (a subclass of
    redis-py's asyncio ``RedisCluster``)."""
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff

    check_cluster_url(url)
    options = _client_options(socket_timeout)
    options["retry"] = AsyncRetry(NoBackoff(), 0)
    # from_url makes an instance of the class it is called on (redis-py types it as the base)
    return cast("AsyncCluster", cluster_class.from_url(url, **options))


def store_errors() -> tuple[type[Exception], ...]:
    """What a failed Redis command raises: any ``RedisError`` (an outage, but also a key of
    the wrong type left by another program), and the cluster client's own errors, which
    are not ``RedisError``s (no reachable startup node, a slot no master serves)."""
    from redis.exceptions import RedisClusterException, RedisError

    return (RedisError, RedisClusterException)


class RedisGuard:
    """Tracks whether Redis is usable; logs each outage once and counts every error.

    >>> guard = RedisGuard("breaker")
    >>> guard.usable()
    True
    """

    __slots__ = (
        "_clock",
        "_down",
        "_lock",
        "_logger",
        "_metric",
        "_retry_at",
        "component",
        "errors",
        "last_error",
        "policy",
        "reconnect_interval",
    )

    def __init__(
        self,
        component: str,
        *,
        policy: OutagePolicy | str = OutagePolicy.LOCAL,
        reconnect_interval: float = 1.0,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if reconnect_interval < 0:
            raise ConfigError(
                f"reconnect_interval: must be at least 0, got {reconnect_interval!r}",
                field="reconnect_interval",
                value=reconnect_interval,
            )
        self.component = component
        self.policy = OutagePolicy.parse(policy)
        self.reconnect_interval = reconnect_interval
        self.errors = 0
        self.last_error: str | None = None
        self._clock = clock or monotonic
        self._down = False
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._logger = logger or component_logger("redis")
        self._metric = redis_errors().labels(component)

    @property
    def down(self) -> bool:
        """True from a failed command until a command succeeds again."""
        return self._down

    def usable(self) -> bool:
        """Whether to send the next command to Redis: always while it answers; while it
        is down, True for exactly one caller once the reconnect interval has passed (the
        probe, which then reports ``failed`` or ``succeeded``), False for every other."""
        return not self._down or self._claim_probe()

    def _claim_probe(self) -> bool:
        now = self._clock()
        if now < self._retry_at:
            return False
        with self._lock:
            if not self._down:
                return True
            if now < self._retry_at:  # another caller claimed the probe just now
                return False
            # the others wait for this probe's answer, or for the grace if it never comes
            self._retry_at = now + max(self.reconnect_interval, PROBE_GRACE)
            return True

    def failed(self, error: BaseException) -> None:
        """Record a failed command: count it, and log the outage if it is a new one."""
        self._metric.inc()
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error_text(error)}"
            self._retry_at = self._clock() + self.reconnect_interval
            if self._down:
                return
            self._down = True
        self._logger.warning(
            "Redis unavailable for %s (%s); policy %r until it answers again "
            "(next attempt in %gs; later errors are counted in "
            "coordination_redis_errors_total, not logged)",
            self.component,
            self.last_error,
            self.policy.value,
            self.reconnect_interval,
            extra=log_extra(
                component=self.component,
                outage_policy=self.policy,
                retry_in=self.reconnect_interval,
            ),
        )

    def succeeded(self) -> None:
        """Record a command that worked; logs the end of an outage."""
        if not self._down:
            return
        with self._lock:
            if not self._down:
                return
            self._down = False
        self._logger.warning(
            "Redis available again for %s",
            self.component,
            extra=log_extra(component=self.component),
        )

    def status(self) -> dict[str, Any]:
        return {
            "available": not self._down,
            "policy": self.policy.value,
            "errors": self.errors,
            "last_error": self.last_error,
        }
