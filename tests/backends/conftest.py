"""Fixtures for the Redis backend: the shared server at 127.0.0.1:6379, a unique key
namespace per test (deleted afterwards), and a private redis-server the test may stop.

Without a reachable Redis the tests are skipped with the reason shown in the summary,
unless COORDINATION_REQUIRE_REDIS=1 (CI), which turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"
T = TypeVar("T")


def _reachable(host: str, port: int) -> str | None:
    """None when something answers PING at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply.startswith(b"+PONG") else f"unexpected reply {reply!r}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = _reachable("127.0.0.1", 6379)
    if problem is not None:
        message = f"Redis at 127.0.0.1:6379 is unreachable ({problem})"
        if os.environ.get("COORDINATION_REQUIRE_REDIS") == "1":
            pytest.fail(f"{message} and COORDINATION_REQUIRE_REDIS=1", pytrace=False)
        pytest.skip(f"{message}; set COORDINATION_REQUIRE_REDIS=1 to make this a failure")
    return REDIS_URL


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


@pytest.fixture
def closing() -> Iterator[Callable[[T], T]]:
    """``closing(obj)`` returns ``obj`` and closes it after the test: connections GC'd in
    a reference cycle may have their socket finalised first, which warns (an error here)."""
    opened: list[Any] = []

    def track(obj: T) -> T:
        opened.append(obj)
        return obj

    yield track
    for obj in reversed(opened):
        obj.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of our own on a free loopback port, to stop and restart at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("COORDINATION_REQUIRE_REDIS") == "1":
                pytest.fail("redis-server is not installed", pytrace=False)
            pytest.skip("redis-server is not installed (needed for a private server)")
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while _reachable("127.0.0.1", self.port) is not None:
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def private_redis(redis_url: str, tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
