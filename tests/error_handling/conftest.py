"""Fixtures for the error-handling tests: a fake clock whose sleep advances it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coordination.error_handling import CoordinationErrorHandler
from coordination.testing import set_testing
from fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def handler(clock: FakeClock) -> CoordinationErrorHandler:
    """A handler on the fake clock with the library's defaults (config not from the env)."""
    return CoordinationErrorHandler(
        {"jitter": "none"},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


@pytest.fixture(autouse=True)
def _no_testing_mode() -> Iterator[None]:
    """Every test starts with testing mode off, whatever a failed test left behind."""
    with set_testing(False):
        yield
