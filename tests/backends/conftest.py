"""Fixtures for the Redis backend: a private redis-server the test may stop, and
``closing``. The shared server's ``redis_url`` and ``namespace`` fixtures are in
tests/conftest.py (skip or fail rules in tests/loopback.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from loopback import free_port, redis_problem

T = TypeVar("T")


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
        while redis_problem("127.0.0.1", self.port) is not None:
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and commands hang (not refused)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None:
            self.resume()  # a stopped process would not act on SIGTERM until continued
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


def errors_counted(component: str) -> float:
    """The value of coordination_redis_errors_total, as a scrape would show it."""
    from prometheus_client import REGISTRY

    labels = {"component": component}
    return REGISTRY.get_sample_value("coordination_redis_errors_total", labels) or 0.0


@pytest.fixture
def config(redis_url: str, namespace: str) -> dict[str, Any]:
    """A handler's configuration on the test's own namespace of the shared Redis: the
    breaker opens at 2 failures, no retries, no waits."""
    return {
        "redis_url": redis_url,
        "redis_namespace": namespace,
        "circuit_breaker_threshold": 2,
        "max_retries": 0,
        "base_delay": 0.0,
    }


def sent_until_marker(monitor: Any, echo: Callable[[str], object]) -> list[str]:
    """The commands clients sent, as ``monitor`` (a redis-py MONITOR) saw them, up to a
    marker that ``echo(marker)`` sends from a client of its own. Commands run by a script
    inside Redis (``client_type`` lua) cost no round trip and are left out, and so is the
    marker's own client (its connection handshake is not under test)."""
    marker = f"end-{uuid.uuid4().hex}"
    echo(marker)
    sent: list[tuple[str, str]] = []  # (client port, command)
    while True:
        entry = monitor.next_command()
        if entry["client_type"] == "lua":
            continue
        if marker in entry["command"]:
            break
        sent.append((entry["client_port"], entry["command"].split()[0].upper()))
    return [command for port, command in sent if port != entry["client_port"]]
