"""Fixtures for the NATS JetStream source: a clean-up of the streams a test makes on the
shared server, and a private nats-server a test may stop and restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest

from loopback import free_port, nats_problem


async def admin(url: str) -> Any:
    """A plain client for the tests' own set-up and clean-up. Patient (a loaded CI
    machine's JetStream can stall for seconds), and closed when connecting fails:
    ``nats.connect`` leaves a failed client's socket to the garbage collector."""
    nc = nats.NATS()
    try:
        await nc.connect(url, allow_reconnect=False, connect_timeout=10)
    except BaseException:
        await nc.close()
        raise
    return nc


def delete_streams(url: str, names: list[str]) -> None:
    async def delete() -> None:
        nc = await admin(url)
        try:
            js = nc.jetstream()
            for name in names:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(delete())


@pytest.fixture
def streams(nats_url: str) -> Iterator[list[str]]:
    """Append the name of every stream the test makes (or a source will make): each is
    deleted after the test, pass or fail."""
    made: list[str] = []
    yield made
    if made:
        delete_streams(nats_url, made)


def consumer_info(url: str, stream: str, durable: str) -> Any:
    async def info() -> Any:
        nc = await admin(url)
        try:
            return await nc.jetstream().consumer_info(stream, durable)
        finally:
            await nc.close()

    return asyncio.run(info())


class PrivateNats:
    """A nats-server -js of our own on a free loopback port, to stop and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._store = workdir / "jetstream"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            if os.environ.get("COORDINATION_REQUIRE_NATS") == "1":
                pytest.fail("nats-server is not installed", pytrace=False)
            pytest.skip("nats-server is not installed (needed for a private server)")
        self._process = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self._store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while nats_problem("127.0.0.1", self.port) is not None:
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"private nats-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def private_nats(nats_url: str, tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
