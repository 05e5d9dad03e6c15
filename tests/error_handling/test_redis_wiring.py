"""With ``redis_url`` configured, handlers share their breakers through Redis."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from coordination import CircuitOpenError
from coordination.error_handling import CircuitState, CoordinationErrorHandler

pytestmark = pytest.mark.redis
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def namespace() -> Iterator[str]:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            reachable = sock.recv(64).startswith(b"+PONG")
    except OSError:
        reachable = False
    if not reachable:
        if os.environ.get("COORDINATION_REQUIRE_REDIS") == "1":
            pytest.fail("Redis at 127.0.0.1:6379 is unreachable", pytrace=False)
        pytest.skip("Redis at 127.0.0.1:6379 is unreachable")
    import redis

    name = f"coordination-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_two_handlers_share_one_breaker_through_redis(namespace: str) -> None:
    config = {"redis_url": REDIS_URL, "redis_namespace": namespace, "base_delay": 0}
    first = CoordinationErrorHandler(config)
    second = CoordinationErrorHandler(config)
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        first.execute_with_error_handling(
            down, max_retries=1, circuit_breaker_threshold=2, operation_name="shared"
        )
    assert calls == 2
    with pytest.raises(CircuitOpenError):
        second.execute_with_error_handling(
            down, max_retries=1, circuit_breaker_threshold=2, operation_name="shared"
        )
    assert calls == 2  # the second process-like handler never called the dependency
    assert second.circuit_breaker("shared").state is CircuitState.OPEN
    assert second.get_error_report()["circuit_breakers"]["shared"]["backend"].startswith("redis")
