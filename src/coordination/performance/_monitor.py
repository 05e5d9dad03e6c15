"""``CoordinationPerformanceMonitor``: the spec's performance monitor.

Recording touches only the operation's own recorder (see ``_operation``); everything that
reads — reports, health, exporters, threshold checks — takes snapshots when asked.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from .. import _time
from .._bounded import BoundedNames
from .._config import CoordinationConfig, resolve_config
from .._logging import component_logger
from .._status import HealthStatus, worst_status
from ._operation import FLUSH_SIZE, OperationRecorder, OperationStats
from ._report import operation_entry, summary_entry
from ._sampler import ResourceSampler
from ._thresholds import (
    PerformanceAlert,
    PerformanceAlertHook,
    PerformanceThresholds,
    ThresholdBreach,
    parse_operation_thresholds,
    thresholds_from_mapping,
)
from ._timer import NullTimer, OperationTimer, timer_class

__all__ = ["CoordinationPerformanceMonitor"]

# A category rather than a message: a name, optionally with a status code ("HTTP 503").
_ERROR_NAME = re.compile(r"^[A-Za-z_][\w.]{0,63}(?: \d{3})?$")
_RECENT_ALERTS = 50


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
        self._check_lock = threading.Lock()  # thresholds and statuses
        self._started = self._clock()

        self._default_thresholds = PerformanceThresholds(
            p95_ms=cfg.latency_p95_threshold_ms,
            p99_ms=cfg.latency_p99_threshold_ms,
            error_rate=cfg.error_rate_threshold,
        )
        self._thresholds: dict[str, PerformanceThresholds] = {}
        if cfg.operation_thresholds:
            for name, limits in parse_operation_thresholds(cfg.operation_thresholds).items():
                self.set_thresholds(name, limits)
        for name, given in (thresholds or {}).items():
            self.set_thresholds(name, given)
        self._hooks: list[PerformanceAlertHook] = list(alert_hooks)
        self._statuses: dict[str, HealthStatus] = {}
        self._breaches: dict[str, tuple[ThresholdBreach, ...]] = {}
        self._alerts: deque[PerformanceAlert] = deque(maxlen=_RECENT_ALERTS)
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
        elif isinstance(thresholds, Mapping):
            thresholds = thresholds_from_mapping(thresholds, f"thresholds for {name!r}")
        elif not isinstance(thresholds, PerformanceThresholds):
            raise TypeError(
                f"thresholds must be PerformanceThresholds or a mapping, not {thresholds!r}"
            )
        with self._check_lock:
            if name is None:
                self._default_thresholds = thresholds
                self._thresholds = {op: t.over(thresholds) for op, t in self._thresholds.items()}
            else:
                self._thresholds[_checked_name(name)] = thresholds.over(self._default_thresholds)

    def thresholds_for(self, name: str) -> PerformanceThresholds:
        """The limits that apply to operation ``name``."""
        return self._thresholds.get(name, self._default_thresholds)

    def add_alert_hook(self, hook: PerformanceAlertHook) -> None:
        """Call ``hook(alert)`` whenever an operation's status changes."""
        if not callable(hook):
            raise TypeError(f"an alert hook must be callable, not {hook!r}")
        self._hooks.append(hook)

    def check_thresholds(self) -> dict[str, HealthStatus]:
        """Judge every operation now (reports, health and the sampler call this)."""
        now = self._clock()
        statuses = {}
        for name, recorder in list(self._recorders.items()):
            if self._needs_judging(name):
                statuses[name] = self._judge(recorder.snapshot(now))
            else:
                statuses[name] = HealthStatus.HEALTHY
        return statuses

    def _needs_judging(self, name: str) -> bool:
        # Without limits an operation is HEALTHY; judge it only to record a recovery.
        return not self.thresholds_for(name).is_empty or name in self._statuses

    def _on_rotate(self, recorder: OperationRecorder) -> None:
        if self._needs_judging(recorder.name):
            self._judge(recorder.snapshot(self._clock()))

    def _judge(self, stats: OperationStats) -> HealthStatus:
        status, breaches = self.thresholds_for(stats.name).evaluate(stats)
        with self._check_lock:
            previous = self._statuses.get(stats.name, HealthStatus.HEALTHY)
            if status is HealthStatus.HEALTHY:  # only troubled operations are kept here
                self._statuses.pop(stats.name, None)
                self._breaches.pop(stats.name, None)
            else:
                self._statuses[stats.name] = status
                self._breaches[stats.name] = breaches
            if previous == status:
                return status
            alert = PerformanceAlert(stats.name, status, previous, breaches, _time.utc_timestamp())
            self._alerts.append(alert)
            hooks = list(self._hooks)
        self._logger.warning(
            "operation %r is now %s (was %s)%s",
            stats.name,
            status.value,
            previous.value,
            "".join(f"; {b.metric} {b.value:.4g} > {b.threshold:g}" for b in breaches),
        )
        for hook in hooks:
            try:
                hook(alert)
            except Exception:  # a broken hook must not break recording
                self._logger.exception("alert hook %r failed", hook)
        return status

    # --- reading ---------------------------------------------------------------------

    def operation_stats(self) -> dict[str, OperationStats]:
        """A consistent snapshot of every operation, for exporters (seconds)."""
        now = self._clock()
        return {name: r.snapshot(now) for name, r in list(self._recorders.items())}

    def get_performance_report(self) -> dict[str, Any]:
        """JSON-serialisable statistics; latencies in milliseconds, as in the spec."""
        stats = self.operation_stats()
        statuses = {name: self._judge(s) for name, s in stats.items()}
        status = worst_status(*statuses.values()) if self.enabled else HealthStatus.UNKNOWN
        return {
            "status": status.value,
            "enabled": self.enabled,
            "uptime_seconds": self._clock() - self._started,
            **summary_entry(stats.values()),
            "operations": {
                name: operation_entry(s, statuses[name], self._breaches.get(name, ()))
                for name, s in stats.items()
            },
            "thresholds": {
                "default": _limits(self._default_thresholds),
                "operations": {op: _limits(t) for op, t in self._thresholds.items()},
            },
            "alerts": [a.to_dict() for a in list(self._alerts)],
            "system": self._sampler.summary(),
            "timestamp": _time.utc_timestamp(),
        }

    def get_health_status(self) -> dict[str, Any]:
        """``status`` (worst over operations) and the operations that break a threshold."""
        statuses = self.check_thresholds()
        if not self.enabled:
            return {"status": HealthStatus.UNKNOWN.value, "enabled": False}
        troubled = {n: s for n, s in statuses.items() if s is not HealthStatus.HEALTHY}
        return {
            "status": worst_status(*statuses.values()).value,
            "enabled": True,
            "operations": {
                name: {
                    "status": status.value,
                    "breaches": [b.to_dict() for b in self._breaches.get(name, ())],
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
    return "Error"  # a free-text message (as the spec passes str(e)): unbounded otherwise


def _limits(thresholds: PerformanceThresholds) -> dict[str, Any]:
    return {
        "p95_ms": thresholds.p95_ms,
        "p99_ms": thresholds.p99_ms,
        "error_rate": thresholds.error_rate,
        "min_samples": thresholds.min_samples,
    }
