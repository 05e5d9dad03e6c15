"""``coordinate_operation``: validation, error handling and timing in one decorator.

>>> @coordinate_operation(validation_rules={"required_fields": ["user_id"]})
... def update(user_id, data=None):
...     return {"status": "updated", "user_id": user_id}
>>> update("7")["status"]
'updated'

The rule set is compiled and the layers are stacked once, when decorating. Validation
runs first and is never retried; the error handler retries and guards with its breaker;
the monitor times the whole protected call (retries included, as the caller waits for
them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from .._config import CoordinationConfig
from .._defaults import ComponentSet, checked_component
from ..error_handling import default_error_handler
from ..performance import default_monitor
from ..validation import default_validator
from ._components import (
    ErrorHandlerLike,
    MonitorLike,
    ValidatorLike,
    _config_of,
    _set_config,
    check_shared_keys,
    components_of_set,
    door_config,
    policy_overrides,
)
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
    coordination: ComponentSet | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Validate the arguments, then run with retries and breaker, timed; sync or async.

    ``validation_rules`` checks the arguments by parameter name (or the single mapping
    argument); ``error_config`` (such as ``{"max_retries": 3}``) adds the error handler,
    as does an entry for the operation in the handler's ``operations:`` setting; timing
    goes to the monitor under ``operation_name`` (default: the function's qualified name).
    The components are the given ones, else those of ``coordination``, else the
    process's (``default_coordination()``). ``enable_validation`` and
    ``enable_performance_monitoring`` in ``config`` leave those layers out entirely; its
    error-policy keys (``max_retries``, …) are defaults under ``error_config``.
    """
    if operation_name is not None and (not isinstance(operation_name, str) or not operation_name):
        raise ValueError(f"operation_name must be a non-empty string, got {operation_name!r}")
    if error_config is not None and not isinstance(error_config, Mapping):
        raise TypeError(f"error_config must be a mapping, got {type(error_config).__name__}")
    shared: dict[str, CoordinationConfig] = {}
    if coordination is None:
        # The door's own keys follow the file and the environment as they are now, when
        # the door is built (the shared components read them once, at first use).
        base = CoordinationConfig.load()
    else:
        # As for every door: a component given replaces that part of the set.
        base = _set_config(coordination)
        validator, error_handler, performance_monitor = components_of_set(
            coordination, base, shared, validator, error_handler, performance_monitor
        )
    cfg, named = door_config(base, config)
    if coordination is None:
        # Only the process's components that this decorator will use are shared here.
        if validator is None and cfg.enable_validation and validation_rules is not None:
            shared["validator"] = default_validator().config
        if error_handler is None:
            shared["error_handler"] = default_error_handler().config
        if performance_monitor is None and cfg.enable_performance_monitoring:
            shared["performance_monitor"] = default_monitor().config
    check_shared_keys("coordinate_operation", cfg, named, shared)
    # a component that cannot do what the layers call is refused now, not at first call
    if validator is not None:
        checked_component(validator, ValidatorLike, "validator")
    if error_handler is not None:
        checked_component(error_handler, ErrorHandlerLike, "error_handler")
    if performance_monitor is not None:
        checked_component(performance_monitor, MonitorLike, "performance_monitor")
    handler_config = _config_of(error_handler or default_error_handler(), base)
    defaults = policy_overrides(cfg, named, handler_config)
    # Only error_config adds the error handler.
    options = None if error_config is None else {**defaults, **error_config}

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if not callable(func):
            raise TypeError(f"coordinate_operation decorates callables, not {func!r}")
        name = operation_name or getattr(func, "__qualname__", None) or repr(func)
        use_rules = cfg.enable_validation and validation_rules is not None
        # ... or the configuration's operations: entry for it (the operator asked for it)
        protect = options is not None or name in handler_config.operations
        return compose(
            func,
            name=name,
            validator=(validator or default_validator()) if use_rules else None,
            rules=validation_rules,
            error_handler=(error_handler or default_error_handler()) if protect else None,
            error_config=options if options is not None else defaults,
            monitor=(performance_monitor or default_monitor())
            if cfg.enable_performance_monitoring
            else None,
        )

    return decorate
