"""The three components every integration door uses, typed by what it calls on them.

The doors take a validator, an error handler and a performance monitor, or build the real
ones from ``coordination.validation``, ``coordination.error_handling`` and
``coordination.performance``. The protocols below name only the calls made here, so a
user may also pass a compatible object of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .._config import CoordinationConfig, resolve_config
from .._logging import component_logger

__all__ = [
    "Components",
    "CoordinatedDoor",
    "ErrorHandlerLike",
    "MonitorLike",
    "ValidatorLike",
    "build_components",
    "prepare_rules",
]


class ValidationResultLike(Protocol):
    @property
    def is_valid(self) -> bool: ...
    @property
    def errors(self) -> Any: ...


class ValidatorLike(Protocol):
    def compile(self, rules: Any, *, name: str | None = None) -> Any: ...
    def validate(self, data: Any, rule_set: Any) -> Any: ...
    def ensure_valid(self, data: Any, rule_set: Any) -> None: ...
    def validate_message_structure(self, data: Any, rules: Any = None) -> Any: ...
    def get_validation_report(self) -> dict[str, Any]: ...


class ErrorHandlerLike(Protocol):
    def decorate(self, func: Callable[..., Any], **error_config: Any) -> Callable[..., Any]: ...
    def execute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Any: ...
    async def aexecute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Any: ...
    def get_error_report(self) -> dict[str, Any]: ...


class MonitorLike(Protocol):
    def record_operation(self, name: str) -> AbstractContextManager[Any]: ...
    def record_success(self, name: str) -> None: ...
    def record_failure(self, name: str, error: Any) -> None: ...
    def record_duration(
        self, name: str, seconds: float, success: bool = True, error: Any = None
    ) -> None: ...
    def start_monitoring(self) -> None: ...
    def stop_monitoring(self) -> None: ...
    def get_performance_report(self) -> dict[str, Any]: ...


class Components:
    """The validator, error handler and monitor of one door, built once."""

    __slots__ = ("config", "error_handler", "monitor", "validator")

    def __init__(
        self,
        config: CoordinationConfig,
        validator: ValidatorLike,
        error_handler: ErrorHandlerLike,
        monitor: MonitorLike,
    ) -> None:
        self.config = config
        self.validator = validator
        self.error_handler = error_handler
        self.monitor = monitor

    def status(self) -> dict[str, Any]:
        """The spec's status document: each component's own report."""
        return {
            "validation": self.validator.get_validation_report(),
            "error_handling": self.error_handler.get_error_report(),
            "performance": self.monitor.get_performance_report(),
        }

    def as_mapping(self) -> dict[str, Any]:
        """The components by the names health checks and exporters show."""
        return {
            "validator": self.validator,
            "error_handler": self.error_handler,
            "performance_monitor": self.monitor,
        }


class CoordinatedDoor:
    """What every door (wrapper, middleware, event processor) sets up the same way."""

    config: CoordinationConfig
    validator: ValidatorLike
    error_handler: ErrorHandlerLike
    performance_monitor: MonitorLike

    def _set_up(
        self,
        config: CoordinationConfig | Mapping[str, Any] | None,
        validator: ValidatorLike | None,
        error_handler: ErrorHandlerLike | None,
        performance_monitor: MonitorLike | None,
        debug: bool,
    ) -> None:
        cfg = resolve_config(config)
        debug = debug or cfg.debug
        self.config = cfg
        self._components = build_components(
            cfg,
            validator=validator,
            error_handler=error_handler,
            performance_monitor=performance_monitor,
            debug=debug,
        )
        self.validator = self._components.validator
        self.error_handler = self._components.error_handler
        self.performance_monitor = self._components.monitor
        self._logger = component_logger("integration", debug=debug)


def build_components(
    config: CoordinationConfig,
    *,
    validator: ValidatorLike | None,
    error_handler: ErrorHandlerLike | None,
    performance_monitor: MonitorLike | None,
    debug: bool,
) -> Components:
    """The given components, and real ones, sharing ``config``, for those not given."""
    if validator is None:
        from ..validation import CoordinationValidator

        validator = CoordinationValidator(config=config, debug=debug)
    if error_handler is None:
        from ..error_handling import CoordinationErrorHandler

        error_handler = CoordinationErrorHandler(config, debug=debug)
    if performance_monitor is None:
        from ..performance import CoordinationPerformanceMonitor

        performance_monitor = CoordinationPerformanceMonitor(config, debug=debug)
    return Components(config, validator, error_handler, performance_monitor)


def prepare_rules(validator: ValidatorLike, rules: Any, name: str) -> Any:
    """An inline rule mapping compiled once; a loaded name, a path or a ``RuleSet`` as is."""
    if isinstance(rules, Mapping):
        return validator.compile(rules, name=name)
    return rules
