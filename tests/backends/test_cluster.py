"""Shared breakers and rate limits on a real 3-master Redis Cluster the tests start.

The cluster (``tests/cluster.py``) runs on free loopback ports for this module and is torn
down after it; the test that kills a master has a cluster of its own. Without
redis-server / redis-cli these are skipped, or fail under COORDINATION_REQUIRE_REDIS=1.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from cluster import LoopbackCluster
from coordination import CircuitOpenError, ConfigError, EventDeadLettered, RateLimitExceeded
from coordination.backends.redis import RedisBackend, RedisCircuitBreaker, RedisStreamSource
from coordination.error_handling import BreakerSettings, CircuitState, CoordinationErrorHandler
from fakes import FakeClock

from .conftest import errors_counted, sent_until_marker

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SETTINGS = BreakerSettings(failure_threshold=2, open_seconds=30.0)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    cluster = LoopbackCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LoopbackCluster]:
    """A cluster for one test, which may kill its nodes."""
    cluster = LoopbackCluster(tmp_path).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_namespace(redis_cluster: LoopbackCluster) -> Iterator[str]:
    """A namespace of this test only; its keys are deleted from every master afterwards."""
    name = f"coordination-test-{uuid.uuid4().hex[:12]}"
    yield name
    for port in redis_cluster.running_ports():
        with redis.Redis(port=port) as node:
            keys = list(node.scan_iter(match=f"{name}:*", count=1000))
            for key in keys:  # one DEL per key: they are in different slots
                node.delete(key)


def config_for(cluster: LoopbackCluster, namespace: str, **more: Any) -> dict[str, Any]:
    return {
        "redis_url": cluster.url,
        "redis_cluster": True,
        "redis_namespace": namespace,
        "circuit_breaker_threshold": 2,
        "max_retries": 0,
        "base_delay": 0.0,
        **more,
    }


def one_operation_per_master(cluster: LoopbackCluster, namespace: str) -> dict[int, str]:
    """Operation names whose breakers live on each of the three masters (port → name)."""
    found: dict[int, str] = {}
    masters = len(cluster.masters())
    for index in range(200):
        name = f"op-{index}"
        found.setdefault(cluster.port_of(f"{namespace}:{{{name}}}:breaker"), name)
        if len(found) == masters:
            return found
    raise AssertionError(f"no operation name found for every master: {found}")


def flaky(calls: list[str], who: str) -> None:
    calls.append(who)
    raise ConnectionError("dependency down")


# --- shared across handlers ------------------------------------------------------------------


def test_breakers_on_every_master_are_shared_by_two_handlers(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    config = config_for(redis_cluster, cluster_namespace)
    first, second = CoordinationErrorHandler(config), CoordinationErrorHandler(config)
    operations = one_operation_per_master(redis_cluster, cluster_namespace)
    assert len(set(operations.values())) == 3
    for name in operations.values():
        calls: list[str] = []
        opener = first.decorate(functools.partial(flaky, calls, "first"), operation_name=name)
        other = second.decorate(functools.partial(flaky, calls, "second"), operation_name=name)
        for _ in range(2):
            with pytest.raises(ConnectionError):
                opener()
        with pytest.raises(CircuitOpenError) as refused:
            other()
        assert calls == ["first", "first"], name  # the second never reached the dependency
        assert 29 < refused.value.retry_after <= 30
        breaker = second.circuit_breaker(name)
        assert isinstance(breaker, RedisCircuitBreaker)
        assert breaker.snapshot().state is CircuitState.OPEN
        assert second.get_error_report()["circuit_breakers"][name]["state"] == "OPEN"
    # each breaker is one hash on the master of its slot, found there by a plain client
    for port, name in operations.items():
        with redis.Redis(port=port) as node:
            assert node.hget(f"{cluster_namespace}:{{{name}}}:breaker", "s") == b"1"
    backend = RedisBackend.from_config(config)
    assert backend.cluster is True
    assert backend.status()["breakers"]["errors"] == 0
    backend.close()


def test_a_rate_limit_holds_across_handlers_on_the_cluster(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    config = config_for(redis_cluster, cluster_namespace)

    def ok() -> str:
        return "ok"

    for limit in ("3/m", "100/s;3/m"):  # one window, and several (their key names them)
        for name in one_operation_per_master(redis_cluster, cluster_namespace).values():
            first = CoordinationErrorHandler(config).decorate(
                ok, operation_name=name, rate_limit=limit
            )
            second = CoordinationErrorHandler(config).decorate(
                ok, operation_name=name, rate_limit=limit
            )
            assert [first(), second(), first()] == ["ok"] * 3
            with pytest.raises(RateLimitExceeded) as raised:
                second()
            assert 19 < raised.value.retry_after <= 20


def test_reports_read_each_breaker_from_its_own_master(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    clock = FakeClock(100.0)
    backend = RedisBackend(
        redis_cluster.url, cluster=True, namespace=cluster_namespace, redis_clock=clock
    )
    try:
        for name in one_operation_per_master(redis_cluster, cluster_namespace).values():
            breaker = backend.breaker(name, SETTINGS, clock=clock, on_transition=lambda t: None)
            for _ in range(2):
                breaker.acquire()
                breaker.record_failure(0.0)
            clock.now += 10
            snapshot = breaker.snapshot()  # the hash and the clock, in one script
            assert snapshot.state is CircuitState.OPEN
            assert snapshot.retry_after == pytest.approx(20.0)
            breaker.force_open()
            assert breaker.snapshot().forced_open
            breaker.reset()
            assert breaker.snapshot().state is CircuitState.CLOSED
    finally:
        backend.close()


def test_the_middlewares_client_limit_is_shared_on_the_cluster(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    from flask import Flask
    from werkzeug.test import Client

    from coordination.integration import CoordinationMiddleware

    def app() -> Flask:
        flask = Flask("limited")
        flask.add_url_rule("/ping", "ping", lambda: "pong")
        return flask

    config = {
        "redis_url": redis_cluster.url,
        "redis_cluster": True,
        "redis_namespace": cluster_namespace,
        "client_rate_limit": "3/m",
    }
    first, second = (Client(CoordinationMiddleware(app(), config=config)) for _ in range(2))

    def get(client: Client, address: str) -> int:
        response = client.get("/ping", environ_base={"REMOTE_ADDR": address})
        response.close()
        return response.status_code

    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):  # keys on any master
        assert [get(first, address), get(second, address), get(first, address)] == [200] * 3
        assert get(second, address) == 429
    RedisBackend.from_config(config).close()


# --- the combined check: one single-slot script ----------------------------------------------


@contextmanager
def commands_on(ports: list[int]) -> Iterator[dict[int, list[str]]]:
    """The commands clients send to each node inside the block (MONITOR), by port;
    commands run inside a script are left out (they cost no round trip)."""
    seen: dict[int, list[str]] = {port: [] for port in ports}
    clients = [redis.Redis(port=port) for port in ports]
    monitors = [client.monitor().__enter__() for client in clients]

    def echo_on(port: int) -> Callable[[str], None]:
        def echo(marker: str) -> None:
            with redis.Redis(port=port) as other:
                other.echo(marker)

        return echo

    try:
        yield seen
    finally:
        for port, monitor in zip(ports, monitors, strict=True):
            seen[port].extend(sent_until_marker(monitor, echo_on(port)))
            monitor.__exit__(None, None, None)
        for client in clients:
            client.close()


def test_a_limited_breaker_costs_one_single_slot_script_per_call(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    backend = RedisBackend(redis_cluster.url, cluster=True, namespace=cluster_namespace)
    try:
        handler = CoordinationErrorHandler(
            {"max_retries": 0},
            breaker_factory=backend.breaker,
            rate_limiter_factory=backend.rate_limiter,
        )
        call = handler.decorate(lambda x: x * 2, operation_name="orders", rate_limit="1000/m")
        breaker_key = f"{cluster_namespace}:{{orders}}:breaker"
        owner = redis_cluster.port_of(breaker_key)
        assert call(1) == 2  # loads the script, opens this thread's connection to its master
        with commands_on(redis_cluster.ports) as sent:
            assert [call(i) for i in range(30)] == [i * 2 for i in range(30)]
        assert sent[owner] == ["EVALSHA"] * 30  # the combined script, straight to the owner
        assert all(not sent[port] for port in redis_cluster.ports if port != owner), sent
        # the limit is really taken in Redis, on the breaker's master, in its slot
        with redis.Redis(port=owner) as node:
            limit_keys = list(node.scan_iter(match=f"{cluster_namespace}:{{orders}}:rate:*"))
        assert len(limit_keys) == 1
        assert key_slot(limit_keys[0]) == key_slot(breaker_key.encode())
        assert handler.operation_stats()["orders"]["successes"] == 31
    finally:
        backend.close()


def test_a_moved_slot_is_followed(redis_cluster: LoopbackCluster, cluster_namespace: str) -> None:
    """A slot map gone stale (a slot moved: MOVED) is corrected by the cluster client."""
    backend = RedisBackend(redis_cluster.url, cluster=True, namespace=cluster_namespace)
    try:
        breaker = backend.breaker("moved", SETTINGS, clock=FakeClock(), on_transition=print)
        key = f"{cluster_namespace}:{{moved}}:breaker"
        owner = redis_cluster.port_of(key)
        slot = key_slot(key.encode())
        client: Any = backend.client
        wrong = next(n for n in client.get_primaries() if n.port != owner)
        client.nodes_manager.slots_cache[slot] = [wrong]  # as if the slot had moved away
        for _ in range(2):
            breaker.acquire()
            breaker.record_failure(0.0)
        assert breaker.snapshot().state is CircuitState.OPEN
        with redis.Redis(port=owner) as node:
            assert node.hget(key, "f") == b"2"
        assert client.nodes_manager.get_node_from_slot(slot).port == owner
        assert backend.breaker_guard.errors == 0
    finally:
        backend.close()


async def test_a_flushed_script_cache_is_refilled_on_every_master(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    backend = RedisBackend(redis_cluster.url, cluster=True, namespace=cluster_namespace)
    try:
        breakers = [
            backend.breaker(name, SETTINGS, clock=FakeClock(), on_transition=lambda t: None)
            for name in one_operation_per_master(redis_cluster, cluster_namespace).values()
        ]
        for flush in range(2):
            for port in redis_cluster.ports:
                with redis.Redis(port=port) as node:
                    node.script_flush()
            for breaker in breakers:
                if flush == 0:
                    breaker.acquire()  # NOSCRIPT, loaded, sent again: one call
                    breaker.record_failure(0.0)
                else:
                    await breaker.aacquire()
                    await breaker.arecord_failure(0.0)
        assert [b.snapshot().consecutive_failures for b in breakers] == [2, 2, 2]
        assert backend.breaker_guard.errors == 0
    finally:
        await backend.aclose()
        backend.close()


# --- async -----------------------------------------------------------------------------------


async def test_async_calls_share_the_breaker_with_sync_ones(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    config = config_for(redis_cluster, cluster_namespace)
    calls: list[str] = []

    async def fails() -> None:
        calls.append("async")
        await asyncio.sleep(0)
        raise TimeoutError("slow dependency")

    names = list(one_operation_per_master(redis_cluster, cluster_namespace).values())
    handler, other = CoordinationErrorHandler(config), CoordinationErrorHandler(config)
    for name in names:
        wrapped = handler.decorate(fails, operation_name=name)
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await wrapped()
        with pytest.raises(CircuitOpenError):  # a sync call in another handler sees it
            other.decorate(lambda: calls.append("sync"), operation_name=name)()
        with pytest.raises(CircuitOpenError):
            await wrapped()

    async def ok() -> str:
        return "ok"

    limited = handler.decorate(ok, operation_name="async-limit", rate_limit="2/m")
    assert [await limited(), await limited()] == ["ok", "ok"]
    with pytest.raises(RateLimitExceeded):
        await limited()
    assert calls == ["async"] * 6
    backend = RedisBackend.from_config(config)
    assert backend.cluster
    await backend.aclose()
    backend.close()


# --- a master killed mid-run -----------------------------------------------------------------


def test_a_master_killed_mid_run_is_handled_by_the_outage_policy(
    own_cluster: LoopbackCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coordination.redis")
    clock = FakeClock(0.0)
    namespace = "killed"
    backend = RedisBackend(
        own_cluster.url, cluster=True, namespace=namespace, reconnect_interval=5.0, clock=clock
    )
    try:
        operations = one_operation_per_master(own_cluster, namespace)
        breakers = {
            port: backend.breaker(name, SETTINGS, clock=clock, on_transition=lambda t: None)
            for port, name in operations.items()
        }
        victim = sorted(operations)[1]
        for breaker in breakers.values():
            breaker.acquire()
            breaker.record_failure(0.0)  # one failure each, shared in Redis
            assert breaker.snapshot().consecutive_failures == 1

        own_cluster.kill(victim)
        before = errors_counted("breaker")
        for _ in range(20):  # every operation goes on, on local state
            for breaker in breakers.values():
                breaker.acquire()
                breaker.record_success(0.0)
        assert errors_counted("breaker") == before + 1  # one failed command, then the policy
        assert backend.status()["breakers"]["available"] is False
        outage_logs = [r for r in caplog.records if "Redis unavailable for breaker" in r.message]
        assert len(outage_logs) == 1
        # the local breaker still protects the killed master's operation
        victim_breaker = breakers[victim]
        for _ in range(2):
            victim_breaker.acquire()
            victim_breaker.record_failure(0.0)
        with pytest.raises(CircuitOpenError):
            victim_breaker.acquire()
        assert "local fallback" in victim_breaker.snapshot().backend

        # the node comes back (its slots, not its data): the shared state decides again
        own_cluster.restart(victim)
        clock.now += 5.0  # the reconnect interval elapses: one call probes, and succeeds
        for breaker in breakers.values():
            breaker.acquire()
            breaker.record_success(0.0)
        assert backend.status()["breakers"]["available"] is True
        assert victim_breaker.snapshot().backend == "redis"
        assert victim_breaker.snapshot().state is CircuitState.CLOSED  # its data is gone
        assert any("Redis available again" in r.message for r in caplog.records)
    finally:
        backend.close()


def test_one_dead_master_is_one_outage_while_the_others_serve(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the other masters still serving (``cluster-require-full-coverage no``), a probe
    that reaches one of them does not end the outage (to start it again at the next call
    for the dead one): the backend stays on its outage policy, logged once, until the
    dead master answers again."""
    caplog.set_level(logging.WARNING, logger="coordination.redis")
    partial = LoopbackCluster(tmp_path, full_coverage=False).start()
    clock = FakeClock(0.0)
    backend = RedisBackend(
        partial.url, cluster=True, namespace="partial", reconnect_interval=5.0, clock=clock
    )
    try:
        operations = one_operation_per_master(partial, "partial")
        breakers = [
            backend.breaker(name, SETTINGS, clock=clock, on_transition=lambda t: None)
            for _, name in sorted(operations.items())
        ]
        for breaker in breakers:
            breaker.acquire()
            breaker.record_success(0.0)
        victim = sorted(operations)[0]
        partial.kill(victim)
        before = errors_counted("breaker")
        for _ in range(6):  # six reconnect intervals, each probed by the first breaker up
            clock.now += 5.0
            for breaker in reversed(breakers):  # the dead master's breaker comes last
                breaker.acquire()
                breaker.record_success(0.0)
        # the first failure, then each interval's one probe (never a call for every breaker)
        assert errors_counted("breaker") == before + 6
        messages = [r.message for r in caplog.records]
        assert sum("Redis unavailable for breaker" in m for m in messages) == 1
        assert not any("available again" in m for m in messages)
        assert "unreachable" in (backend.breaker_guard.last_error or "")

        partial.restart(victim)
        clock.now += 5.0
        for breaker in breakers:
            breaker.acquire()
            breaker.record_success(0.0)
        assert backend.status()["breakers"]["available"] is True
        assert sum("available again for breaker" in r.message for r in caplog.records) == 1
    finally:
        backend.close()
        partial.stop()


