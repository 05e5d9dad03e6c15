"""Real components for the integration tests: the validator, the error handler (with an
injected sleep, so retries never really wait) and the monitor, sharing one config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coordination import CoordinationConfig
from coordination.error_handling import CoordinationErrorHandler
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator

from .dead_letter_stores import open_store, store_location  # noqa: F401  (fixtures)
from .django_site import django_app  # noqa: F401  (a fixture for every test here)


@pytest.fixture
def config(clean_environment: None) -> CoordinationConfig:
    return CoordinationConfig(
        base_delay=0.5, jitter="none", max_retries=2, circuit_breaker_threshold=50
    )


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the error handler asked for (none of them really happen)."""
    return []


@pytest.fixture
def handler(config: CoordinationConfig, sleeps: list[float]) -> Iterator[CoordinationErrorHandler]:
    async def async_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    error_handler = CoordinationErrorHandler(config, sleep=sleeps.append, async_sleep=async_sleep)
    yield error_handler
    error_handler.close()


@pytest.fixture
def validator(config: CoordinationConfig) -> CoordinationValidator:
    return CoordinationValidator(config=config)


@pytest.fixture
def monitor(config: CoordinationConfig) -> CoordinationPerformanceMonitor:
    return CoordinationPerformanceMonitor(config)


@pytest.fixture
def components(
    config: CoordinationConfig,
    validator: CoordinationValidator,
    handler: CoordinationErrorHandler,
    monitor: CoordinationPerformanceMonitor,
) -> dict[str, Any]:
    """Keyword arguments every integration door accepts."""
    return {
        "config": config,
        "validator": validator,
        "error_handler": handler,
        "performance_monitor": monitor,
    }


def op_count(monitor: CoordinationPerformanceMonitor, name: str) -> int:
    stats = monitor.operation_stats().get(name)
    return 0 if stats is None else stats.count


@pytest.fixture(autouse=True)
def _close_dead_letter_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every dead-letter store opened during a test is closed after it.

    Many tests make an event processor (or a set's door) and drop it; Python 3.13 warns of
    each sqlite connection collected unclosed, and the suite turns warnings into errors of
    whichever test runs at that moment. Closing twice is harmless.
    """
    from coordination.integration import DeadLetterStore

    opened: list[DeadLetterStore] = []
    original = DeadLetterStore.__init__

    def tracked(self: DeadLetterStore, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(DeadLetterStore, "__init__", tracked)
    yield
    for store in opened:
        store.close()
