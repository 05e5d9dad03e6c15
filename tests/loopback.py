"""What tests need of this machine's loopback: a free port, the shared Redis, RabbitMQ,
NATS (JetStream) and PostgreSQL, a uvicorn, and Prometheus' binaries.

Without a reachable service its tests are skipped with the reason shown in the summary,
unless ``COORDINATION_REQUIRE_<SERVICE>=1`` (CI sets it for each), which turns that into a
failure. Each probe speaks just enough of the service's protocol to know it is the service
(not merely an open port), with no client library.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_problem(host: str = "127.0.0.1", port: int = 6379) -> str | None:
    """None when something answers PING at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply.startswith(b"+PONG") else f"unexpected reply {reply!r}"


def rabbitmq_problem(host: str = "127.0.0.1", port: int = 5672) -> str | None:
    """None when an AMQP 0-9-1 server answers the protocol header with Connection.Start."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            reply = sock.recv(16)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    # a method frame (type 1) on channel 0: Connection.Start
    return None if reply[:3] == b"\x01\x00\x00" else f"unexpected reply {reply!r}"


def nats_problem(host: str = "127.0.0.1", port: int = 4222) -> str | None:
    """None when a NATS server with JetStream enabled greets with its INFO line."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            greeting = sock.recv(4096)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not greeting.startswith(b"INFO "):
        return f"unexpected greeting {greeting[:40]!r}"
    return None if b'"jetstream":true' in greeting else "NATS runs without JetStream (-js)"


def postgres_problem(host: str = "127.0.0.1", port: int = 5432) -> str | None:
    """None when a PostgreSQL server answers an SSLRequest (with 'S' or 'N')."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
            reply = sock.recv(1)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply in (b"S", b"N") else f"unexpected reply {reply!r}"


def _require(service: str, where: str, problem: str | None, url: str) -> str:
    """``url`` when the service answered; else skip, or fail when CI requires it."""
    if problem is None:
        return url
    variable = f"COORDINATION_REQUIRE_{service.upper()}"
    message = f"{service} at {where} is unreachable ({problem})"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{message} and {variable}=1", pytrace=False)
    pytest.skip(f"{message}; set {variable}=1 to make this a failure")


def require_redis() -> str:
    """The shared Redis's URL; skip (fail under COORDINATION_REQUIRE_REDIS=1) without it."""
    return _require("Redis", "127.0.0.1:6379", redis_problem(), REDIS_URL)


def require_rabbitmq() -> str:
    """RabbitMQ's URL (guest/guest); skip (fail under COORDINATION_REQUIRE_RABBITMQ=1)."""
    return _require("RabbitMQ", "127.0.0.1:5672", rabbitmq_problem(), RABBITMQ_URL)


def require_nats() -> str:
    """The NATS (JetStream) URL; skip (fail under COORDINATION_REQUIRE_NATS=1)."""
    return _require("NATS", "127.0.0.1:4222", nats_problem(), NATS_URL)


def require_postgres() -> str:
    """PostgreSQL's URL (database test); skip (fail under COORDINATION_REQUIRE_POSTGRES=1)."""
    return _require("Postgres", "127.0.0.1:5432", postgres_problem(), POSTGRES_URL)


def prometheus_problem() -> str | None:
    """None when Prometheus and promtool (Debian's ``prometheus`` package) both run."""
    for binary in ("prometheus", "promtool"):
        path = shutil.which(binary)
        if path is None:
            return f"{binary} is not on PATH (apt-get install prometheus)"
        try:
            done = subprocess.run([path, "--version"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{binary} --version: {type(exc).__name__}: {exc}"
        if done.returncode != 0:
            return f"{binary} --version exited {done.returncode}"
    return None


def require_prometheus() -> tuple[str, str]:
    """The paths of ``prometheus`` and ``promtool``; skip (fail under
    COORDINATION_REQUIRE_PROMETHEUS=1, as CI sets) without them."""
    _require("Prometheus", "PATH", prometheus_problem(), "")
    return str(shutil.which("prometheus")), str(shutil.which("promtool"))


@contextlib.contextmanager
def uvicorn_in_thread(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port; yields its base URL.

    The server runs on a daemon thread and is stopped (and joined) when the block ends,
    whatever happens inside it.
    """
    import uvicorn

    port = free_port()
    options.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
