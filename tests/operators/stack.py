"""A real Prometheus scraping ``coordination demo --serve`` on loopback, with the rules of
``coordination alerts`` loaded: what an operator runs, started for a test (or for
``tools/render_dashboard.py``'s picture) and stopped after it.

Two demos: the default one (both acts, the event processor's dead letters, the timeout,
the rate limit), and ``--redis`` on the real Redis (two workers sharing their breaker
under a namespace of their own, removed at the end): the only one with Redis-backed
components, so the only one with ``coordination_redis_errors_total``.

Everything listens on 127.0.0.1 on free ports and lives in one temporary folder
(Prometheus' TSDB included); every process is stopped when the block ends, whatever
happened inside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopback import free_port

SCRAPE_INTERVAL = "1s"
DEMO = (sys.executable, "-m", "coordination", "demo", "--serve")


@dataclass(frozen=True)
class Stack:
    prometheus: str  # base URL of Prometheus' HTTP API
    demo: str
    redis_workers: tuple[str, str]  # the two workers of ``coordination demo --redis``
    rules: Path
    folder: Path

    def get(self, path: str, **params: str) -> Any:
        """``GET`` on Prometheus' API; the decoded JSON (``status`` must be success)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.prometheus + path + query, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (``/api/v1/query``)."""
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        data = self.get(
            "/api/v1/query_range", query=expr, start=f"{start}", end=f"{end}", step=f"{step}"
        )
        result: list[Any] = data["result"]
        return result


def _wait(what: str, ready: Any, seconds: float, *watched: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        for process in watched:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited {process.returncode} ({what})")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _says(log: Path, text: bytes) -> Any:
    return lambda: text in log.read_bytes()


def _free_port_pair() -> int:
    """A port P such that nothing listens on P nor P + 1 (the ``--redis`` demo's workers)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row on 127.0.0.1")


def _stop(process: subprocess.Popen[bytes], how: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def running_stack(
    folder: Path,
    prometheus: str,
    *,
    redis_url: str,
    duration: float = 6.0,
    alert_options: Sequence[str] = (),
) -> Iterator[Stack]:
    """Both demos and Prometheus running; yields once their acts are over and Prometheus
    has scraped every target a few times since."""
    demo_port, redis_port, prometheus_port = free_port(), _free_port_pair(), free_port()
    targets = [f"127.0.0.1:{port}" for port in (demo_port, redis_port, redis_port + 1)]
    rules = folder / "coordination-rules.yml"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    config = folder / "prometheus.yml"
    # The command the docs give an operator, for real: the rule file and the Prometheus
    # configuration that loads it and scrapes every target.
    subprocess.run(
        [
            *(sys.executable, "-m", "coordination", "alerts", *alert_options),
            *("--output", str(rules), "--prometheus-config", str(config)),
            *(item for target in targets for item in ("--scrape", target)),
            *("--scrape-interval", SCRAPE_INTERVAL),
        ],
        check=True,
        env=env,
        timeout=60,
    )
    logs = contextlib.ExitStack()
    demos = {
        "demo.log": [*DEMO, "--duration", f"{duration:g}", "--port", str(demo_port)],
        "demo-redis.log": [
            *(*DEMO, "--duration", f"{duration:g}", "--port", str(redis_port)),
            *("--redis", redis_url),
        ],
    }
    started: list[subprocess.Popen[bytes]] = []
    demo_processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in demos.items():
            started.append(
                subprocess.Popen(
                    command,
                    stdout=logs.enter_context((folder / name).open("wb")),
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            )
            demo_processes.append(started[-1])
        (folder / "tsdb").mkdir()
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--log.level=warn",
            ],
            stdout=logs.enter_context((folder / "prometheus.log").open("wb")),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        started.append(server)
        stack = Stack(
            f"http://127.0.0.1:{prometheus_port}",
            f"http://{targets[0]}",
            (f"http://{targets[1]}", f"http://{targets[2]}"),
            rules,
            folder,
        )
        _wait("Prometheus to be ready", lambda: _answers(stack.prometheus + "/-/ready"), 30, server)
        for name, demo in zip(demos, demo_processes, strict=True):
            _wait(f"the acts of {name} to end", _says(folder / name, b"serving on"), 60, demo)
        since = time.time()

        def scraped_since() -> bool:
            # Every target up, and scraped at least three times after the acts ended.
            window = f"{int(time.time() - since) + 1}s"
            scrapes = stack.query(f"count_over_time(up[{window}]) >= 3")
            up = stack.query("up == 1")
            return len(scrapes) == len(targets) and len(up) == len(targets)

        _wait("three scrapes of each target", scraped_since, 30, *started)
        yield stack
    finally:
        # The demos stop on Ctrl-C (SIGINT), as a reader's terminal would stop them (the
        # --redis one removes its keys from Redis then).
        for process in started:
            _stop(process, signal.SIGINT if process in demo_processes else signal.SIGTERM)
        logs.close()
