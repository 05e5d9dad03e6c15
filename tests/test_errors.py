"""The exception tree: one base, the documented parents, useful attributes."""

from __future__ import annotations

import pytest

from coordination import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    CoordinationError,
    EventDeadLettered,
    OperationTimeout,
    RateLimitExceeded,
    RuleSetError,
    StoreError,
    ValidationError,
)


@pytest.mark.parametrize(
    ("error", "parents"),
    [
        (ConfigError("x"), (ValueError,)),
        (RuleSetError("x"), (ConfigError, ValueError)),
        (ValidationError([]), (ValueError,)),
        (CircuitOpenError("payments", 3.0), ()),
        (OperationTimeout("payments", 1.5), (TimeoutError,)),
        (BulkheadFull("payments", 4), ()),
        (RateLimitExceeded("client:1", 0.2), ()),
        (EventDeadLettered("user_activity", 7, "boom"), ()),
        (StoreError("redis down"), ()),
    ],
)
def test_every_error_is_a_coordination_error(error: Exception, parents: tuple[type, ...]) -> None:
    assert isinstance(error, CoordinationError)
    for parent in parents:
        assert isinstance(error, parent)


def test_circuit_open_error_says_when_to_try_again() -> None:
    error = CircuitOpenError("payments", 2.5)
    assert error.operation == "payments"
    assert error.retry_after == 2.5
    assert "'payments'" in str(error)
    assert "2.500s" in str(error)
    assert CircuitOpenError("x", -1).retry_after == 0.0


def test_validation_error_names_every_problem() -> None:
    class Problem:
        def __init__(self, message: str) -> None:
            self.message = message

    error = ValidationError([Problem("name is required"), Problem("email: not an email")])
    assert "name is required" in str(error)
    assert "email: not an email" in str(error)
    assert len(error.errors) == 2


def test_the_tree_is_drawn_in_the_module_docstring() -> None:
    from coordination import _errors

    assert _errors.__doc__ is not None
    for name in _errors.__all__:
        assert name in _errors.__doc__


def test_circuit_open_error_pickles_copies_and_hints_as_before() -> None:
    import copy
    import pickle

    from coordination.error_handling import retry_after_seconds

    error = CircuitOpenError("payments", 2.5)
    assert error.args == ("payments", 2.5)
    assert error.__reduce__() == (
        CircuitOpenError,
        ("payments", 2.5),
        {"operation": "payments", "retry_after": 2.5},
    )
    error.retry_after = 4.0  # a changed attribute travels, as it did in the instance dict
    for twin in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(twin) is CircuitOpenError
        assert (twin.args, twin.operation, twin.retry_after) == (error.args, "payments", 4.0)
        assert str(twin) == str(error)
    assert retry_after_seconds(error) == 4.0


def test_the_breakers_refusal_is_the_constructed_error() -> None:
    from coordination.error_handling import CoordinationErrorHandler

    handler = CoordinationErrorHandler({"max_retries": 0, "circuit_breaker_threshold": 1})

    def down() -> None:
        raise ConnectionError("down")

    wrapped = handler.decorate(down)
    with pytest.raises(ConnectionError):
        wrapped()
    for call in (wrapped, lambda: handler.execute_with_error_handling(down)):
        with pytest.raises(CircuitOpenError) as caught:
            call()
        error = caught.value
        twin = CircuitOpenError(*error.args)
        assert (error.operation, error.retry_after) == (twin.operation, twin.retry_after)
        assert error.__reduce__() == twin.__reduce__()
        assert (str(error), repr(error)) == (str(twin), repr(twin))
        assert error.__cause__ is None
        assert error.__context__ is None
