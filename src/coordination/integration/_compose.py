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

__all__ = ["compose", "input_extractor"]

P = ParamSpec("P")
R = TypeVar("R")

InputExtractor = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def input_extractor(func: Callable[..., Any]) -> InputExtractor:
    """How a call's arguments become the data a rule set checks.

    A function of one argument (``self``/``cls`` aside) called with a mapping has that
    mapping checked, as in the spec's ``create_user(user_data)``; otherwise the arguments
    are checked by parameter name, as in ``update_user_profile(user_id, data)``.
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have none: check the raw arguments
        return lambda args, kwargs: {"args": list(args), "kwargs": kwargs}
    params = list(signature.parameters.values())
    skip = 1 if params and params[0].name in ("self", "cls") else 0
    names = tuple(p.name for p in params)
    plain = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    single = len(params) - skip == 1 and plain

    def extract(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if single and not kwargs and len(args) == skip + 1 and isinstance(args[skip], Mapping):
            return args[skip]
        if plain and not kwargs and len(args) == len(names):  # the fast, common case
            return dict(zip(names[skip:], args[skip:], strict=True))
        # A call that does not fit the signature raises the TypeError the call would.
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        data = dict(bound.arguments)
        if skip:
            data.pop(names[0], None)
        return data

    return extract


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

        # The monitor's own decorator is its fastest path (it must be the real monitor).
        wrapped = track_performance(name, monitor=cast(Any, monitor))(wrapped)
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
    extract = input_extractor(original)
    ensure_valid = validator.ensure_valid

    if inspect.iscoroutinefunction(original):

        async def validate_then_await(*args: Any, **kwargs: Any) -> Any:
            ensure_valid(extract(args, kwargs), rule_set)
            return await inner(*args, **kwargs)

        return validate_then_await

    def validate_then_call(*args: Any, **kwargs: Any) -> Any:
        ensure_valid(extract(args, kwargs), rule_set)
        return inner(*args, **kwargs)

    return validate_then_call
