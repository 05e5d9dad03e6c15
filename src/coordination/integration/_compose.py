"""Validation → error handling → timing, composed once around a function.

Shared by ``coordinate_operation`` and ``CoordinationServiceWrapper.wrap_method``. Each
layer is added only when it is asked for and its config switch is on, so a layer that is
off costs nothing per call. Validation runs outside the error handler: a validation
failure is never retried.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from ._components import ErrorHandlerLike, MonitorLike, ValidatorLike, prepare_rules

__all__ = ["compose"]

P = ParamSpec("P")
R = TypeVar("R")


def compose(
    func: Callable[P, R],
    *,
    name: str,
    validator: ValidatorLike | None,
    rules: Any,
    error_handler: ErrorHandlerLike | None,
    error_config: Mapping[str, Any] | None,
    monitor: MonitorLike | None,
) -> Callable[P, R]:
    """``func`` wrapped in the layers that are not None, innermost first."""
    wrapped: Callable[..., Any] = func
    if error_handler is not None:
        config = dict(error_config or {})
        config.setdefault("operation_name", name)
        wrapped = error_handler.decorate(wrapped, **config)
    if monitor is not None:
        from ..performance import track_performance

        # The monitor's own decorator: the library's monitor gets its fastest path, any
        # other MonitorLike is timed through record_operation().
        wrapped = track_performance(name, monitor=monitor)(wrapped)
    if validator is not None and rules is not None:
        wrapped = _validating(func, wrapped, validator, prepare_rules(validator, rules, name))
    if wrapped is not func:
        functools.update_wrapper(wrapped, func)
    return cast("Callable[P, R]", wrapped)


def _validating(
    original: Callable[..., Any],
    inner: Callable[..., Any],
    validator: ValidatorLike,
    rule_set: Any,
) -> Callable[..., Any]:
    # the same rule as validate_input: see coordination.validation._arguments
    from ..validation._arguments import CallMessages, rule_fields

    message = CallMessages(original).message
    fields = rule_fields(validator, rule_set)
    ensure_valid = validator.ensure_valid

    if inspect.iscoroutinefunction(original):

        async def validate_then_await(*args: Any, **kwargs: Any) -> Any:
            ensure_valid(message(args, kwargs, fields()), rule_set)
            return await inner(*args, **kwargs)

        return validate_then_await

    def validate_then_call(*args: Any, **kwargs: Any) -> Any:
        ensure_valid(message(args, kwargs, fields()), rule_set)
        return inner(*args, **kwargs)

    return validate_then_call
