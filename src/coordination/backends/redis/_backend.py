"""``RedisBackend``: one Redis connection serving shared breakers and rate limits.

    >>> backend = RedisBackend("redis://127.0.0.1:6379/0", namespace="shop")
    >>> handler = CoordinationErrorHandler(
    ...     breaker_factory=backend.breaker, rate_limiter_factory=backend.rate_limiter
    ... )

``CoordinationErrorHandler`` does this by itself when ``config.redis_url`` is set;
``redis_cluster: true`` (or ``RedisBackend(url, cluster=True)``) talks to a Redis Cluster
through redis-py's cluster clients, with the same one-round-trip scripts (see
``RedisBackend.execute``).
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
    ClientOnDemand,
    OutagePolicy,
    RedisGuard,
    connect_async,
    connect_async_cluster,
    is_cluster_client,
    key_prefix,
    store_errors,
)
from ._scripts import READ_HASH

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster

    from ...error_handling._retry_budget import BudgetSettings
    from ._breaker import RedisCircuitBreaker
    from ._rate_limit import RedisRateLimiter
    from ._retry_budget import RedisRetryBudget

__all__ = ["RedisBackend"]

WallClock = Callable[[], float]

# Backends made from configuration, one per (url, namespace, policy, cluster): a handful.
_shared: dict[tuple[str, str, str, bool], RedisBackend] = {}
_shared_lock = threading.Lock()


class RedisBackend:
    """Shared state in one Redis: a ``BreakerFactory``, a ``RateLimiterFactory`` and a
    ``RetryBudgetFactory``.

    ``outage_policy`` says what breakers and limiters do while Redis is unreachable
    (``"local"``: their own in-process state, the default; ``"allow"``: admit every call;
    ``"raise"``: ``StoreError``). Keys live under ``namespace`` and expire after
    ``key_ttl`` seconds unused. ``redis_clock`` (wall-clock seconds) replaces the Redis
    server clock, for tests that must not sleep; every process must then share it.

    ``cluster=True`` (or a ``redis.RedisCluster`` as ``client``): ``url`` names one node
    of a Redis Cluster, and each script goes to the master of its keys' slot (every key
    of one operation or client shares its hash tag, so each script is single-slot).
    The cluster client is built on the first command, so a cluster that is down when the
    process starts is an outage like any other (the outage policy), not an error here.
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
        client: redis.Redis | redis.RedisCluster | None = None,
        redis_clock: WallClock | None = None,
        clock: Clock | None = None,
        cluster: bool = False,
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
        if not isinstance(cluster, bool):
            raise ConfigError(
                f"redis_cluster: expected true or false, got {cluster!r}",
                field="redis_cluster",
                value=cluster,
            )
        self.url = url
        self.prefix = key_prefix(namespace)
        self.key_ttl = float(key_ttl)
        self.socket_timeout = socket_timeout
        self.cluster = cluster or is_cluster_client(client)
        self._client = ClientOnDemand(
            url, client, cluster=self.cluster, socket_timeout=socket_timeout
        )
        self._route: _ClusterRoute | None = _ClusterRoute(self) if self.cluster else None
        self.errors: tuple[type[Exception], ...] = store_errors()
        self._redis_clock = redis_clock
        self._connections = threading.local()
        self._packer = self._new_packer()  # never connected: it only encodes commands
        self._async: (
            tuple[
                asyncio.AbstractEventLoop, redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
            ]
            | None
        ) = None
        guard = {"policy": outage_policy, "reconnect_interval": reconnect_interval, "clock": clock}
        self.breaker_guard = RedisGuard("breaker", **guard)  # type: ignore[arg-type]
        self.rate_limit_guard = RedisGuard("rate_limit", **guard)  # type: ignore[arg-type]
        self.retry_budget_guard = RedisGuard("retry_budget", **guard)  # type: ignore[arg-type]

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
        key = (
            resolved.redis_url,
            resolved.redis_namespace,
            resolved.redis_outage_policy,
            resolved.redis_cluster,
        )
        with _shared_lock:
            backend = _shared.get(key)
            if backend is None:
                backend = cls(
                    resolved.redis_url,
                    namespace=resolved.redis_namespace,
                    outage_policy=resolved.redis_outage_policy,
                    cluster=resolved.redis_cluster,
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

    def retry_budget(
        self, name: str, settings: BudgetSettings, *, calls: Callable[[], int], clock: Clock
    ) -> RedisRetryBudget:
        """A ``RetryBudgetFactory``: the retry budget of operation ``name``, shared by every
        process (``calls()``: this process's calls of it, pushed with each ask)."""
        from ._retry_budget import RedisRetryBudget

        return RedisRetryBudget(self, name, settings, calls=calls, clock=clock)

    # --- plumbing shared by breakers and limiters ----------------------------------------

    @property
    def client(self) -> redis.Redis | redis.RedisCluster:
        """The redis-py client (a ``RedisCluster`` made on first use with ``cluster=True``;
        making it asks the startup node for the slot map, so it may raise one of
        ``errors``)."""
        return self._client.get()

    def execute(self, *command: Any) -> Any:
        """Send one command and read its reply on this thread's own connection.

        The hot path (the scripts) skips the client's connection pool: checking a
        connection out of it costs a lock and a poll of the socket per command, as much
        as the round trip itself on loopback. Each thread (and each process, after a
        fork) gets its own connection, made with the client's options; a failed one is
        closed by redis-py and made again on the next command. On a Redis Cluster, one
        such connection per master, chosen by the slot of the script's first key.
        """
        return self.execute_packed(self.pack(*command))

    def execute_packed(self, packed: list[bytes]) -> Any:
        """``execute`` for a command packed beforehand with ``pack`` (constant commands
        are packed once, which saves a sixth of a loopback call)."""
        if self._route is not None:
            return self._route.execute(packed)
        local = self._connections
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            connection = self._new_connection()
            local.connection, local.pid = connection, os.getpid()
        connection.send_packed_command(packed)
        return connection.read_response()

    def pack(self, *command: Any) -> list[bytes]:
        """``command`` in the wire format, encoded as the client's connections encode
        (on a Redis Cluster it also carries its slot and the command, for routing)."""
        packed: list[bytes] = self._packer.pack_command(*command)
        if self._route is not None:
            return _Routed(packed, command, _slot_of(command, self._packer))
        return packed

    def read_hash(self, key: str) -> tuple[dict[bytes, bytes], int]:
        """The hash at ``key`` (as ``HGETALL`` answers) and the time the scripts see, in
        ms, in one round trip to the node owning ``key`` (``READ_HASH``). Reports go
        through the client's pool, not the hot path's connections: its health check
        replaces a connection the server closed instead of failing one report."""
        client: Any = self.client  # execute_command is untyped
        flat, (seconds, micros) = READ_HASH(client.execute_command, key)
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        injected = self.now_ms()
        now = injected if isinstance(injected, int) else int(seconds) * 1000 + int(micros) // 1000
        return fields, now

    def _new_connection(self) -> Any:
        pool = self.client.connection_pool  # type: ignore[union-attr]  # not on a cluster
        return pool.connection_class(**pool.connection_kwargs)

    def _new_packer(self) -> Any:
        if not self.cluster:
            return self._new_connection()
        import redis.connection

        module: Any = redis.connection  # parse_url and Connection are untyped
        made = self._client.made
        if made is not None:
            encoder = made.get_encoder()
            options = {
                "encoding": encoder.encoding,
                "encoding_errors": encoder.encoding_errors,
                "decode_responses": encoder.decode_responses,
            }
        else:
            parsed = module.parse_url(self.url or "")
            names = ("encoding", "encoding_errors", "decode_responses")
            options = {name: parsed[name] for name in names if name in parsed}
        return module.Connection(**options)

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

    def async_client(self) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
        """The asyncio client of the running event loop (asyncio connections are per loop);
        redis-py's asyncio ``RedisCluster`` with ``cluster=True``."""
        loop = asyncio.get_running_loop()
        current = self._async
        if current is None or current[0] is not loop:
            if self.url is None:
                raise ConfigError(
                    "async calls need RedisBackend(url=...), not only a sync client",
                    field="redis_url",
                    value=None,
                )
            client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
            if self._route is not None:  # the asyncio client shares the lost masters
                client = connect_async_cluster(
                    self.url, self._route.async_client_class(), socket_timeout=self.socket_timeout
                )
            else:
                client = connect_async(self.url, socket_timeout=self.socket_timeout)
            current = (loop, client)
            self._async = current
        return current[1]

    def status(self) -> dict[str, Any]:
        return {
            "namespace": self.prefix.rstrip(":"),
            "cluster": self.cluster,
            "breakers": self.breaker_guard.status(),
            "rate_limits": self.rate_limit_guard.status(),
            "retry_budgets": self.retry_budget_guard.status(),
        }

    def close(self) -> None:
        connection = getattr(self._connections, "connection", None)
        if connection is not None:
            connection.disconnect()
            self._connections.connection = None
        if self._route is not None:
            self._route.close()
        self._client.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async[1].aclose()
            self._async = None


class _Routed(list[bytes]):
    """A packed command that remembers its slot (None: no key to route by) and its
    arguments (for redis-py's cluster client when the direct path cannot serve it)."""

    __slots__ = ("command", "slot")

    def __init__(self, packed: list[bytes], command: tuple[Any, ...], slot: int | None) -> None:
        super().__init__(packed)
        self.command = command
        self.slot = slot


def _slot_of(command: tuple[Any, ...], packer: Any) -> int | None:
    """The slot of an ``EVAL``/``EVALSHA``'s first key (our scripts' keys share their hash
    tag, so it is every key's slot); None for any other command."""
    if len(command) < 4 or str(command[0]).upper() not in ("EVALSHA", "EVAL"):
        return None
    if int(command[2]) < 1:
        return None
    from redis.crc import key_slot

    return int(key_slot(packer.encoder.encode(command[3])))


class _ClusterRoute:
    """Sends packed commands straight to the master of their slot, one connection per
    master and thread, skipping redis-py's cluster client (its routing costs more than a
    loopback round trip).

    The slot map is redis-py's (``nodes_manager``); each thread caches slot → connection.
    A redirection (``MOVED`` / ``ASK``: slots were moved), or a command without a slot,
    goes through the cluster client, which follows it and refreshes its map.

    A master that fails to answer (refused, reset, timed out) is *lost*, and every error
    still reaches the caller (the component's ``RedisGuard`` and outage policy decide
    what follows). While a master is lost no command is sent anywhere until the lost
    master answers again or no longer serves any slot (a replica was promoted in its
    place): the next command (the guard's probe) re-reads the slot map and pings the lost
    master first. So one dead master is one outage of the backend, not an outage that
    ends whenever a probe happens to reach a master that is still up, and starts again
    at the next call for the dead one.
    """

    __slots__ = ("_backend", "_local", "_lost", "_lost_lock", "_topology")

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._local = threading.local()
        self._topology = 0  # bumped by every failure: the threads' caches are stale then
        self._lost: dict[str, tuple[str, int]] = {}  # node name -> (host, port)
        self._lost_lock = threading.Lock()

    def execute(self, packed: list[bytes]) -> Any:
        if self._lost:
            self._find_lost()
        slot = getattr(packed, "slot", None)
        if slot is None:
            return self._via_client(packed)
        local = self._local
        slots: dict[int, Any] | None = getattr(local, "slots", None)
        if slots is None or local.topology != self._topology or local.pid != os.getpid():
            self._drop_thread_cache()
            slots = local.slots = {}
            local.nodes, local.topology, local.pid = {}, self._topology, os.getpid()
        connection = slots.get(slot)
        if connection is None:
            connection = slots[slot] = self._connection_for(slot)
        from redis.exceptions import AskError, ConnectionError, TimeoutError, TryAgainError

        try:
            connection.send_packed_command(packed)
            return connection.read_response()
        except (AskError, TryAgainError):  # MovedError is an AskError
            self._topology += 1
            return self._via_client(packed)
        except (ConnectionError, TimeoutError):
            # A CLUSTERDOWN answer is not a lost node: the node answered (and redis-py's
            # client would sleep 0.25 s on it before raising).
            self._lose(connection.host, connection.port)
            raise

    def _via_client(self, packed: list[bytes]) -> Any:
        if not isinstance(packed, _Routed):
            raise TypeError("a Redis Cluster command must be packed by RedisBackend.pack")
        from redis.exceptions import ConnectionError, TimeoutError

        client: Any = self._backend.client  # execute_command is untyped
        try:
            return client.execute_command(*packed.command)
        except (ConnectionError, TimeoutError) as exc:
            node = getattr(exc, "connection", None)  # redis-py names the node it tried
            if node is not None and getattr(node, "port", None) is not None:
                self._lose(node.host, node.port)
            raise

    def _lose(self, host: str, port: int) -> None:
        with self._lost_lock:
            self._lost[f"{host}:{port}"] = (host, int(port))
            self._topology += 1

    def async_client_class(self) -> type[redis.asyncio.cluster.RedisCluster]:
        """redis-py's asyncio ``RedisCluster``, with this route's lost masters: a command
        is sent only once they answer again (``_afind_lost``), and a master that fails is
        lost for the sync route too."""
        from redis.asyncio.cluster import RedisCluster
        from redis.exceptions import ConnectionError, TimeoutError

        route = self

        class LostTrackingRedisCluster(RedisCluster):
            async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
                if route._lost:
                    await route._afind_lost(self)
                try:
                    return await super().execute_command(*args, **kwargs)
                except (ConnectionError, TimeoutError) as exc:
                    node = getattr(exc, "connection", None)  # the node redis-py tried
                    if node is not None and getattr(node, "port", None) is not None:
                        route._lose(node.host, node.port)
                    raise

        return LostTrackingRedisCluster

    async def _afind_lost(self, client: Any) -> None:
        """``_find_lost`` on the asyncio client (no lock held across an await)."""
        await client.nodes_manager.initialize()
        serving = {node.name for node in client.get_primaries()}
        for name, (host, port) in list(self._lost.items()):
            if name in serving:
                await _aping(name, host, port, self._backend.socket_timeout)
            with self._lost_lock:
                self._lost.pop(name, None)
                self._topology += 1

    def _find_lost(self) -> None:
        """Raise ``ConnectionError`` while a lost master still serves slots and does not
        answer ``PING``; forget it once it answers or serves nothing. No lock is held
        across the I/O (the guard lets one probe through at a time anyway)."""
        from redis.exceptions import ConnectionError, TimeoutError

        client: Any = self._backend.client
        with self._lost_lock:
            lost = list(self._lost.items())
        if not lost:
            return
        client.nodes_manager.initialize()  # the slot map as the cluster sees it now
        serving = {node.name for node in client.get_primaries()}
        for name, (host, port) in lost:
            if name in serving:
                probe = _connection_like(client, host, port)
                try:
                    probe.send_command("PING")
                    probe.read_response()
                except (ConnectionError, TimeoutError, OSError) as exc:
                    raise ConnectionError(
                        f"Redis Cluster master {name} is unreachable ({exc})"
                    ) from exc
                finally:
                    probe.disconnect()
            with self._lost_lock:
                self._lost.pop(name, None)
                self._topology += 1

    def _connection_for(self, slot: int) -> Any:
        node = self._backend.client.nodes_manager.get_node_from_slot(slot)  # type: ignore[union-attr]
        nodes: dict[str, Any] = self._local.nodes
        connection = nodes.get(node.name)
        if connection is None:
            pool = node.redis_connection.connection_pool
            connection = nodes[node.name] = pool.connection_class(**pool.connection_kwargs)
        return connection

    def _drop_thread_cache(self) -> None:
        nodes: dict[str, Any] = getattr(self._local, "nodes", None) or {}
        if getattr(self._local, "pid", None) == os.getpid():
            for connection in nodes.values():
                connection.disconnect()
        self._local.nodes = {}

    def close(self) -> None:
        self._drop_thread_cache()
        self._local.slots = None


def _connection_like(client: Any, host: str, port: int) -> Any:
    """A new connection to ``host:port`` with the options of the cluster's node pools."""
    pool = client.get_default_node().redis_connection.connection_pool
    return pool.connection_class(**{**pool.connection_kwargs, "host": host, "port": port})


async def _aping(name: str, host: str, port: int, socket_timeout: float) -> None:
    """``PING`` ``host:port`` on a connection of its own; ``ConnectionError`` if it fails."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    node = aioredis.Redis(
        host=host,
        port=port,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await node.ping()
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise ConnectionError(f"Redis Cluster master {name} is unreachable ({exc})") from exc
    finally:
        await node.aclose()
