"""``validate_input``: check a function's arguments against a rule set before each call."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._defaults import ComponentSet, ProcessDefault, component_of, process_config
from .._errors import ValidationError
from ._arguments import CallMessages, rule_fields
from ._validator import CoordinationValidator, RuleSetLike

__all__ = ["default_validator", "validate_input"]

P = ParamSpec("P")
R = TypeVar("R")

_DEFAULT: ProcessDefault[CoordinationValidator] = ProcessDefault(
    lambda: CoordinationValidator(config=process_config())
)


def default_validator() -> CoordinationValidator:
    """The process-wide validator every door uses unless given another.

    Part of ``default_coordination()``; made on first use from the file and the environment.
    """
    return _DEFAULT.get()


def validate_input(
    validation_rules: RuleSetLike,
    *,
    validator: CoordinationValidator | None = None,
    coordination: ComponentSet | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Validate each call's arguments against ``validation_rules``; raise ``ValidationError``.

    The message is built from the call as ``coordinate_operation`` and ``wrap_method``
    build it (see ``coordination.validation._arguments``): the arguments the rules name,
    by parameter name; or the fields of the single pydantic model, dataclass or mapping
    argument. Arguments no rule names are never an error, whatever their type::

        @validate_input({"required_fields": ["name", "email"]})
        def create_user(user_data): ...

    Inline rules are compiled here, once; a rule-set name is looked up at each call (so
    ``reload_rules`` takes effect). The validator is ``validator``, else
    ``coordination.validator``, else the process-wide ``default_validator()``.
    """
    validator = component_of(coordination, "validator", validator, "validator")
    chosen = validator or default_validator()
    # A name is looked up at each call (reload_rules takes effect); anything else is
    # resolved once, now, so bad rules fail at import time rather than at the first call.
    rules: RuleSetLike = (
        validation_rules if isinstance(validation_rules, str) else chosen.rule_set(validation_rules)
    )
    fields = rule_fields(chosen, rules)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        messages = CallMessages(func)
        validate = chosen.validate

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            result = validate(messages.message(args, kwargs, fields()), rules)
            if not result.is_valid:
                raise ValidationError(result.errors, rule_set=result.rule_set)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                check(args, kwargs)
                return await func(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            check(args, kwargs)
            return func(*args, **kwargs)

        return wrapper

    return decorate
