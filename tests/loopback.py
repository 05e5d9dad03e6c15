"""What tests need of this machine's loopback: a free port, the shared Redis, a uvicorn.

Without a reachable Redis the Redis tests are skipped with the reason shown in the
summary, unless COORDINATION_REQUIRE_REDIS=1 (CI), which turns that into a failure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


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


def require_redis() -> str:
    """The shared Redis's URL; skip (fail under COORDINATION_REQUIRE_REDIS=1) without it."""
    problem = redis_problem()
    if problem is not None:
        message = f"Redis at 127.0.0.1:6379 is unreachable ({problem})"
        if os.environ.get("COORDINATION_REQUIRE_REDIS") == "1":
            pytest.fail(f"{message} and COORDINATION_REQUIRE_REDIS=1", pytrace=False)
        pytest.skip(f"{message}; set COORDINATION_REQUIRE_REDIS=1 to make this a failure")
    return REDIS_URL


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
