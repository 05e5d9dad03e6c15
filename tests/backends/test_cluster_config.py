"""``redis_cluster`` from code, YAML and the environment, and the slot rules — no server.

The Redis Cluster behaviour itself is tested against a real cluster in test_cluster.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from redis.crc import key_slot

import cluster as cluster_harness
from coordination import ConfigError, CoordinationConfig
from coordination.backends.redis import RedisBackend, RedisStreamSource
from coordination.backends.redis._backend import _slot_of
from coordination.backends.redis._connection import owned_key
from coordination.backends.redis._scripts import BREAKER_ACQUIRE, LIMITED_ACQUIRE
from coordination.backends.redis._streams import _dead_letter_name

# Operation and client names: any text without braces (the namespace has none either).
owners = st.text(st.characters(exclude_characters="{}", exclude_categories=["Cs"]), min_size=1)


def test_the_environment_and_yaml_turn_it_on(tmp_path: Path) -> None:
    assert CoordinationConfig().redis_cluster is False
    env = CoordinationConfig.from_environment({"COORDINATION_REDIS_CLUSTER": "true"})
    assert env.redis_cluster is True
    path = tmp_path / "coordination.yaml"
    path.write_text("redis_url: redis://127.0.0.1:7000/0\nredis_cluster: true\n")
    assert CoordinationConfig.load(path).redis_cluster is True


def test_a_bad_value_names_the_variable_or_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COORDINATION_REDIS_CLUSTER") as raised:
        CoordinationConfig.from_environment({"COORDINATION_REDIS_CLUSTER": "sometimes"})
    assert "redis_cluster" in str(raised.value)
    path = tmp_path / "coordination.yaml"
    path.write_text("redis_namespace: shop\nredis_cluster: 3\n")
    with pytest.raises(ConfigError, match="redis_cluster") as raised:
        CoordinationConfig.load(path)
    assert f"{path}, line 2" in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"url": "unix:///tmp/redis.sock", "cluster": True}, "redis_url"),
        ({"url": "http://127.0.0.1:7000", "cluster": True}, "redis_url"),
        ({"url": "redis://127.0.0.1:7000/0", "cluster": "yes"}, "redis_cluster"),
    ],
)
def test_a_backend_refuses_what_cannot_be_a_cluster(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        RedisBackend(**arguments)
    assert raised.value.field == field


def test_building_a_cluster_backend_connects_to_nothing() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", cluster=True)  # nothing listens there
    assert backend.cluster
    assert backend._client.made is None  # made by the first command (an outage if unreachable)
    assert backend.status()["cluster"] is True
    backend.close()


def test_a_stream_on_a_cluster_refuses_a_dead_letter_stream_in_another_slot() -> None:
    with pytest.raises(ConfigError) as raised:
        RedisStreamSource(
            object(),  # type: ignore[arg-type]
            "orders",
            url="redis://127.0.0.1:1/0",
            cluster=True,
            dead_letter_stream="orders-dead",
        )
    assert raised.value.field == "dead_letter_stream"


def test_a_stream_consumer_waits_out_a_cluster_down_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cluster client cannot even be made (no node answers): ``run`` logs it once,
    counts every try and keeps polling, as for any outage; nothing is raised."""
    caplog.set_level("WARNING", logger="coordination.redis")
    slept: list[float] = []
    source = RedisStreamSource(
        object(),  # type: ignore[arg-type]
        "orders",
        url="redis://127.0.0.1:1/0",
        cluster=True,
        sleep=slept.append,
        reconnect_interval=0.5,
    )
    polls = iter(range(3))
    assert source.run(stop=lambda: next(polls, None) is None) == 0
    assert slept == [0.5, 0.5, 0.5]
    assert source.guard.errors == 3
    assert sum("Redis unavailable for stream" in r.message for r in caplog.records) == 1
    source.close()


def test_without_redis_server_the_cluster_tests_fail_under_require_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cluster_harness.shutil, "which", lambda name: None)
    monkeypatch.setenv("COORDINATION_REQUIRE_REDIS", "1")
    with pytest.raises(pytest.fail.Exception, match="redis-server and redis-cli not installed"):
        cluster_harness.cluster_binaries()
    monkeypatch.delenv("COORDINATION_REQUIRE_REDIS")
    with pytest.raises(pytest.skip.Exception):
        cluster_harness.cluster_binaries()


# --- every script of one owner is single-slot -------------------------------------------------


@given(namespace=owners, owner=owners, kinds=st.lists(owners, min_size=2, max_size=4))
def test_every_key_of_one_owner_shares_a_slot(namespace: str, owner: str, kinds: list[str]) -> None:
    prefix = namespace if namespace.endswith(":") else namespace + ":"
    slots = {key_slot(owned_key(prefix, owner, kind).encode()) for kind in kinds}
    assert len(slots) == 1


@given(namespace=owners, owner=owners)
def test_the_direct_route_picks_the_slot_redis_py_would(namespace: str, owner: str) -> None:
    """``_slot_of`` (the packed fast path) agrees with redis-py's own routing of the same
    EVALSHA, for the breaker's script and for the combined check's two keys."""
    prefix = namespace + ":"
    breaker = owned_key(prefix, owner, "breaker")
    limit = owned_key(prefix, owner, "rate:100/1s")
    router: Any = RedisCluster.__new__(RedisCluster)  # routing only: never connected
    router.command_flags = RedisCluster.COMMAND_FLAGS
    router.encoder = _encoder()
    for command in (
        ("EVALSHA", BREAKER_ACQUIRE.sha, 1, breaker, "", 1000, 1, 3600, 1000),
        ("EVALSHA", LIMITED_ACQUIRE.sha, 2, breaker, limit, "", 1000, 1, 3600, 1000),
    ):
        assert _slot_of(command, _packer()) == router.determine_slot(*command)
    assert _slot_of(("SCRIPT", "LOAD", "return 1"), _packer()) is None


@given(stream=st.text(st.characters(exclude_categories=["Cs"]), min_size=1))
def test_a_dead_letter_stream_shares_its_streams_slot_or_is_refused(stream: str) -> None:
    dead = _dead_letter_name(stream, cluster=True)
    if key_slot(stream.encode()) != key_slot(dead.encode()):
        # only a name whose braces make an odd tag; the source refuses it by name
        with pytest.raises(ConfigError, match="dead_letter_stream"):
            RedisStreamSource(object(), stream, url="redis://127.0.0.1:1/0", cluster=True)  # type: ignore[arg-type]
    assert _dead_letter_name(stream, cluster=False) == f"{stream}:dead-letters"


def _encoder() -> Any:
    from redis._parsers.encoders import Encoder

    return Encoder("utf-8", "strict", False)


def _packer() -> Any:
    from redis.connection import Connection

    return Connection()
