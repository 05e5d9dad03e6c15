"""Metrics from every worker of a multi-process server (gunicorn, uvicorn --workers).

prometheus_client's own multi-process mode makes each *metric object* write its value to a
memory-mapped file on every update, and ``MultiProcessCollector`` adds the files up at
scrape time. A custom collector has no such files: it runs only in the worker that happens
to serve the scrape, so by itself it would show that one worker's share, differently on
every scrape. This module gives it the same shape: each worker writes a snapshot of what
``CoordinationCollector`` reads (on a short interval, and at exit) into the multi-process
directory, and the serving worker merges all snapshots:

- counters, histograms and a summary's ``_count``/``_sum`` are summed over every snapshot,
  including those of workers that have exited, so totals never go backwards when gunicorn
  replaces a worker (prometheus_client keeps dead workers' counters too);
- gauges come from live workers only: counts and resources (total operations, requests
  in flight, CPU, memory, threads, descriptors) are summed, the others (breaker state,
  component status, export errors) take the maximum, so an open breaker in any worker
  shows;
- histograms merge exactly (the default); summary quantiles cannot be merged, so the
  maximum over live workers, an upper bound, is shown.

Clear the directory when the server starts, as prometheus_client requires for its files.

**Automatic mode** (``AutoMultiprocess``, what the middleware's built-in ``/metrics`` uses):
with no setting at all, a worker of a pre-fork server (gunicorn, any worker class; uvicorn
``--workers``) finds its master's pid and shares a directory chosen for that master:
``<runtime dir>/coordination-metrics-<uid>-<master pid>-<master start>`` (the runtime dir
is ``$XDG_RUNTIME_DIR``, else the platform's temp dir; the master's start time, read from
``/proc`` where there is one, keeps a reused pid from inheriting old snapshots), created
0700 and refused unless it is ours and private. Each worker starts writing at its first
request (so ``--preload`` needs nothing special: the master never serves one), every
second. Directories of masters that are gone are removed by the next server's workers.

Snapshot files are named ``coordination_<pid>-<token>.json``, the token unique per
process, so a new worker that happens to get a dead worker's pid never overwrites the dead
one's counts. At a scrape, the snapshots of workers that have exited are folded into one
``coordination_retired.json`` (counters and histograms only — gauges of dead workers are
not shown anyway) under a file lock, so the number of files stays bounded however many
times gunicorn recycles its workers (``--max-requests``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.metrics_core import Metric

from .._logging import component_logger, log_extra
from .._process import pid_alive
from ._collector import ADDITIVE_GAUGES

__all__ = [
    "AutoMultiprocess",
    "MergedSnapshotsCollector",
    "SnapshotWriter",
    "prefork_master",
    "shared_snapshot_dir",
]

_PREFIX = "coordination_"
_RETIRED = f"{_PREFIX}retired.json"
_LOCK = f".{_PREFIX}lock"
_DIR_PREFIX = "coordination-metrics-"
AUTO_INTERVAL = 1.0  # seconds between a worker's snapshots in automatic mode
_Key = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels


class _Collecting(Protocol):
    def collect(self) -> Iterable[Metric]: ...
    def describe(self) -> Iterable[Metric]: ...


class SnapshotWriter:
    """Writes this process's collected families to ``<directory>/coordination_<pid>.json``."""

    def __init__(
        self,
        collector: _Collecting,
        directory: str | os.PathLike[str],
        *,
        interval: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.collector = collector
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(
                f"multi-process metrics directory {str(self.directory)!r} does not exist"
            )
        if not interval > 0:
            raise ValueError(f"snapshot interval must be positive seconds, got {interval!r}")
        self.interval = interval
        self._logger = logger or component_logger("observability")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()  # the thread and a scrape may write at once
        self._pid = -1
        self._name = ""
        self._last = ""

    def path(self) -> Path:
        """This process's snapshot file (a new name after a fork: pid and a fresh token)."""
        pid = os.getpid()  # read each time: the writer may have been created before a fork
        if pid != self._pid:
            self._pid, self._name = pid, f"{_PREFIX}{pid}-{secrets.token_hex(4)}.json"
        return self.directory / self._name

    def write(self) -> None:
        """Write the snapshot now (atomically: readers never see half a file)."""
        families = [
            {
                "name": metric.name,
                "type": metric.type,
                "unit": metric.unit,
                "help": metric.documentation,
                "samples": [[s.name, s.labels, s.value] for s in metric.samples],
            }
            for metric in self.collector.collect()
        ]
        final = self.path()
        temporary = final.with_name(f".{final.name}.tmp")
        text = json.dumps(families)
        with self._write_lock:
            if text == self._last and final.exists():
                return  # an idle worker rewrites nothing
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, final)
            self._last = text

    def start(self) -> None:
        """Write every ``interval`` seconds on a daemon thread, and once more at exit."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="coordination-metrics-snapshots", daemon=True
        )
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the thread and write a final snapshot."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        atexit.unregister(self.stop)
        self._write_quietly()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._write_quietly()

    def _write_quietly(self) -> None:
        try:
            self.write()
        except Exception:  # a full disk must not kill the worker; the next write may work
            self._logger.warning(
                "cannot write the metrics snapshot",
                exc_info=True,
                extra=log_extra(directory=str(self.directory)),
            )


class MergedSnapshotsCollector:
    """Merges every worker's snapshot (see the module docstring for the rules)."""

    def __init__(
        self, directory: str | os.PathLike[str], *, writer: SnapshotWriter | None = None
    ) -> None:
        self.directory = Path(directory)
        self.writer = writer

    def describe(self) -> Iterable[Metric]:
        return self.writer.collector.describe() if self.writer is not None else []

    def collect(self) -> Iterator[Metric]:
        if self.writer is not None:
            self.writer.write()  # the serving worker's own numbers, up to this moment
        self._retire_dead()
        merged: dict[str, tuple[dict[str, Any], dict[_Key, float]]] = {}
        # Shared: a fold (exclusive) never runs halfway through this read.
        with _locked(self.directory / _LOCK, fcntl.LOCK_SH):
            snapshots = list(self._snapshots())
        for alive, families in snapshots:
            for family in families:
                meta, values = merged.setdefault(family["name"], (family, {}))
                for sample_name, labels, value in family["samples"]:
                    _merge(values, meta["type"], family["name"], sample_name, labels, value, alive)
        for name, (meta, values) in merged.items():
            metric = Metric(name, meta["help"], meta["type"], meta["unit"])
            for (sample_name, labels), value in values.items():
                metric.add_sample(sample_name, dict(labels), value)
            yield metric

    def _snapshots(self) -> Iterable[tuple[bool, list[dict[str, Any]]]]:
        """(written by a live worker, families) for every snapshot, the retired one first."""
        retired, folded = _read_retired(self.directory / _RETIRED)
        yield False, retired
        for path in sorted(self.directory.glob(f"{_PREFIX}*.json")):
            pid = _pid_of(path)
            if pid is None or path.name in folded:
                continue  # not a worker's snapshot, or already counted in the retired one
            families = _read(path)
            if families is not None:
                yield pid_alive(pid), families

    def _retire_dead(self) -> None:
        """Fold exited workers' snapshots into the retired one, so files stay bounded.

        Under an exclusive lock on the directory's lock file, so two workers serving a
        scrape at once never fold the same snapshot twice and no scrape reads halfway
        through. The retired file (replaced atomically) names the snapshots it has absorbed
        until they are removed, so a crash between the two steps counts none twice.
        """
        dead = [
            path
            for path in self.directory.glob(f"{_PREFIX}*.json")
            if (pid := _pid_of(path)) is not None and not pid_alive(pid)
        ]
        if not dead:
            return
        with _locked(self.directory / _LOCK, fcntl.LOCK_EX):
            retired_path = self.directory / _RETIRED
            retired, folded = _read_retired(retired_path)
            sources = [retired]
            sources += [_read(p) or [] for p in dead if p.name not in folded and p.exists()]
            totals: dict[str, tuple[dict[str, Any], dict[_Key, float]]] = {}
            for families in sources:
                for family in families:
                    if family["type"] not in ("counter", "histogram", "summary"):
                        continue  # gauges come from live workers only
                    meta, values = totals.setdefault(family["name"], (family, {}))
                    for name, labels, value in family["samples"]:
                        _merge(values, meta["type"], family["name"], name, labels, value, False)
            absorbed = [
                {
                    "name": name,
                    "type": meta["type"],
                    "unit": meta["unit"],
                    "help": meta["help"],
                    "samples": [[n, dict(labels), v] for (n, labels), v in values.items()],
                }
                for name, (meta, values) in totals.items()
            ]
            names = sorted(folded | {p.name for p in dead})
            _write_json(retired_path, {"families": absorbed, "folded": names})
            for path in dead:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            _write_json(retired_path, {"families": absorbed, "folded": []})


