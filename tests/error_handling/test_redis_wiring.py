"""With ``redis_url`` configured, handlers share their breakers through Redis."""

from __future__ import annotations

import pytest

from coordination import CircuitOpenError
from coordination.error_handling import CircuitState, CoordinationErrorHandler

pytestmark = pytest.mark.redis


def test_two_handlers_share_one_breaker_through_redis(redis_url: str, namespace: str) -> None:
    config = {"redis_url": redis_url, "redis_namespace": namespace, "base_delay": 0}
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
