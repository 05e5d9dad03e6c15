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