def _read_retired(path: Path) -> tuple[list[dict[str, Any]], set[str]]:
    try:
        retired = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [], set()
    if not isinstance(retired, dict):
        return [], set()
    return list(retired.get("families") or []), set(retired.get("folded") or [])


def _write_json(path: Path, value: object) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value), encoding="utf-8")
    os.replace(temporary, path)


def _pid_of(path: Path) -> int | None:
    """The writer's pid from ``coordination_<pid>-<token>.json`` (or ``_<pid>.json``);
    ``None`` for any other file (the retired snapshot among them)."""
    stem = path.stem.removeprefix(_PREFIX).split("-", 1)[0]
    return int(stem) if stem.isascii() and stem.isdigit() else None


def _read(path: Path) -> list[dict[str, Any]] | None:
    try:
        families = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # removed meanwhile, or not ours
    return families if isinstance(families, list) else None


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _merge(
    values: dict[_Key, float],
    typ: str,
    family: str,
    sample_name: str,
    labels: dict[str, str],
    value: float,
    alive: bool,
) -> None:
    key = (sample_name, tuple(sorted(labels.items())))
    additive = typ in ("counter", "histogram") or (typ == "summary" and "quantile" not in labels)
    if additive or (alive and family in ADDITIVE_GAUGES):
        values[key] = values.get(key, 0.0) + value
    elif alive:
        values[key] = max(values.get(key, value), value)


