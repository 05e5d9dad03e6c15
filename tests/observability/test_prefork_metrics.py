"""The middleware's built-in /metrics under gunicorn shows the whole service, with no setting."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination.observability._multiprocess import (
    AutoMultiprocess,
    MergedSnapshotsCollector,
    SnapshotWriter,
    shared_snapshot_dir,
)
from loopback import free_port

from .exposition import samples

pytestmark = pytest.mark.usefixtures("clean_environment")

# A plain WSGI app behind the middleware, exactly as a user writes it: endpoints on, and
# not one multi-process setting.
APP = textwrap.dedent(
    """
    import os
    import time

    from coordination import CoordinationMiddleware


    def app(environ, start_response):
        time.sleep(0.02)  # long enough that concurrent requests reach every worker
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])
        return [b"ok"]


    application = CoordinationMiddleware(app, config={"expose_endpoints": True})
    """
)
WORKERS = 3
REQUESTS = 90


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = str(runtime)  # where the workers' shared directory is chosen
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(WORKERS),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "--log-level",
            "warning",
            "app:application",
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
    try:
        yield base, server, runtime
    finally:
        server.terminate()
        server.wait(15)


def requests_counted(base: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        values = samples(response.read().decode())
    return sum(v for (name, _), v in values.items() if name == "coordination_http_requests_total")


def hit(base: str) -> int:
    with urllib.request.urlopen(f"{base}/work", timeout=10) as response:
        return int(response.headers["X-Worker"])


def settled_scrapes(base: str, expected: float) -> list[float]:
    """Wait (bounded) until one scrape shows ``expected``; then 12 concurrent scrapes."""
    deadline = time.monotonic() + 15
    while requests_counted(base) != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"the scrapes never reached {expected}: {requests_counted(base)}")
        time.sleep(0.1)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: requests_counted(base), range(12)))


def test_every_scrape_shows_every_workers_requests(
    gunicorn: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    base, _, runtime = gunicorn
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        workers = list(pool.map(lambda _: hit(base), range(REQUESTS)))
    assert len(set(workers)) >= 2, "the requests should have reached several workers"
    assert settled_scrapes(base, REQUESTS) == [REQUESTS] * 12

    # One directory for this master, private to its user.
    (shared,) = runtime.glob("coordination-metrics-*")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700
    assert shared.name.startswith(f"coordination-metrics-{os.getuid()}-")

    # A worker killed outright: gunicorn replaces it, and its requests stay counted.
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        after = list(pool.map(lambda _: hit(base), range(30)))
    assert victim not in after
    assert settled_scrapes(base, REQUESTS + 30) == [REQUESTS + 30] * 12
    # The dead worker's snapshot was folded into the retired one: files stay bounded.
    snapshots = [p.name for p in shared.glob("coordination_*.json")]
    assert "coordination_retired.json" in snapshots
    assert not any(p.startswith(f"coordination_{victim}-") for p in snapshots)
    assert len(snapshots) <= WORKERS + 1


def test_a_new_master_removes_the_directories_of_masters_that_are_gone(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "print(__import__('os').getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"coordination-metrics-{os.getuid()}-{int(dead.stdout)}-0"
    stale.mkdir(mode=0o700)
    (stale / "coordination_1-ab.json").write_text("[]")
    other_users = tmp_path / f"coordination-metrics-{os.getuid() + 1}-{int(dead.stdout)}-0"
    other_users.mkdir()
    mine = shared_snapshot_dir(os.getppid(), root=tmp_path)
    assert mine.is_dir()
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    assert not stale.exists()
    assert other_users.exists()  # never another user's
    assert shared_snapshot_dir(os.getppid(), root=tmp_path) == mine  # the same master: kept


def test_a_directory_another_could_write_is_refused(tmp_path: Path) -> None:
    first = shared_snapshot_dir(os.getppid(), root=tmp_path)
    first.chmod(0o777)
    with pytest.raises(PermissionError, match="not a private directory"):
        shared_snapshot_dir(os.getppid(), root=tmp_path)


def test_outside_a_prefork_server_nothing_is_shared(tmp_path: Path) -> None:
    auto = AutoMultiprocess((), master=lambda: None, root=tmp_path)
    assert not auto.activate()
    assert auto.registry is None
    assert list(tmp_path.iterdir()) == []


def test_an_unusable_directory_leaves_the_worker_its_own_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # not a directory: nothing can be created under it
    auto = AutoMultiprocess((), master=os.getppid, root=blocked)
    assert not auto.activate()
    assert "this worker's alone" in caplog.text


class _Counting:
    """A collector with one counter, as a worker's snapshot would hold it."""

    def __init__(self, value: float) -> None:
        self.value = value

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily("coordination_things", "things", labels=["kind"])
        family.add_metric(["a"], self.value)
        yield family

    def describe(self) -> list[Any]:
        return []


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "print(__import__('os').getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_dead_workers_fold_into_one_file_and_are_counted_once(tmp_path: Path) -> None:
    key = ("coordination_things_total", frozenset({("kind", "a")}))
    own = SnapshotWriter(_Counting(1), tmp_path)
    merged = MergedSnapshotsCollector(tmp_path, writer=own)
    for n in range(1, 6):  # five workers come and go, each leaving its snapshot
        SnapshotWriter(_Counting(10 * n), tmp_path).write()
        for path in tmp_path.glob(f"coordination_{os.getpid()}-*.json"):
            if path != own.path():
                path.rename(tmp_path / f"coordination_{_dead_pid()}-{n:08x}.json")
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(merged)
    for _ in range(3):  # folding happens once; every scrape shows the same total
        assert samples(generate_latest(registry).decode())[key] == 1 + 10 + 20 + 30 + 40 + 50
    names = sorted(p.name for p in tmp_path.glob("coordination_*.json"))
    assert names == sorted(["coordination_retired.json", own.path().name])


def test_a_fold_interrupted_before_removing_its_files_counts_them_once(tmp_path: Path) -> None:
    import json

    key = ("coordination_things_total", frozenset({("kind", "a")}))
    dead = tmp_path / f"coordination_{_dead_pid()}-00000001.json"
    SnapshotWriter(_Counting(7), tmp_path).write()
    (written,) = tmp_path.glob("coordination_*.json")
    written.rename(dead)
    # As a fold leaves things when it dies between replacing the retired file and
    # removing what it absorbed: the count is in both, and the retired file says so.
    families = json.loads(dead.read_text())
    (tmp_path / "coordination_retired.json").write_text(
        json.dumps({"families": families, "folded": [dead.name]})
    )
    merged = MergedSnapshotsCollector(tmp_path)
    values = {
        (s.name, frozenset(s.labels.items())): s.value for m in merged.collect() for s in m.samples
    }
    assert values[key] == 7
    assert not dead.exists()
