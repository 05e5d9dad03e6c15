"""``handle_errors`` and the process-wide default handler.

By default every decorated function shares ``default_error_handler()``, so an operation's
breaker is shared by every caller in the process (and by ``execute_with_error_handling``
calls that use the same operation name on that handler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast, overload

from .._defaults import ComponentSet, ProcessDefault, component_of, process_config
from ._handler import CoordinationErrorHandler
from ._wrap import wrap_function

__all__ = ["default_error_handler", "handle_errors", "wrap_function"]

P = ParamSpec("P")
R = TypeVar("R")

_DEFAULT: ProcessDefault[CoordinationErrorHandler] = ProcessDefault(
    lambda: CoordinationErrorHandler(process_config())
)


def default_error_handler() -> CoordinationErrorHandler:
    """The process-wide handler, part of ``default_coordination()`` (made on first use from
    the file and the environment)."""
    return _DEFAULT.get()


@overload
def handle_errors(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def handle_errors(
    *,
    handler: CoordinationErrorHandler | None = None,
    coordination: ComponentSet | None = None,
    **error_config: Any,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def handle_errors(
    func: Callable[P, R] | None = None,
    /,
    *,
    handler: CoordinationErrorHandler | None = None,
    coordination: ComponentSet | None = None,
    **error_config: Any,
) -> Any:
    """Decorate a sync or async function (or method) with the error-handling pipeline.

    >>> @handle_errors(max_retries=2, error_severity="HIGH", base_delay=0)
    ... def fetch(x: int) -> int:
    ...     return x * 2
    >>> fetch(21)
    42

    The keys are those of ``error_config`` dicts (see the guide); they are checked here,
    at decoration time. The handler is ``handler``, else ``coordination.error_handler``,
    else the process-wide ``default_error_handler()``.
    """
    handler = component_of(coordination, "error_handler", handler, "handler")
    if handler is not None and not isinstance(handler, CoordinationErrorHandler):
        raise TypeError(f"handler must be a CoordinationErrorHandler, not {type(handler).__name__}")

    def decorator(target: Callable[P, R]) -> Callable[P, R]:
        chosen = handler if handler is not None else default_error_handler()
        return cast(Callable[P, R], wrap_function(chosen, target, error_config))

    if func is not None:
        return decorator(func)
    # check the keys now, so a typo fails where it is written, not at the first call
    (handler or default_error_handler()).config_options(
        **{k: v for k, v in error_config.items() if k != "operation_name"}
    )
    return decorator
