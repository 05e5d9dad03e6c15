"""``validate_input``: check a function's arguments against a rule set before each call."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from .._defaults import ComponentSet, ProcessDefault, component_of, process_config
from .._errors import ValidationError
from ._ruleset import RuleSet
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

    Fields are looked up among the call's arguments by parameter name; a field that is not
    a parameter name is looked up inside the call's single mapping argument::

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

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        parameters = list(signature.parameters.values())
        if parameters and parameters[0].name in ("self", "cls"):
            parameters = parameters[1:]

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            message = _message(bound.arguments, parameters, rules, chosen)
            result = chosen.validate(message, rules)
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


def _message(
    arguments: Mapping[str, Any],
    parameters: list[inspect.Parameter],
    rules: RuleSetLike,
    validator: CoordinationValidator,
) -> dict[str, Any]:
    """The mapping validated for one call: named arguments, or the single mapping argument."""
    values: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.name not in arguments:
            continue
        value = arguments[parameter.name]
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            values[parameter.name] = value
    rule_set = rules if isinstance(rules, RuleSet) else validator.rule_set(rules)
    fields = rule_set.field_names
    if fields <= values.keys():
        return {name: values[name] for name in fields} if fields else values
    mappings = [v for v in values.values() if isinstance(v, Mapping)]
    if len(mappings) != 1:
        return values
    message = dict(mappings[0])
    message.update((name, values[name]) for name in fields if name in values)
    return message
