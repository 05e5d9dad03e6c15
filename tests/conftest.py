"""Shared fixtures. Capability-specific fixtures live in each tests/<capability>/conftest.py."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from coordination.integration import CoordinationEventProcessor
from coordination.testing import reset_default_coordination
from loopback import require_nats, require_postgres, require_rabbitmq, require_redis


@pytest.fixture(autouse=True)
def fresh_default_coordination() -> Iterator[None]:
    """Each test starts with new process-wide components (so no breaker leaks in)."""
    reset_default_coordination()
    yield
    reset_default_coordination()


@pytest.fixture(autouse=True)
def _processors_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every event processor a test made is closed when the test ends, passed or failed:
    a test that fails before its own ``close()`` must not leave its dead-letter store's
    connection for the garbage collector, whose late ResourceWarning (Python 3.13 warns
    for an open sqlite3 connection, psycopg for its own) would fail some later test."""
    made: list[CoordinationEventProcessor] = []
    init = CoordinationEventProcessor.__init__

    @functools.wraps(init)  # the API reference, rendered in a test, reads its signature
    def recording(self: CoordinationEventProcessor, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(CoordinationEventProcessor, "__init__", recording)
    yield
    for processor in made:
        processor.close()


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
        if name.startswith("COORDINATION_") and not name.startswith("COORDINATION_REQUIRE_"):
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


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """RabbitMQ at 127.0.0.1:5672, guest/guest (see loopback.require_rabbitmq)."""
    return require_rabbitmq()


@pytest.fixture(scope="session")
def nats_url() -> str:
    """NATS with JetStream at 127.0.0.1:4222 (see loopback.require_nats)."""
    return require_nats()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """PostgreSQL at 127.0.0.1:5432, database test, trust auth (see loopback)."""
    return require_postgres()


@pytest.fixture
def unique_name() -> str:
    """A name (queue, subject, stream, namespace) no other test uses: letters, digits
    and underscores, so it is valid for every broker and as a SQL identifier suffix."""
    return f"coordination_test_{uuid.uuid4().hex[:12]}"
