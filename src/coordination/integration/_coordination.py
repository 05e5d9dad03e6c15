"""``Coordination``: one validator, error handler and monitor, and the doors built on them.

A process has one such set, ``default_coordination()``, and every door uses it unless told
otherwise: a breaker opened through a decorated function shows in the middleware's
``/health/ready`` and ``/metrics``. Build another set for isolation (tests, two apps in
one process), as resilience4j builds breakers from a registry:

>>> shop = Coordination({"max_retries": 1, "base_delay": 0})
>>> @shop.handle_errors(operation_name="inventory.reserve")
... def reserve(item: str) -> str:
...     return item
>>> reserve("book")
'book'
>>> shop.error_handler.get_error_report()["operations"]["inventory.reserve"]["calls"]
1
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .._config import CoordinationConfig, resolve_config
from .._defaults import ProcessDefault, process_config, replace_process_config
from ..error_handling import CoordinationErrorHandler, default_error_handler, handle_errors
from ..performance import CoordinationPerformanceMonitor, default_monitor, track_performance
from ..validation import CoordinationValidator, default_validator, validate_input
from ._asgi import CoordinationASGIMiddleware
from ._decorators import coordinate_operation
from ._events import CoordinationEventProcessor
from ._reload import ConfigReloader
from ._wrapper import CoordinationServiceWrapper
from ._wsgi import CoordinationMiddleware

if TYPE_CHECKING:  # observability is imported when a reader is first built
    from ..observability import CoordinationHealthChecker, CoordinationMetricsExporter, StatusPage

__all__ = ["Coordination", "default_coordination", "reload_config"]

P = ParamSpec("P")
R = TypeVar("R")


class Coordination:
    """A validator, an error handler and a performance monitor that doors share.

    ``Coordination(config)`` makes the three from ``config`` (a ``CoordinationConfig``, a
    mapping over the environment's settings, or None for the environment); any of them
    may be given instead. Doors built from the set (``wsgi``, ``asgi``, ``wrap``,
    ``event_processor``, the decorators, ``health_checker``, ``metrics_exporter``,
    ``status_page``) use its components.

    Every door, decorator and reader also takes ``coordination=``: a ``Coordination``, or
    anything with its ``config``, ``validator``, ``error_handler`` and ``monitor`` (one
    without them is a ``TypeError``). A door (wrapper, middlewares, event processor,
    ``coordinate_operation``) given a component as well uses it in place of that part of
    the set; a one-component decorator (``handle_errors``, ``track_performance``,
    ``validate_input``) or a reader (health checker, metrics exporter, status page,
    OpenTelemetry bridge) given both is a ``TypeError``.
    """

    __slots__ = ("_reloader", "config", "error_handler", "monitor", "validator")

    def __init__(
        self,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        *,
        validator: CoordinationValidator | None = None,
        error_handler: CoordinationErrorHandler | None = None,
        monitor: CoordinationPerformanceMonitor | None = None,
        debug: bool = False,
    ) -> None:
        cfg = resolve_config(config)
        self.config = cfg
        self.validator = validator or CoordinationValidator(config=cfg, debug=debug)
        self.error_handler = error_handler or CoordinationErrorHandler(cfg, debug=debug)
        self.monitor = monitor or CoordinationPerformanceMonitor(cfg, debug=debug)
        self._reloader = ConfigReloader(self, config, debug=debug or cfg.debug)
        if cfg.reload_on_sighup:
            self._reloader.install_sighup()
        self._reloader.watch(cfg.config_watch_interval)

    def __repr__(self) -> str:
        default = " (the process default)" if _DEFAULT.peek() is self else ""
        operations = len(self.error_handler.operation_stats())
        return f"<Coordination{default}: {operations} protected operation(s)>"

    # --- what readers see ---------------------------------------------------------------

    def components(self) -> dict[str, object]:
        """The three, by the names health, metrics and the status page show."""
        return {
            "validator": self.validator,
            "error_handler": self.error_handler,
            "performance_monitor": self.monitor,
        }

    def status(self) -> dict[str, Any]:
        """``{"validation": ..., "error_handling": ..., "performance": ...}``: the three
        components' reports."""
        return {
            "validation": self.validator.get_validation_report(),
            "error_handling": self.error_handler.get_error_report(),
            "performance": self.monitor.get_performance_report(),
        }

    def close(self) -> None:
        """Stop the monitor's sampler, the handler's timeout threads and the reload
        triggers (the file watcher; a replaced SIGHUP handler is put back)."""
        self._reloader.close()
        self.monitor.stop_monitoring()
        self.error_handler.close()

    # --- live reload --------------------------------------------------------------------

    def reload_config(self, path: str | os.PathLike[str] | None = None) -> None:
        """Read the config file (with its ``operations:``) and the rule files again, and
        apply them to the live operations at once (``docs/live-reload.md``).

        The file is ``path`` (kept for later reloads), else the one named by
        ``COORDINATION_CONFIG_FILE``; the environment is read again, and the mapping this
        set was made from goes on top. Breakers keep their state where their kind is
        unchanged; limits, retries and the other options take the new values at each
        operation's next call. A file that fails to load or check, or a rule file that
        does not compile, changes nothing: the error (``ConfigError``, ``RuleSetError``)
        is logged, counted (``coordination_config_reload_errors_total``), shown on the
        status page and raised.
        """
        self._reloader.reload(path)
        if _DEFAULT.peek() is self:  # what the process's doors are built from from now on
            replace_process_config(self.config)

    # --- doors --------------------------------------------------------------------------

    def wsgi(self, app: Any, config: Any = None, **options: Any) -> CoordinationMiddleware:
        """``CoordinationMiddleware(app, config, coordination=self, **options)``."""
        return CoordinationMiddleware(app, config, coordination=self, **options)

    def asgi(self, app: Any, config: Any = None, **options: Any) -> CoordinationASGIMiddleware:
        """``CoordinationASGIMiddleware(app, config, coordination=self, **options)``."""
        return CoordinationASGIMiddleware(app, config, coordination=self, **options)

    def wrap(self, service: Any, **options: Any) -> CoordinationServiceWrapper:
        """``CoordinationServiceWrapper(service, coordination=self, **options)``."""
        return CoordinationServiceWrapper(service, coordination=self, **options)

    def event_processor(
        self, handler: Callable[[Any, str], Any] | None = None, **options: Any
    ) -> CoordinationEventProcessor:
        """``CoordinationEventProcessor(handler, coordination=self, **options)``."""
        return CoordinationEventProcessor(handler, coordination=self, **options)

    def health_checker(self, **options: Any) -> CoordinationHealthChecker:
        """A ``CoordinationHealthChecker`` of this set (its config unless given one)."""
        from ..observability import CoordinationHealthChecker

        options.setdefault("config", self.config)
        return CoordinationHealthChecker(coordination=self, **options)

    def metrics_exporter(self, **options: Any) -> CoordinationMetricsExporter:
        """A ``CoordinationMetricsExporter`` of this set (its config unless given one)."""
        from ..observability import CoordinationMetricsExporter

        options.setdefault("config", self.config)
        return CoordinationMetricsExporter(coordination=self, **options)

    def status_page(self, **options: Any) -> StatusPage:
        """A ``StatusPage`` of this set (its config unless given one)."""
        from ..observability import StatusPage

        options.setdefault("config", self.config)
        return StatusPage(coordination=self, **options)

    # --- decorators bound to the set ----------------------------------------------------

    @overload
    def handle_errors(self, func: Callable[P, R], /) -> Callable[P, R]: ...
    @overload
    def handle_errors(self, **error_config: Any) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
    def handle_errors(self, *func: Callable[..., Any], **error_config: Any) -> Any:
        """``handle_errors(..., handler=self.error_handler)``; bare or with options."""
        if func:
            (target,) = func
            return handle_errors(handler=self.error_handler)(target)
        return handle_errors(handler=self.error_handler, **error_config)

    @overload
    def track_performance(self, name: Callable[P, R], /) -> Callable[P, R]: ...
    @overload
    def track_performance(
        self, name: str | None = None, /
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
    def track_performance(self, name: Any = None, /) -> Any:
        """``track_performance(name, monitor=self.monitor)``."""
        if callable(name):
            return track_performance(monitor=self.monitor)(name)
        return track_performance(name, monitor=self.monitor)

    def validate_input(self, validation_rules: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """``validate_input(rules, validator=self.validator)``."""
        return validate_input(validation_rules, validator=self.validator)

    def coordinate_operation(
        self,
        validation_rules: Any = None,
        error_config: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """``coordinate_operation(..., coordination=self)``."""
        return coordinate_operation(
            validation_rules, error_config, operation_name, config=config, coordination=self
        )


def _process_set() -> Coordination:
    # The same objects the decorators use by default: the set only names them together.
    return Coordination(
        process_config(),
        validator=default_validator(),
        error_handler=default_error_handler(),
        monitor=default_monitor(),
    )


_DEFAULT: ProcessDefault[Coordination] = ProcessDefault(_process_set)


def default_coordination() -> Coordination:
    """The process-wide set: ``default_validator()``, ``default_error_handler()`` and
    ``default_monitor()``, made once on first use from the file and the environment."""
    return _DEFAULT.get()


def reload_config(path: str | os.PathLike[str] | None = None) -> None:
    """``default_coordination().reload_config(path)``: the process-wide set's config file
    (with its ``operations:``) and rule files read again and applied to the live
    operations; on any error nothing changes and the error is raised (see
    ``Coordination.reload_config``)."""
    default_coordination().reload_config(path)
