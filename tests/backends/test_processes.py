"""Four real processes share one breaker while the dependency goes down and comes back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKER = Path(__file__).with_name("_breaker_worker.py")
THRESHOLD = 5


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the workers")
        time.sleep(0.02)


def test_four_processes_share_one_breaker(redis_url: str, namespace: str, tmp_path: Path) -> None:
    (tmp_path / "phase").write_text("up")
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), redis_url, namespace, str(tmp_path), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    try:
        wait_for(lambda: all((tmp_path / f"ready-{n}").exists() for n in range(4)), 30)
        time.sleep(0.1)
        (tmp_path / "phase").write_text("down")
        time.sleep(1.2)  # the breaker opens, and re-opens after each failed trial (0.5 s)
        (tmp_path / "phase").write_text("up2")
        time.sleep(1.2)  # a trial succeeds after the open timeout and closes it for all
        (tmp_path / "stop").touch()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=30)
            assert worker.returncode == 0, err.decode()
            results.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    up = [r["counts"]["up"] for r in results]
    assert all(c["ok"] > 0 and c["failed"] == 0 and c["rejected"] == 0 for c in up)
    down = [r["counts"]["down"] for r in results]
    # Every process was protected by the breaker the others opened...
    assert all(c["rejected"] > 0 for c in down), down
    # ...so the dependency saw one threshold of failures in all, plus the calls the three
    # others had already admitted when it opened and one failed trial per open timeout
    # (5 + 3 + 3), with a little slack for a loaded machine: fewer than the 4 x 5 that
    # four separate breakers would let through before each opened.
    failed = sum(c["failed"] for c in down)
    assert THRESHOLD <= failed <= 2 * THRESHOLD + 4 < 4 * THRESHOLD, down
    after = [r["counts"]["up2"] for r in results]
    assert all(c["ok"] > 0 and c["failed"] == 0 for c in after), after
    assert all(r["last"]["up2"] == "ok" for r in results)
