"""``coordinate_operation``: the spec's combined decorator, composed once when decorating.

>>> @coordinate_operation(validation_rules={"required_fields": ["user_id"]})
... def update(user_id, data=None):
...     return {"status": "updated", "user_id": user_id}
>>> update("7")["status"]
'updated'

The spec's sketch builds a validator and both decorators again on every call; here the
rule set is compiled and the layers are stacked once. Validation runs first and is never
retried; the error handler retries and guards with its breaker; the monitor times the
whole protected call (retries included, as the caller waits for them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from .._config import CoordinationConfig, resolve_config
from ._components import ErrorHandlerLike, MonitorLike, ValidatorLike
from ._compose import compose

__all__ = ["coordinate_operation"]

P = ParamSpec("P")
R = TypeVar("R")


def coordinate_operation(
    validation_rules: Any = None,
    error_config: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    *,
    validator: ValidatorLike | None = None,
    error_handler: ErrorHandlerLike | None = None,
    performance_monitor: MonitorLike | None = None,
    config: CoordinationConfig | Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Validate the arguments, then run with retries and breaker, timed; sync or async.

    ``validation_rules`` checks the arguments by parameter name (or the single mapping
    argument); ``error_config`` (such as ``{"max_retries": 3}``) adds the error handler,
    by default the process-wide ``default_error_handler()``; timing goes to
    ``default_monitor()`` under ``operation_name`` (default: the function's qualified
    name). ``enable_validation`` and ``enable_performance_monitoring`` in ``config`` (or
    the environment) leave those layers out entirely.
    """
    if operation_name is not None and (not isinstance(operation_name, str) or not operation_name):
        raise ValueError(f"operation_name must be a non-empty string, got {operation_name!r}")
    if error_config is not None and not isinstance(error_config, Mapping):
        raise TypeError(f"error_config must be a mapping, got {type(error_config).__name__}")
    cfg = resolve_config(config)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if not callable(func):
            raise TypeError(f"coordinate_operation decorates callables, not {func!r}")
        name = operation_name or getattr(func, "__qualname__", None) or repr(func)
        handler = error_handler
        if error_config is not None and handler is None:
            from ..error_handling import default_error_handler

            handler = default_error_handler()
        monitor = performance_monitor
        if cfg.enable_performance_monitoring and monitor is None:
            from ..performance import default_monitor

            monitor = default_monitor()
        use_rules = cfg.enable_validation and validation_rules is not None
        if use_rules and validator is None:
            from ..validation import default_validator
        return compose(
            func,
            name=name,
            validator=(validator or default_validator()) if use_rules else None,
            rules=validation_rules,
            error_handler=handler if error_config is not None else None,
            error_config=error_config,
            monitor=monitor if cfg.enable_performance_monitoring else None,
        )

    return decorate
