"""Helpers for the demo, browser and example tests: the demo served, Redis required."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

COMMAND = [sys.executable, "-m", "coordination", "demo"]


def demo_env() -> dict[str, str]:
    """The environment without the machine's COORDINATION_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@contextlib.contextmanager
def serving_demo(duration: float = 3) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run the demo with ``--serve``; yield its base URL once its load has finished."""
    process = subprocess.Popen(
        [*COMMAND, "--duration", str(duration), "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(),
    )
    try:
        assert process.stdout is not None
        base = None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            found = re.search(r"under CoordinationMiddleware at (http://127\.0\.0\.1:\d+)", line)
            base = base or (found.group(1) if found else None)
            if line.startswith("serving on") or time.monotonic() > deadline:
                break
        assert base is not None, "the demo never said where it serves"
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
