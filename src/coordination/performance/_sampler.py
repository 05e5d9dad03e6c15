"""``ResourceSampler``: one daemon thread sampling the process every few seconds.

psutil is an optional extra (``coordination-systems[system]``); it is imported when the
sampler starts, and without it the sampler logs once and reports ``available: false``
instead of failing. Nothing raised while sampling ever reaches the application: a failed
sample is logged (once per kind of error) and the thread carries on.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .. import _time
from .._logging import component_logger, log_extra

__all__ = ["ResourceSampler"]

_AVERAGED = ("cpu_percent", "memory_rss_bytes", "threads", "open_files")


class ResourceSampler:
    """Samples CPU %, resident memory, threads, open files and GC counts of this process.

    >>> with ResourceSampler(interval=5.0) as sampler:  # doctest: +SKIP
    ...     sampler.summary()["latest"]["threads"]
    """

    def __init__(
        self,
        *,
        interval: float,
        max_points: int,
        logger: logging.Logger | None = None,
        on_sample: Callable[[], object] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points!r}")
        self.interval = interval
        self._samples: deque[dict[str, Any]] = deque(maxlen=max_points)
        self._logger = logger or component_logger("performance")
        self._on_sample = on_sample  # e.g. threshold checks, run on this thread
        self._lock = threading.Lock()
        self._stop = threading.Event()  # a fresh one per start: a late thread stays stopped
        self._thread: threading.Thread | None = None
        self._process: Any = None
        self._unavailable: str | None = None
        self._reported: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (harmless when it already runs); takes a first sample now."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._process is None and self._unavailable is None:
                self._process = self._open_process()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(self._stop,),
                name="coordination-resource-sampler",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait (up to ``timeout`` seconds) for it to end."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def __enter__(self) -> ResourceSampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- sampling ------------------------------------------------------------------

    def _open_process(self) -> Any:
        try:
            import psutil
        except ImportError:
            self._unavailable = "psutil is not installed (pip install coordination-systems[system])"
            self._logger.warning(
                "resource sampling is off: %s",
                self._unavailable,
                extra=log_extra(component="resource sampler"),
            )
            return None
        process = psutil.Process()
        process.cpu_percent(None)  # the first call only sets the baseline
        return process

    def _run(self, stop: threading.Event) -> None:
        while True:
            self.sample_now()
            if stop.wait(self.interval):
                return

    def sample_now(self) -> dict[str, Any] | None:
        """Take one sample now (the thread calls this); ``None`` if it failed. Never raises."""
        sample: dict[str, Any] | None = None
        try:
            sample = self._take()
            if sample is not None:
                self._samples.append(sample)
        except Exception as exc:  # a sampler must never break the application
            self._report_once(exc, "resource sample failed")
        if self._on_sample is not None:
            try:
                self._on_sample()
            except Exception as exc:
                self._report_once(exc, "periodic check failed")
        return sample

    def _take(self) -> dict[str, Any] | None:
        counts = gc.get_count()
        sample: dict[str, Any] = {
            "timestamp": _time.utc_timestamp(),
            "gc_counts": list(counts),
        }
        process = self._process
        if process is None:
            return sample if self._unavailable is not None else None
        with process.oneshot():
            sample["cpu_percent"] = float(process.cpu_percent(None))
            sample["memory_rss_bytes"] = int(process.memory_info().rss)
            sample["threads"] = int(process.num_threads())
            num_fds = getattr(process, "num_fds", None)
            sample["open_files"] = int(num_fds() if num_fds else len(process.open_files()))
        return sample

    def _report_once(self, exc: Exception, what: str) -> None:
        kind = f"{what}:{type(exc).__qualname__}"
        if kind in self._reported or len(self._reported) > 100:
            return
        self._reported.add(kind)
        self._logger.warning(
            "%s (%s: %s); the sampler carries on",
            what,
            type(exc).__name__,
            exc,
            extra=log_extra(component="resource sampler", error_type=type(exc).__name__),
        )

    # --- reading -------------------------------------------------------------------

    def samples(self) -> list[dict[str, Any]]:
        """The samples kept (at most ``max_points``), oldest first."""
        return list(self._samples)

    def latest(self) -> dict[str, Any] | None:
        """The newest sample, or ``None`` before the first."""
        samples = self._samples
        return samples[-1] if samples else None  # one read: safe against the sampler thread

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable: availability, the latest sample and averages over those kept."""
        samples = list(self._samples)
        summary: dict[str, Any] = {
            "available": self._unavailable is None,
            "running": self.running,
            "interval_seconds": self.interval,
            "samples": len(samples),
            "latest": samples[-1] if samples else None,
            "averages": {},
        }
        if self._unavailable is not None:
            summary["reason"] = self._unavailable
        for key in _AVERAGED:
            values = [s[key] for s in samples if key in s]
            if values:
                summary["averages"][key] = sum(values) / len(values)
        return summary
