"""Shared fixtures. Capability-specific fixtures live in each tests/<capability>/conftest.py."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COORDINATION_* variables from the machine leak into a test."""
    for name in list(os.environ):
        if name.startswith("COORDINATION_") and name != "COORDINATION_REQUIRE_REDIS":
            monkeypatch.delenv(name)
