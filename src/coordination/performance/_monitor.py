"""``CoordinationPerformanceMonitor``: latency, outcomes and throughput per operation.

Recording touches only the operation's own recorder (see ``_operation``); everything that
reads — reports, health, exporters, threshold checks — takes snapshots when asked.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any

from .. import _time
from .._bounded import BoundedNames
from .._config import CoordinationConfig, resolve_config
from .._logging import component_logger
from .._status import HealthStatus, worst_status
from ._operation import FLUSH_SIZE, MonitorSnapshot, OperationRecorder, OperationSnapshot
from ._report import performance_report
from ._sampler import ResourceSampler
from ._thresholds import (
    PerformanceAlertHook,
    PerformanceThresholds,
    parse_operation_thresholds,
    thresholds_from_mapping,
)
from ._timer import NullTimer, OperationTimer, timer_class
from ._watch import ThresholdWatch

__all__ = ["CoordinationPerformanceMonitor"]

# A category rather than a message: a name, optionally with a status code ("HTTP 503").
_ERROR_NAME = re.compile(r"^[A-Za-z_][\w.]{0,63}(?: \d{3})?$")


class CoordinationPerformanceMonitor:
    """Latency, outcomes and throughput per operation; resource samples; thresholds.

    >>> monitor = CoordinationPerformanceMonitor({"max_operation_names": 100})
    >>> with monitor.record_operation("create_user"):
    ...     pass
    >>> monitor.get_performance_report()["operations"]["create_user"]["count"]
    1

    ``clock`` (default ``time.perf_counter``) times operations and moves the recent window
    (``window_seconds``, the last minute by default), so tests can drive both.
    """

    def __init__(
        self,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        *,
        debug: bool = False,
        clock: _time.Clock | None = None,
        window_seconds: float = 60.0,
        thresholds: Mapping[str, PerformanceThresholds | Mapping[str, Any]] | None = None,
        alert_hooks: Iterable[PerformanceAlertHook] = (),
    ) -> None:
        cfg = resolve_config(config)
        if not (isinstance(window_seconds, int | float) and 0 < window_seconds < math.inf):
            raise ValueError(f"window_seconds must be a positive number, got {window_seconds!r}")
        self.config = cfg
        self.enabled = cfg.enable_performance_monitoring
        self._logger = component_logger("performance", debug=debug or cfg.debug)
        self._clock: _time.Clock = clock or _time.perf_counter
        self._window_seconds = float(window_seconds)
        self._names = BoundedNames(cfg.max_operation_names, logger=self._logger)
        self._recorders: dict[str, OperationRecorder] = {}
        self._timers: dict[str, type[OperationTimer] | type[NullTimer]] = {}
        self._lock = threading.Lock()  # creating recorders
        self._started = self._clock()
        self._watch = ThresholdWatch(
            PerformanceThresholds(
                p95_ms=cfg.latency_p95_threshold_ms,
                p99_ms=cfg.latency_p99_threshold_ms,
                error_rate=cfg.error_rate_threshold,
            ),
            logger=self._logger,
            hooks=alert_hooks,
        )
        if cfg.operation_thresholds:
            for name, limits in parse_operation_thresholds(cfg.operation_thresholds).items():
                self.set_thresholds(name, limits)
        for name, given in (thresholds or {}).items():
            self.set_thresholds(name, given)
        self._sampler = ResourceSampler(
            interval=cfg.collection_interval,
            max_points=cfg.max_data_points,
            logger=self._logger,
            on_sample=self.check_thresholds,
        )

    # --- recording -----------------------------------------------------------------

    def record_operation(self, name: str) -> OperationTimer | NullTimer:
        """Time a ``with`` block as one operation; an exception in it is a failure."""
        try:
            return self._timers[name]()
        except (KeyError, TypeError):  # a new name, or not a name at all
            return self._timer_for(name)()

    def record_success(self, name: str) -> None:
        """Count a successful operation whose duration was not measured."""
        if self.enabled:
            self._recorder(name).add_outcome(self._clock(), None, True, None)

    def record_failure(self, name: str, error: object = None) -> None:
        """Count a failed operation; ``error`` is an exception, its type, or a message."""
        if self.enabled:
            self._recorder(name).add_outcome(self._clock(), None, False, _error_type(error))

    def record_duration(
        self, name: str, seconds: float, success: bool = True, error: object = None
    ) -> None:
        """Record an operation timed elsewhere (``seconds >= 0``); an ``error`` means failure."""
        if not (
            isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and 0 <= seconds < math.inf
        ):
            raise ValueError(
                f"record_duration({name!r}): seconds must be a finite number >= 0, got {seconds!r}"
            )
        if not self.enabled:
            return
        recorder = self._recorder(name)
        now = self._clock()
        if success and error is None:
            if now >= recorder.rotate_at:
                recorder.flush(now)
            pending = recorder.pending
            pending.append(float(seconds))
            if len(pending) >= FLUSH_SIZE:
                recorder.flush(now)
        else:
            recorder.add_outcome(now, float(seconds), False, _error_type(error))

    def _timer_for(self, name: str) -> type[OperationTimer] | type[NullTimer]:
        admitted = self._names.admit(_checked_name(name))
        timer: type[OperationTimer] | type[NullTimer]
        if not self.enabled:
            timer = NullTimer
        else:
            timer = self._timers.get(admitted) or timer_class(self._recorder(admitted), self._clock)
        if admitted == name:  # overflowing names are not cached: the table stays bounded
            self._timers[name] = timer
        return timer

    def _recorder(self, name: str) -> OperationRecorder:
        try:
            recorder = self._recorders.get(name)
        except TypeError:  # unhashable: not a name
            recorder = None
        if recorder is not None:
            return recorder
        admitted = self._names.admit(_checked_name(name))
        with self._lock:
            recorder = self._recorders.get(admitted)
            if recorder is None:
                recorder = OperationRecorder(
                    admitted,
                    now=self._clock(),
                    window_seconds=self._window_seconds,
                    on_rotate=self._on_rotate,
                )
                self._recorders[admitted] = recorder
        return recorder

    def hot_path(self, name: str) -> tuple[OperationRecorder, _time.Clock] | None:
        """The recorder and clock a decorator records into; ``None`` when disabled."""
        return (self._recorder(name), self._clock) if self.enabled else None

    # --- resource sampling -----------------------------------------------------------

    def start_monitoring(self) -> None:
        """Start sampling the process every ``collection_interval`` seconds (idempotent)."""
        if self.enabled:
            self._sampler.start()

    def stop_monitoring(self) -> None:
        """Stop the sampling thread and wait for it to end."""
        self._sampler.stop()

    def __enter__(self) -> CoordinationPerformanceMonitor:
        self.start_monitoring()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_monitoring()

    @property
    def sampler(self) -> ResourceSampler:
        return self._sampler

    # --- thresholds and alerts --------------------------------------------------------

    def set_thresholds(
        self,
        name: str | None,
        thresholds: PerformanceThresholds | Mapping[str, Any] | None = None,
        **limits: Any,
    ) -> None:
        """Limits for operation ``name`` over the default ones (``name=None``: the default).

        >>> CoordinationPerformanceMonitor({}).set_thresholds("checkout", p95_ms=250)
        """
        if thresholds is None:
            thresholds = thresholds_from_mapping(limits, f"set_thresholds({name!r})")
        self._watch.set(None if name is None else _checked_name(name), thresholds)

    def thresholds_for(self, name: str) -> PerformanceThresholds:
        """The limits that apply to operation ``name``."""
        return self._watch.limits_for(name)

    def add_alert_hook(self, hook: PerformanceAlertHook) -> None:
        """Call ``hook(alert)`` whenever an operation's status changes."""
        self._watch.add_hook(hook)

    def check_thresholds(self) -> dict[str, HealthStatus]:
        """Judge every operation now (reports, health and the sampler call this)."""
        now = self._clock()
        watch = self._watch
        return {
            name: watch.judge(recorder.snapshot(now))
            if watch.needs_judging(name)
            else HealthStatus.HEALTHY
            for name, recorder in list(self._recorders.items())
        }

    def _on_rotate(self, recorder: OperationRecorder) -> None:
        if self._watch.needs_judging(recorder.name):
            self._watch.judge(recorder.snapshot(self._clock()))

    # --- reading ---------------------------------------------------------------------

    def snapshot(self) -> MonitorSnapshot:
        """Every operation's ``OperationSnapshot`` and the latest resource sample, frozen.

        The one read every reader (report, exporters, status page) builds on.
        """
        now = self._clock()
        operations = {name: r.snapshot(now) for name, r in list(self._recorders.items())}
        latest = self._sampler.latest()
        return MonitorSnapshot(
            enabled=self.enabled,
            uptime_seconds=now - self._started,
            operations=MappingProxyType(operations),
            resources=None if latest is None else MappingProxyType(dict(latest)),
        )

    def operation_stats(self) -> dict[str, OperationSnapshot]:
        """``snapshot().operations`` as a plain dict: a snapshot of every operation."""
        return dict(self.snapshot().operations)

    def get_performance_report(self) -> dict[str, Any]:
        """JSON-serialisable statistics; latencies in milliseconds. Keys: ``status`` (the
        worst operation's; UNKNOWN when disabled), ``enabled``, ``uptime_seconds``,
        ``total_operations``, ``successes``, ``failures``, ``success_rate``,
        ``error_rate``, ``throughput_per_second``, ``response_times`` (``{count, mean,
        min, max, p50, p90, p95, p99}``), ``recent`` (the same over the recent window,
        with ``window_seconds``), ``operations`` (``{name: {...}}``: each one's counts,
        rates, ``errors_by_type``, ``response_times``, ``recent`` and ``breaches``),
        ``thresholds``, ``alerts``, ``system`` and ``timestamp`` (UTC, ISO-8601). Every
        latency is ``0.0`` before anything is timed."""
        return performance_report(self.snapshot(), self._watch, self._sampler.summary())

    def get_health_status(self) -> dict[str, Any]:
        """``status`` (worst over operations), how many operations are timed, and those
        that break a threshold (``breaching``, by name)."""
        statuses = self.check_thresholds()
        if not self.enabled:
            return {"status": HealthStatus.UNKNOWN.value, "enabled": False}
        troubled = {n: s for n, s in statuses.items() if s is not HealthStatus.HEALTHY}
        return {
            "status": worst_status(*statuses.values()).value,
            "enabled": True,
            # a count, as in the error handler's health: {} read as "nothing timed"
            "operations": len(statuses),
            "breaching": {
                name: {
                    "status": status.value,
                    "breaches": [b.to_dict() for b in self._watch.breaches(name)],
                }
                for name, status in troubled.items()
            },
            "resource_sampling": self._sampler.running,
        }

    def operation_memory_bytes(self, name: str) -> int:
        """Bytes held by one operation's statistics (constant however much it records)."""
        recorder = self._recorders.get(name)
        if recorder is None:
            raise KeyError(f"no operation named {name!r} has been recorded")
        return recorder.memory_bytes()


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"an operation name must be a non-empty string, got {name!r}")
    return name


def _error_type(error: object) -> str:
    """The key an error is counted under: its type's name, or a short category string."""
    if isinstance(error, BaseException):
        return type(error).__qualname__
    if isinstance(error, type) and issubclass(error, BaseException):
        return error.__qualname__
    if isinstance(error, str) and _ERROR_NAME.match(error):
        return error  # a category such as "timeout" or "HTTP 503"
    return "Error"  # a free-text message (such as str(e)): unbounded otherwise
