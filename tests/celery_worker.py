"""A real ``celery worker -P solo`` for a test module, on a queue of its own.

``solo_worker`` imports the app module here with the worker's settings (so the test sends
to the same queue and reads the same folder), starts the worker, waits for it to be
ready, and at the end stops it with SIGTERM and deletes its queue. Deleting the queue
also wakes the worker: kombu's event loop polls up to 10 s between timers, and a SIGTERM
alone waited that out before the warm shutdown began (10 s of every module's teardown).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

QUEUE = "CELERY_TEST_QUEUE"
FOLDER = "CELERY_TEST_DIR"


def log_tail(folder: Path) -> str:
    """The end of the worker's log, for a failure's message."""
    return (folder / "worker.log").read_text()[-4000:]


@contextmanager
def solo_worker(
    app_module: str,
    here: Path,
    settings: Mapping[str, str],
    *,
    worker_only: Mapping[str, str] | None = None,
    before_start: Callable[[ModuleType], None] | None = None,
) -> Iterator[ModuleType]:
    """The app module ``app_module`` (found in ``here``) while a worker runs it.

    ``settings`` (``CELERY_TEST_QUEUE``, ``CELERY_TEST_DIR``, …) hold in both processes;
    ``worker_only`` in the worker's alone. ``before_start`` gets the module before the
    worker starts (to open what this process shares with it)."""
    queue, folder = settings[QUEUE], Path(settings[FOLDER])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")},
        **settings,
        **(worker_only or {}),
        "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    sys.path.insert(0, str(here))
    module = importlib.reload(importlib.import_module(app_module))  # this run's settings
    log = (folder / "worker.log").open("w")
    process: subprocess.Popen[bytes] | None = None
    try:
        if before_start is not None:
            before_start(module)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app_module,
                "worker",
                "-P",
                "solo",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],
            cwd=here,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while "ready." not in (folder / "worker.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the celery worker did not start:\n" + log_tail(folder))
            time.sleep(0.1)
        yield module
    finally:
        if process is not None:
            process.terminate()  # a warm shutdown: a running task finishes
        with module.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)  # and the worker wakes to it
        if process is not None:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        sys.path.remove(str(here))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
