"""Once under real servers: gunicorn (Flask, ``app.wsgi_app = ...``) and uvicorn (Starlette
with the middleware wrapped around it), spoken to over raw sockets so that malformed
framings reach them as a hostile client would send them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from coordination import CircuitOpenError, CoordinationASGIMiddleware, OperationTimeout
from loopback import free_port

LIMIT = 6_000
HUGE_INT = b'{"id": ' + b"9" * 5_000 + b"}"


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json"
        body = self.body
        if self.headers.get("transfer-encoding") == "chunked":
            body = _unchunk(body)
        return dict(json.loads(body))


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def exchange(port: int, request: bytes, *, timeout: float = 10) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # the server may answer and close before reading everything
        with contextlib.suppress(OSError):
            sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + body


def chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def common_cases(port: int) -> None:
    """What both servers must answer the same way."""
    open_ = Answer(exchange(port, request("GET", "/open", {})))
    assert (open_.status, open_.headers["retry-after"]) == (503, "3")
    assert open_.problem()["status"] == 503

    small = Answer(exchange(port, request("POST", "/read", {"Transfer-Encoding": "chunked"},
                                          chunked([b"a" * 100] * 5))))  # fmt: skip
    assert (small.status, json.loads(small.body)) == (200, {"bytes": 500})
    big = Answer(exchange(port, request("POST", "/read", {"Transfer-Encoding": "chunked"},
                                        chunked([b"b" * 500] * 20))))  # fmt: skip
    assert big.status == 413
    assert big.problem()["status"] == 413

    huge = Answer(
        exchange(
            port,
            request(
                "POST",
                "/echo",
                {"Content-Type": "application/json", "Content-Length": str(len(HUGE_INT))},
                HUGE_INT,
            ),
        )
    )
    assert huge.status == 422
    assert huge.problem()["errors"][0]["code"] == "number_too_long"

    # Lengths a server may refuse itself (400) or hand on for the middleware to refuse.
    for length in ["²", "+5", "-5", " 5x", "9" * 40, "0x10"]:
        raw = exchange(
            port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + length.encode("utf-8")
            + b"\r\n\r\n{}",
        )
        if raw:  # some refuse by closing the connection: also not a 500
            assert 400 <= Answer(raw).status < 500, (length, raw[:200])


# --- gunicorn -------------------------------------------------------------------------------

FLASK_SITE = textwrap.dedent(
    f"""
    from flask import Flask, request
    from coordination import CircuitOpenError, CoordinationMiddleware

    app = Flask(__name__)

    @app.get("/open")
    def open_breaker():
        raise CircuitOpenError("payments", 2.5)

    @app.post("/read")
    def read():
        return {{"bytes": len(request.get_data())}}

    @app.post("/echo")
    def echo():
        return {{"bytes": len(request.get_data())}}

    app.wsgi_app = CoordinationMiddleware(
        app.wsgi_app,
        config={{"max_request_body_bytes": {LIMIT}}},
        route_rules={{"POST /echo": {{"required_fields": ["id"]}}}},
    )
    """
)


@pytest.fixture
def gunicorn_port(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "flask_site.py").write_text(FLASK_SITE, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "3",
         "--chdir", str(tmp_path), "--log-level", "warning", "flask_site:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        assert process.stderr is not None
        process.stderr.close()


def test_under_gunicorn(gunicorn_port: int) -> None:
    common_cases(gunicorn_port)


# --- uvicorn --------------------------------------------------------------------------------


async def _open(request: Request) -> JSONResponse:
    raise CircuitOpenError("payments", 2.5)


async def _read(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


async def _streamed(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        yield b"first part"
        await asyncio.sleep(0)
        raise OperationTimeout("inventory", 1.0)

    return StreamingResponse(parts())


def test_under_uvicorn_around_a_starlette_app(components: dict[str, Any]) -> None:
    inner = Starlette(
        routes=[
            Route("/open", _open),
            Route("/read", _read, methods=["POST"]),
            Route("/echo", _read, methods=["POST"]),
            Route("/streamed", _streamed),
        ]
    )
    config = components["config"].replace(max_request_body_bytes=LIMIT)
    app = CoordinationASGIMiddleware(
        inner,
        route_rules={"POST /echo": {"required_fields": ["id"]}},
        **{**components, "config": config},
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        common_cases(port)
        # An error after the status went out: the stream is cut short (no last chunk),
        # never dressed up as a 503 after a 200.
        raw = exchange(port, request("GET", "/streamed", {}))
        answer = Answer(raw)
        assert answer.status == 200
        assert b"first part" in answer.body
        assert not answer.body.endswith(b"0\r\n\r\n")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    stats = app.http_stats()
    assert stats["status_codes"][503] == 1
    assert stats["status_codes"][413] == 1
    assert stats["status_codes"][422] == 1
    assert stats["exceptions"] == {"RuntimeError": 1}  # the late error, as Starlette words it
    assert 500 in stats["status_codes"]
