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


async def test_an_async_function_awaits_a_shared_budget_a_reload_added(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The breaker stays in memory (it does no I/O); the budget a reload adds is Redis's:
    # the rebound runner must await it (atry_spend), never ask it from the event loop.
    from coordination.error_handling import memory_breaker_factory

    settings = {**config, "max_retries": 2, "base_delay": 0, "circuit_breaker_threshold": 100}
    handler = CoordinationErrorHandler(settings, breaker_factory=memory_breaker_factory)
    try:
        attempts = 0

        async def failing() -> None:
            nonlocal attempts
            attempts += 1
            raise ConnectionError("down")

        charge = handler.decorate(failing, operation_name="charge")
        with contextlib.suppress(ConnectionError):
            await charge()
        handler.reconfigure(CoordinationConfig(**{**settings, "retry_budget": 0.5}))
        budget = handler._existing("charge").retry_budget
        assert budget is not None
        assert budget.blocking

        def on_the_loop() -> bool:
            raise AssertionError("the shared budget was asked from the event loop")

        monkeypatch.setattr(budget, "try_spend", on_the_loop)
        attempts = 0
        with pytest.raises(ConnectionError):
            await charge()
        assert attempts == 3  # the floor allows both retries, asked with atry_spend
    finally:
        handler.close()