async def test_one_dead_master_is_one_outage_for_async_calls_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coordination.redis")
    partial = LoopbackCluster(tmp_path, full_coverage=False).start()
    clock = FakeClock(0.0)
    backend = RedisBackend(
        partial.url, cluster=True, namespace="apartial", reconnect_interval=5.0, clock=clock
    )
    try:
        operations = one_operation_per_master(partial, "apartial")
        breakers = [
            backend.breaker(name, SETTINGS, clock=clock, on_transition=lambda t: None)
            for _, name in sorted(operations.items())
        ]
        for breaker in breakers:
            await breaker.aacquire()
            await breaker.arecord_success(0.0)
        victim = sorted(operations)[0]
        partial.kill(victim)
        for _ in range(6):
            clock.now += 5.0
            for breaker in reversed(breakers):  # the dead master's breaker comes last
                await breaker.aacquire()
                await breaker.arecord_success(0.0)
        messages = [r.message for r in caplog.records]
        assert sum("Redis unavailable for breaker" in m for m in messages) == 1
        assert not any("available again" in m for m in messages)

        partial.restart(victim)
        clock.now += 5.0
        for breaker in breakers:
            await breaker.aacquire()
            await breaker.arecord_success(0.0)
        assert backend.status()["breakers"]["available"] is True
        assert breakers[0].snapshot().backend == "redis"
    finally:
        await backend.aclose()
        backend.close()
        partial.stop()


