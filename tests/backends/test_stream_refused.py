"""RedisStreamSource refused by Redis (a wrong password, an ACL that forbids the stream):
a ``ConfigError`` at once, as the broker sources give for a refused login. Retried as an
outage, it was logged once and then waited on forever, so the wrong password stayed
hidden. Checked against the real Redis with ACL users made for the test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from coordination import ConfigError
from coordination.backends.redis import RedisStreamSource

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]


class Quiet:
    def process_event(self, event_data: Any, event_type: str) -> None:
        return None


@pytest.fixture
def acl_user(redis_url: str, namespace: str) -> Iterator[str]:
    """A user that may use keys under ``namespace:allowed:`` only."""
    name = f"coordination-test-{uuid.uuid4().hex[:8]}"
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command(
        "ACL", "SETUSER", name, "on", f">{PASSWORD}", f"~{namespace}:allowed:*", "+@all"
    )
    try:
        yield name
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


def url_for(redis_url: str, user: str, password: str) -> str:
    return redis_url.replace("redis://", f"redis://{user}:{password}@", 1)


async def refused_async(source: RedisStreamSource) -> None:
    try:
        await source.arun(max_idle_polls=50, handle_signals=False)
    finally:
        await source.aclose()  # the asyncio client belongs to this loop


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("refusal", ["wrong password", "forbidden key"])
def test_a_refused_source_fails_fast_with_the_password_masked(
    side: str, refusal: str, acl_user: str, namespace: str, redis_url: str
) -> None:
    wrong = refusal == "wrong password"
    url = url_for(redis_url, acl_user, "not-the-password" if wrong else PASSWORD)
    stream = f"{namespace}:{'allowed' if wrong else 'forbidden'}:events"
    source = RedisStreamSource(Quiet(), stream, group="group", url=url, block=0.01)
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError) as raised:
            if side == "sync":
                source.run(max_idle_polls=50, handle_signals=False)
            else:
                asyncio.run(refused_async(source))
        assert time.monotonic() - started < 5  # not waited out as an outage
        with pytest.raises(ConfigError):
            source.publish({"n": 1}, "order")
    finally:
        source.close()
    error = raised.value
    assert error.field == "redis_url"
    assert ("AuthenticationError" if wrong else "NoPermissionError") in str(error)
    assert "not-the-password" not in str(error)
    assert PASSWORD not in str(error)
    assert source.counts.broker_errors >= 1
    assert source.status()["running"] is False  # the run ended; another may start


def test_the_same_user_on_its_own_keys_is_served(
    acl_user: str, namespace: str, redis_url: str
) -> None:
    seen: list[Any] = []

    class Recorder:
        def process_event(self, event_data: Any, event_type: str) -> None:
            seen.append(event_data)

    source = RedisStreamSource(
        Recorder(),
        f"{namespace}:allowed:events",
        group="group",
        url=url_for(redis_url, acl_user, PASSWORD),
    )
    try:
        source.publish({"n": 1}, "order")
        assert source.run(max_idle_polls=1, handle_signals=False) == 1
    finally:
        source.client.delete(f"{namespace}:allowed:events")
        source.close()
    assert seen == [{"n": 1}]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_max_idle_polls_must_be_a_whole_number(bad: Any, redis_url: str, namespace: str) -> None:
    source = RedisStreamSource(
        Quiet(), f"{namespace}:events", group="group", url=redis_url, block=0.05
    )
    try:
        with pytest.raises(ConfigError, match="max_idle_polls"):
            source.run(max_idle_polls=bad, handle_signals=False)
        with pytest.raises(ConfigError, match="max_idle_polls"):
            asyncio.run(source.arun(max_idle_polls=bad, handle_signals=False))  # before a client
        assert source.run(max_idle_polls=1, handle_signals=False) == 0  # not left begun
    finally:
        source.client.delete(f"{namespace}:events")
        source.close()
