"""Shared fixtures. Capability-specific fixtures live in each tests/<capability>/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No COORDINATION_* variables from the machine leak into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("COORDINATION_") and name != "COORDINATION_REQUIRE_REDIS":
            monkeypatch.delenv(name)
    yield
