"""A reload keeps a shared breaker's state: it lives in Redis, found again by name."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from coordination import CircuitOpenError, CoordinationConfig
from coordination.error_handling import CircuitState, CoordinationErrorHandler

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("clean_environment")]


def test_a_shared_breaker_stays_open_across_a_reload_and_takes_the_new_threshold(
    config: dict[str, Any],
) -> None:
    handler = CoordinationErrorHandler(config)
    other = CoordinationErrorHandler(config)  # another process of the same operation
    try:

        def failing() -> None:
            raise ConnectionError("down")

        charge = handler.decorate(failing, operation_name="charge")

        for _ in range(2):
            with contextlib.suppress(ConnectionError):
                charge()
        assert handler.circuit_breaker("charge").state is CircuitState.OPEN
        handler.reconfigure(CoordinationConfig(**{**config, "circuit_breaker_threshold": 7}))
        breaker = handler.circuit_breaker("charge")
        assert breaker.state is CircuitState.OPEN
        assert breaker.settings.failure_threshold == 7
        with pytest.raises(CircuitOpenError):
            charge()
        assert other.circuit_breaker("charge").state is CircuitState.OPEN
    finally:
        handler.close()
        other.close()
