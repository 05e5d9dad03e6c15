"""A user's callable (retry_on, give_up_on, retry_if_result, fallback) that raises: its own
exception reaches the caller unchanged, StopIteration included (the retry loop is a
generator, which would turn it into a RuntimeError: PEP 479)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from coordination import handle_errors
from coordination.error_handling import CoordinationErrorHandler


class Mine(StopIteration):
    """The user's own exception: a StopIteration, the kind a generator would convert."""


def raises(exc: BaseException) -> Callable[..., Any]:
    def callable_(*_: Any) -> Any:
        raise exc

    return callable_


def fails() -> None:
    raise ValueError("the dependency")


def returns_none() -> None:
    return None


def retries_once_then(exc: BaseException) -> Callable[[Any], bool]:
    """A ``retry_if_result`` that asks for one retry, then raises (inside the retry loop)."""
    asked: list[object] = []

    def check(result: Any) -> bool:
        if asked:
            raise exc
        asked.append(result)
        return True

    return check


# (option, how it raises, the function) — each callable is reached by a failed call or a
# result; ``retry_if_result`` both on the first attempt and on a retry
SHAPES: list[tuple[str, Callable[[BaseException], Any], Callable[[], None]]] = [
    ("retry_on", raises, fails),
    ("give_up_on", raises, fails),
    ("retry_if_result", raises, returns_none),
    ("retry_if_result", retries_once_then, returns_none),
    ("fallback", raises, fails),
]
# the breaker's own fast path (nothing before a call), and the whole pipeline (a timeout)
EXTRAS = [{}, {"timeout": 5.0}]


def sync_doors(
    handler: CoordinationErrorHandler, func: Callable[[], None], options: Any
) -> list[Callable[[], Any]]:
    decorated = handle_errors(handler=handler, operation_name="d", **options)(func)
    return [
        decorated,
        lambda: handler.execute_with_error_handling(func, operation_name="e", **options),
    ]


def test_a_user_s_own_runtime_error_is_not_unwrapped() -> None:
    """A RuntimeError the user's code got from a generator of its own (PEP 479, below the
    retry loop) is the user's exception: it reaches the caller as it is."""

    def own_generator() -> Any:
        yield 1
        raise StopIteration("the user's generator")

    def predicate(_: Exception) -> bool:
        steps = own_generator()
        next(steps)
        next(steps)  # RuntimeError("generator raised StopIteration")
        return True

    handler = CoordinationErrorHandler({"base_delay": 0, "max_retries": 2})
    with pytest.raises(RuntimeError) as caught:
        handler.execute_with_error_handling(fails, retry_on=predicate)
    assert isinstance(caught.value.__cause__, StopIteration)
    assert caught.value.__cause__.args == ("the user's generator",)
    handler.close()


async def afails() -> None:
    raise ValueError("the dependency")


async def areturns_none() -> None:
    return None


ASYNC_FUNCS = {fails: afails, returns_none: areturns_none}


def async_doors(
    handler: CoordinationErrorHandler, func: Callable[[], Any], options: Any
) -> list[Callable[[], Any]]:
    decorated = handle_errors(handler=handler, operation_name="ad", **options)(func)
    return [
        lambda: asyncio.run(decorated()),
        lambda: asyncio.run(
            handler.aexecute_with_error_handling(func, operation_name="ae", **options)
        ),
    ]


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize(("option", "make", "func"), SHAPES)
@pytest.mark.parametrize(
    ("kind", "asynchronous"), [(Mine, False), (KeyError, False), (KeyError, True)]
)
def test_a_callable_s_exception_reaches_the_caller_as_it_is(
    kind: type[BaseException],
    asynchronous: bool,
    option: str,
    make: Callable[[BaseException], Any],
    func: Callable[[], None],
    extra: dict[str, Any],
) -> None:
    for door in range(2):
        handler = CoordinationErrorHandler({"base_delay": 0, "max_retries": 2})
        mine = kind("the user's")
        options = {option: make(mine), **extra}
        if asynchronous:
            call = async_doors(handler, ASYNC_FUNCS[func], options)[door]
        else:
            call = sync_doors(handler, func, options)[door]
        with pytest.raises(kind) as caught:
            call()
        assert caught.value is mine
        assert not isinstance(caught.value.__context__, RuntimeError)
        handler.close()


@pytest.mark.parametrize(("option", "make", "func"), SHAPES)
def test_an_async_callable_s_stop_iteration_ends_as_any_coroutine_s(
    option: str, make: Callable[[BaseException], Any], func: Callable[[], None]
) -> None:
    """No coroutine lets a StopIteration out (PEP 479): the caller gets the RuntimeError
    any ``async def`` raising it gives, caused by the user's exception itself."""

    async def plain() -> None:
        raise Mine("plain")

    with pytest.raises(RuntimeError) as plain_caught:
        asyncio.run(plain())
    for door in range(2):
        handler = CoordinationErrorHandler({"base_delay": 0, "max_retries": 2})
        mine = Mine("the user's")
        call = async_doors(handler, ASYNC_FUNCS[func], {option: make(mine)})[door]
        with pytest.raises(RuntimeError) as caught:
            call()
        assert caught.value.__cause__ is mine
        assert caught.value.args == plain_caught.value.args
        handler.close()
