"""Bad settings are clear errors; connections survive a fork."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from coordination import ConfigError
from coordination.backends.redis import OutagePolicy, RedisBackend, RedisGuard
from coordination.error_handling import BreakerSettings


@pytest.mark.parametrize("namespace", ["", "has space", 7])
def test_a_bad_namespace_names_the_field(namespace: object) -> None:
    with pytest.raises(ConfigError, match="redis namespace") as raised:
        RedisBackend("redis://127.0.0.1:6379/0", namespace=namespace)  # type: ignore[arg-type]
    assert raised.value.field == "redis_namespace"


def test_a_bad_url_names_the_field_and_the_value() -> None:
    with pytest.raises(ConfigError, match=r"redis_url: expected .*'http://x'"):
        RedisBackend("http://x")


def test_a_bad_outage_policy_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="not one of local, allow, raise"):
        RedisGuard("breaker", policy="ignore")
    assert OutagePolicy.parse("allow") is OutagePolicy.ALLOW


def test_bad_numbers_are_refused() -> None:
    with pytest.raises(ConfigError, match="key_ttl"):
        RedisBackend("redis://127.0.0.1:6379/0", key_ttl=0)
    with pytest.raises(ConfigError, match="socket_timeout"):
        RedisBackend("redis://127.0.0.1:6379/0", socket_timeout=0)
    with pytest.raises(ConfigError, match="reconnect_interval"):
        RedisBackend("redis://127.0.0.1:6379/0", reconnect_interval=-1)


def test_from_config_needs_a_url(clean_environment: None) -> None:
    with pytest.raises(ConfigError, match="COORDINATION_REDIS_URL"):
        RedisBackend.from_config({})


@pytest.mark.redis
def test_a_forked_child_gets_its_own_connection(
    redis_url: str, namespace: str, closing: Any
) -> None:
    backend = closing(RedisBackend(redis_url, namespace=namespace))
    breaker = backend.breaker(
        "forked",
        BreakerSettings(failure_threshold=2),
        clock=time.monotonic,
        on_transition=lambda t: None,
    )
    breaker.acquire()
    breaker.record_failure(0.0)  # the parent's thread now holds a connection
    parent_connection = backend.execute("CLIENT", "ID")
    pid = os.fork()
    if pid == 0:  # the child: one more failure opens the shared breaker
        code = 1
        try:
            breaker.acquire()
            breaker.record_failure(0.0)
            code = 0 if backend.execute("CLIENT", "ID") != parent_connection else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # 3 would mean it shared our socket
    assert backend.execute("CLIENT", "ID") == parent_connection
    assert breaker.snapshot().state.value == "OPEN"  # the parent's connection still works
