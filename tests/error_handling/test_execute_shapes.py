"""``execute_with_error_handling`` remembers each call shape: it must stay right.

A call shape is the operation's name and its options; the first operation called with it
is wrapped once, like a decorated function. Whatever is remembered, each call must run
the callable it was given, with the options it was given.
"""

from __future__ import annotations

import pytest

from coordination import CircuitOpenError
from coordination.error_handling import CoordinationErrorHandler


class Down(ConnectionError):
    pass


def test_each_call_runs_the_callable_it_was_given(handler: CoordinationErrorHandler) -> None:
    """Lambdas made per request share a name (and so a shape): each runs its own closure."""
    results = [handler.execute_with_error_handling(lambda n=n: n * 10) for n in range(5)]
    assert results == [0, 10, 20, 30, 40]


def test_bound_methods_of_other_objects_run_on_their_own_object(
    handler: CoordinationErrorHandler,
) -> None:
    class Account:
        def __init__(self, balance: int) -> None:
            self.balance = balance

        def read(self, extra: int = 0) -> int:
            return self.balance + extra

    first, second = Account(1), Account(2)
    for _ in range(3):  # a bound method is made anew at each access
        assert handler.execute_with_error_handling(first.read) == 1
        assert handler.execute_with_error_handling(second.read, kwargs={"extra": 5}) == 7
        assert handler.execute_with_error_handling(first.read, args=[3]) == 4
    assert handler.operation_stats()[Account.read.__qualname__]["successes"] == 9


def test_different_options_give_different_pipelines(handler: CoordinationErrorHandler) -> None:
    attempts = []

    def down() -> None:
        attempts.append(1)
        raise Down("no")

    for _ in range(2):  # the second round finds each shape remembered
        attempts.clear()
        with pytest.raises(Down):
            handler.execute_with_error_handling(down, max_retries=0, operation_name="a")
        assert len(attempts) == 1
        attempts.clear()
        with pytest.raises(Down):
            handler.execute_with_error_handling(
                down, max_retries=2, base_delay=0, operation_name="b"
            )
        assert len(attempts) == 3
        attempts.clear()
        assert (
            handler.execute_with_error_handling(
                down, max_retries=1, base_delay=0, fallback="spare", operation_name="c"
            )
            == "spare"
        )
        assert len(attempts) == 2
        handler.reset_circuit_breaker()
    assert handler.operation_stats()["c"]["severity"] == "MEDIUM"
    handler.execute_with_error_handling(lambda: 1, operation_name="c", error_severity="HIGH")
    assert handler.operation_stats()["c"]["severity"] == "HIGH"


def test_unhashable_options_still_work(handler: CoordinationErrorHandler) -> None:
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) % 2:
            raise Down("once")
        return "ok"

    for _ in range(3):
        assert (
            handler.execute_with_error_handling(flaky, retry_on=[Down], max_retries=1, base_delay=0)
            == "ok"
        )
    assert len(attempts) == 6


def test_a_coroutine_function_is_refused_even_under_a_remembered_name(
    handler: CoordinationErrorHandler,
) -> None:
    assert handler.execute_with_error_handling(lambda: 1, operation_name="shared") == 1

    async def later() -> int:
        return 2

    with pytest.raises(TypeError, match="aexecute_with_error_handling"):
        handler.execute_with_error_handling(later, operation_name="shared")
    with pytest.raises(TypeError, match="callable"):
        handler.execute_with_error_handling(42, operation_name="shared")  # type: ignore[arg-type]


def test_many_shapes_are_forgotten_in_bulk_and_still_answer(
    handler: CoordinationErrorHandler,
) -> None:
    def work(n: int) -> int:
        return n

    for n in range(5000):  # more shapes than are kept: the table starts again, bounded
        assert handler.execute_with_error_handling(work, args=(n,), max_retries=n) == n
    assert handler.execute_with_error_handling(work, args=(7,), max_retries=7) == 7
    assert handler.operation_stats()[work.__qualname__]["successes"] == 5001


def test_an_open_breaker_refuses_the_remembered_shape(handler: CoordinationErrorHandler) -> None:
    def down() -> None:
        raise Down("no")

    for _ in range(5):  # the default threshold
        with pytest.raises(Down):
            handler.execute_with_error_handling(down, max_retries=0)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            handler.execute_with_error_handling(down, max_retries=0)
    assert handler.execute_with_error_handling(down, max_retries=0, fallback="spare") == "spare"
    stats = handler.operation_stats()[down.__qualname__]
    assert (stats["rejections"], stats["fallbacks"]) == (4, 1)
