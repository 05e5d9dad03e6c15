"""Several gunicorn workers, one scrape: every worker's numbers, merged."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordination.observability import CoordinationMetricsExporter
from loopback import free_port

from .exposition import samples

pytestmark = pytest.mark.usefixtures("clean_environment")

APP = textwrap.dedent(
    """
    import os
    import time

    from coordination.error_handling import CoordinationErrorHandler
    from coordination.observability import CoordinationMetricsExporter

    handler = CoordinationErrorHandler(config={"base_delay": 0, "max_retries": 0})
    exporter = CoordinationMetricsExporter(
        {"error_handler": handler},
        config={},
        multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"],
        snapshot_interval=0.05,
    )
    metrics = exporter.make_wsgi_app()


    def work():
        time.sleep(0.02)  # long enough that concurrent requests reach both workers
        return b"ok"


    def app(environ, start_response):
        if environ["PATH_INFO"] == "/metrics":
            return metrics(environ, start_response)
        body = handler.execute_with_error_handling(work, operation_name="work")
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])
        return [body]
    """
)
REQUESTS = 40


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--threads",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "--log-level",
            "warning",
            "app:app",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/metrics", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("gunicorn did not start")
            time.sleep(0.05)
    yield base
    server.terminate()
    server.wait(15)


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        return samples(response.read().decode())


SUCCESSES = (
    "coordination_operations_total",
    frozenset({("component", "error_handler"), ("operation", "work"), ("outcome", "success")}),
)
TOTAL_GAUGE = ("coordination_total_operations", frozenset({("component", "error_handler")}))


def wait_for(base: str, expected: float, key: tuple[str, frozenset[tuple[str, str]]]) -> None:
    """Until several scrapes in a row (served by either worker) show ``expected``."""
    deadline = time.monotonic() + 15
    streak = 0
    while streak < 6:
        streak = streak + 1 if scrape(base).get(key) == expected else 0
        if time.monotonic() > deadline:
            pytest.fail(f"{key[0]} never settled at {expected}: {scrape(base).get(key)}")


def test_counters_merge_across_gunicorn_workers_and_survive_a_dead_one(gunicorn: str) -> None:
    def hit(_: int) -> int:
        with urllib.request.urlopen(f"{gunicorn}/work", timeout=10) as response:
            return int(response.headers["X-Worker"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        workers = list(pool.map(hit, range(REQUESTS)))
    assert len(set(workers)) == 2, "both workers should have served requests"
    wait_for(gunicorn, REQUESTS, SUCCESSES)
    wait_for(gunicorn, REQUESTS, TOTAL_GAUGE)

    # A worker killed outright: gunicorn replaces it; its counted requests stay counted
    # (counters never go backwards), while gauges now come from the live workers only.
    victim = workers[0]
    survivor_count = sum(1 for pid in workers if pid != victim)
    os.kill(victim, signal.SIGKILL)
    wait_for(gunicorn, survivor_count, TOTAL_GAUGE)
    assert scrape(gunicorn)[SUCCESSES] == REQUESTS


def test_snapshots_merge_in_one_process(tmp_path: Path) -> None:
    class Handler:
        def __init__(self, calls: int) -> None:
            self.calls = calls

        def get_error_report(self) -> dict[str, object]:
            return {
                "total_operations": self.calls,
                "operations": {"op": {"successes": self.calls, "failures": 0}},
            }

    exporter = CoordinationMetricsExporter(
        {"h": Handler(3)}, multiprocess_dir=tmp_path, snapshot_interval=60
    )
    # another worker's snapshot, from a process that has since exited
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    other = CoordinationMetricsExporter({"h": Handler(5)}, registry=None)
    from coordination.observability._multiprocess import SnapshotWriter

    writer = SnapshotWriter(other.collector, tmp_path)
    writer.write()
    writer.path().rename(tmp_path / f"coordination_{int(dead.stdout)}-0badcafe.json")
    values = samples(exporter.export_metrics())
    op = frozenset({("component", "h"), ("operation", "op"), ("outcome", "success")})
    assert values[("coordination_operations_total", op)] == 8  # dead worker's counts kept
    assert values[("coordination_total_operations", frozenset({("component", "h")}))] == 3
    exporter.close()
    assert exporter.snapshot_writer is not None
    with pytest.raises(ValueError, match="does not exist"):
        CoordinationMetricsExporter({}, multiprocess_dir=tmp_path / "missing")
