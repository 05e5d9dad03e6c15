"""Shared fixtures. Capability-specific fixtures live in each tests/<capability>/conftest.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from coordination.testing import reset_default_coordination
from loopback import require_redis


@pytest.fixture(autouse=True)
def fresh_default_coordination() -> Iterator[None]:
    """Each test starts with new process-wide components (so no breaker leaks in)."""
    reset_default_coordination()
    yield
    reset_default_coordination()


@pytest.fixture(autouse=True, scope="session")
def _private_state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default dead-letter journal goes to the platform state directory: keep the
    suite's out of the real home (platformdirs honours XDG_STATE_HOME on Linux)."""
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COORDINATION_* variables from the machine leak into a test."""
    for name in list(os.environ):
        if name.startswith("COORDINATION_") and name != "COORDINATION_REQUIRE_REDIS":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis at 127.0.0.1:6379 (see loopback.require_redis)."""
    return require_redis()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A key namespace no other test (or engineer) uses; its keys are deleted afterwards."""
    import redis

    name = f"coordination-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