def test_a_replica_promoted_in_a_dead_masters_place_ends_the_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With a replica per master, the dead master's replica takes its slots over: the
    next probe finds the lost master serving nothing any more, and the shared state —
    replicated before the kill — decides again, on the new master."""
    caplog.set_level(logging.WARNING, logger="coordination.redis")
    replicated = LoopbackCluster(tmp_path, replicas=1).start()
    clock = FakeClock(0.0)
    backend = RedisBackend(
        replicated.url, cluster=True, namespace="failover", reconnect_interval=5.0, clock=clock
    )
    try:
        operations = one_operation_per_master(replicated, "failover")
        victim = sorted(operations)[0]
        breaker = backend.breaker(
            operations[victim], SETTINGS, clock=clock, on_transition=lambda t: None
        )
        breaker.acquire()
        breaker.record_failure(0.0)  # replicated to the victim's replica
        replicated.kill(victim)
        breaker.acquire()  # the dead master: local state
        breaker.record_success(0.0)
        assert backend.status()["breakers"]["available"] is False
        replicated.wait_for_failover(victim)  # its replica promoted (node timeout: 1 s)
        clock.now += 5.0
        breaker.acquire()  # the probe: the lost master serves nothing now; shared again
        assert backend.status()["breakers"]["available"] is True
        assert breaker.snapshot().consecutive_failures == 1  # the state survived
        breaker.record_failure(0.0)
        with pytest.raises(CircuitOpenError):
            breaker.acquire()
        messages = [r.message for r in caplog.records]
        assert sum("Redis unavailable for breaker" in m for m in messages) == 1
        assert sum("available again for breaker" in m for m in messages) == 1
    finally:
        backend.close()
        replicated.stop()


def test_a_master_killed_under_a_handler_keeps_calls_working(
    own_cluster: LoopbackCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coordination.redis")
    config = config_for(own_cluster, "handler-killed", redis_outage_policy="local")
    handler = CoordinationErrorHandler(config)
    names = one_operation_per_master(own_cluster, "handler-killed")
    calls = {
        port: handler.decorate(lambda x: x + 1, operation_name=name, rate_limit="1000/s")
        for port, name in names.items()
    }
    assert [call(1) for call in calls.values()] == [2, 2, 2]
    own_cluster.kill(sorted(names)[0])
    for _ in range(50):
        assert [call(1) for call in calls.values()] == [2, 2, 2]
    stats = handler.operation_stats()
    assert all(stats[name]["successes"] == 51 for name in names.values())
    assert any("Redis unavailable" in r.message for r in caplog.records)
    RedisBackend.from_config(config).close()


def test_a_cluster_down_at_start_is_an_outage_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from loopback import free_port

    caplog.set_level(logging.WARNING, logger="coordination.redis")
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", cluster=True, namespace="down")
    breaker = backend.breaker("op", SETTINGS, clock=FakeClock(), on_transition=lambda t: None)
    breaker.acquire()  # the cluster client cannot even be built: the local breaker serves
    breaker.record_success(0.0)
    assert backend.status()["breakers"]["available"] is False
    assert any("Redis unavailable for breaker" in r.message for r in caplog.records)
    backend.close()


# --- streams ---------------------------------------------------------------------------------


class Billing:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def process_event(self, event: Any, event_type: str) -> Any:
        if event.get("bad"):
            raise EventDeadLettered(event_type, 7, "bad payload")
        self.seen.append(event["n"])
        return "ok"


def test_a_stream_dead_letters_in_its_own_slot(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    stream = f"{cluster_namespace}:orders"
    billing = Billing()
    source = RedisStreamSource(billing, stream, url=redis_cluster.url, cluster=True, block=0.1)
    try:
        assert source.dead_letter_stream == f"{{{stream}}}:dead-letters"
        assert key_slot(stream.encode()) == key_slot(source.dead_letter_stream.encode())
        for n in range(5):
            source.publish({"n": n}, "order")
        source.publish({"bad": True}, "order")
        batch = source.poll()  # processed and dead-lettered acknowledged in one MULTI
        assert billing.seen == [0, 1, 2, 3, 4]
        assert len(batch.dead_lettered) == 1
        assert source.pending() == 0
        dead = source.client.xrange(source.dead_letter_stream)
        assert [fields[b"reason"] for _, fields in dead] == [b"bad payload"]
    finally:
        source.client.delete(stream)
        source.client.delete(source.dead_letter_stream)
        source.close()


async def test_a_stream_on_the_cluster_async(
    redis_cluster: LoopbackCluster, cluster_namespace: str
) -> None:
    stream = f"{{{cluster_namespace}}}:events"  # a tag of its own: dead letters keep it
    billing = Billing()
    source = RedisStreamSource(billing, stream, url=redis_cluster.url, cluster=True, block=0.1)
    try:
        assert source.dead_letter_stream == f"{stream}:dead-letters"
        await source.apublish({"n": 1}, "order")
        await source.apublish({"bad": True}, "order")
        batch = await source.apoll()
        assert len(batch.processed) == 1
        assert len(batch.dead_lettered) == 1
        assert billing.seen == [1]
    finally:
        source.client.delete(stream)
        source.client.delete(source.dead_letter_stream)
        source.close()
        await source.aclose()


def test_a_dead_letter_stream_in_another_slot_is_refused(redis_cluster: LoopbackCluster) -> None:
    with pytest.raises(ConfigError, match="dead_letter_stream") as raised:
        RedisStreamSource(
            Billing(),
            "orders",
            url=redis_cluster.url,
            cluster=True,
            dead_letter_stream="orders-dead",
        )
    assert raised.value.field == "dead_letter_stream"
