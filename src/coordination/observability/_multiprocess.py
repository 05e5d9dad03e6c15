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
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from .._logging import component_logger
from .._process import pid_alive
from ._collector import ADDITIVE_GAUGES, CoordinationCollector

__all__ = ["MergedSnapshotsCollector", "SnapshotWriter"]

_PREFIX = "coordination_"
_Key = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels


class SnapshotWriter:
    """Writes this process's collected families to ``<directory>/coordination_<pid>.json``."""

    def __init__(
        self,
        collector: CoordinationCollector,
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
        pid = os.getpid()  # read each time: the writer may have been created before a fork
        final = self.directory / f"{_PREFIX}{pid}.json"
        temporary = self.directory / f".{_PREFIX}{pid}.json.tmp"
        with self._write_lock:
            temporary.write_text(json.dumps(families), encoding="utf-8")
            os.replace(temporary, final)

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
            self._logger.warning("cannot write the metrics snapshot", exc_info=True)


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
        merged: dict[str, tuple[dict[str, Any], dict[_Key, float]]] = {}
        for pid, families in self._snapshots():
            alive = pid_alive(pid)
            for family in families:
                meta, values = merged.setdefault(family["name"], (family, {}))
                for sample_name, labels, value in family["samples"]:
                    _merge(values, meta["type"], family["name"], sample_name, labels, value, alive)
        for name, (meta, values) in merged.items():
            metric = Metric(name, meta["help"], meta["type"], meta["unit"])
            for (sample_name, labels), value in values.items():
                metric.add_sample(sample_name, dict(labels), value)
            yield metric

    def _snapshots(self) -> Iterable[tuple[int, list[dict[str, Any]]]]:
        for path in sorted(self.directory.glob(f"{_PREFIX}*.json")):
            try:
                pid = int(path.stem.removeprefix(_PREFIX))
                families = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # removed meanwhile, or not ours
            yield pid, families


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