# --- automatic mode: a pre-fork server's workers find each other -------------------------


def prefork_master() -> int | None:
    """The pid of the pre-fork server master this worker serves under, or ``None``.

    gunicorn's arbiter puts ``SERVER_SOFTWARE=gunicorn/<version>`` into its environment
    before it forks any worker (whatever the worker class, WSGI or ASGI), so its workers
    are the processes that see it and whose parent is the arbiter; uvicorn ``--workers``
    starts each worker from its supervisor with multiprocessing. Ask from a process that
    serves requests: with ``--preload`` the master itself runs this module too, but it
    never serves one.
    """
    if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return os.getppid()
    # uvicorn's supervisors start each worker with uvicorn._subprocess.subprocess_started
    # as its multiprocessing target; other children of a process that uses uvicorn don't.
    if "uvicorn._subprocess" in sys.modules:
        parent = multiprocessing.parent_process()
        if parent is not None and parent.pid is not None:
            return parent.pid
    return None


def _process_start(pid: int) -> str:
    """When process ``pid`` started, as a token (``"0"`` where the platform cannot say).

    Linux: the boot id and the start time in clock ticks (``/proc/<pid>/stat`` field 22),
    so neither a reused pid nor a reboot matches an older master's directory.
    """
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii")
        return f"{boot.strip()[:8]}.{stat_line.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError, UnicodeDecodeError):
        pass
    try:
        import psutil

        return str(int(psutil.Process(pid).create_time() * 1000))
    except Exception:  # psutil missing, or the process gone: the pid alone keys it
        return "0"


def _runtime_root() -> Path:
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())


def shared_snapshot_dir(master_pid: int, *, root: Path | None = None) -> Path:
    """The snapshot directory of the workers of ``master_pid``, created 0700 if need be.

    Raises ``PermissionError`` when the path exists but is not a private directory of this
    user (another user could otherwise feed numbers into this service's metrics), and
    removes the directories of this user's masters that are gone.
    """
    root = root or _runtime_root()
    uid = os.getuid()
    path = root / f"{_DIR_PREFIX}{uid}-{master_pid}-{_process_start(master_pid)}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise PermissionError(f"{path} is not a private directory of this user")
    _remove_stale(root, uid, keep=path)
    return path


def _remove_stale(root: Path, uid: int, *, keep: Path) -> None:
    for path in root.glob(f"{_DIR_PREFIX}{uid}-*"):
        if path == keep:
            continue
        pid, _, started = path.name.removeprefix(f"{_DIR_PREFIX}{uid}-").partition("-")
        if not pid.isdigit() or (pid_alive(int(pid)) and _process_start(int(pid)) == started):
            continue  # not ours, or its master still runs
        with contextlib.suppress(OSError):
            if path.lstat().st_uid == uid and not path.is_symlink():
                shutil.rmtree(path)


class _Sources:
    """Several collectors read as one (what a worker's snapshot holds)."""

    def __init__(self, collectors: Iterable[Any]) -> None:
        self.collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()

    def describe(self) -> Iterable[Metric]:
        return ()


class AutoMultiprocess:
    """The whole service's metrics under a pre-fork server, with no setting.

    ``activate()`` runs at a process's first request: in a worker of a pre-fork server it
    starts this worker's snapshot thread in the master's shared directory, and ``registry``
    becomes the merged view to serve; anywhere else it does nothing and ``registry`` stays
    ``None`` (serve the process's own). ``master`` finds the master (tests pass their own).
    """

    def __init__(
        self,
        collectors: Iterable[Any],
        *,
        logger: logging.Logger | None = None,
        interval: float = AUTO_INTERVAL,
        master: Callable[[], int | None] = prefork_master,
        root: Path | None = None,
    ) -> None:
        self._sources = _Sources(collectors)
        self.logger = logger or component_logger("observability")
        self._interval = interval
        self._master = master
        self._root = root
        self._lock = threading.Lock()
        self._decided_in: int | None = None  # the pid that decided (a fork decides again)
        self.registry: Any = None
        self.directory: Path | None = None
        self.writer: SnapshotWriter | None = None

    def activate(self) -> bool:
        """Share this worker's numbers if it is one of a pre-fork server's; True if so."""
        pid = os.getpid()
        with self._lock:
            if self._decided_in == pid:
                return self.registry is not None
            self._decided_in, self.registry, self.directory, self.writer = pid, None, None, None
            master = self._master()
            if master is None:
                return False
            try:
                directory = shared_snapshot_dir(master, root=self._root)
                writer = SnapshotWriter(
                    self._sources, directory, interval=self._interval, logger=self.logger
                )
            except (OSError, ValueError) as exc:
                self.logger.warning(
                    "metrics are this worker's alone: cannot share a snapshot directory "
                    "with the other workers (%s)",
                    exc,
                    extra=log_extra(
                        worker_pid=pid, master_pid=master, error_type=type(exc).__name__
                    ),
                )
                return False
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry()
            registry.register(MergedSnapshotsCollector(directory, writer=writer))
            writer.start()
            self.registry, self.directory, self.writer = registry, directory, writer
            self.logger.info(
                "worker %d of the pre-fork server %d: /metrics merges every worker's "
                "snapshot in %s",
                pid,
                master,
                directory,
                extra=log_extra(worker_pid=pid, master_pid=master, directory=str(directory)),
            )
            return True

    def close(self) -> None:
        """Stop this worker's snapshot thread (writing a last snapshot)."""
        if self.writer is not None:
            self.writer.stop()
