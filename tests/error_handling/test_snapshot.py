"""The handler's frozen snapshots, and the spec's dicts built from them."""

from __future__ import annotations

import dataclasses

import pytest

from coordination import CircuitOpenError, CircuitState
from coordination.error_handling import CoordinationErrorHandler
from coordination.error_handling._snapshot import (
    HandlerSnapshot,
    OperationErrorSnapshot,
)
from fakes import FakeClock


def _failing() -> None:
    raise ConnectionError("payment gateway down")


def busy_handler() -> CoordinationErrorHandler:
    clock = FakeClock()  # the breaker's retry_after stays put between two reads
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "max_retries": 1, "circuit_breaker_threshold": 2},
        clock=clock,
        sleep=clock.sleep,
    )
    handler.execute_with_error_handling(lambda: "ok", operation_name="lookup")
    # two failed attempts open the breaker; the next call is rejected
    for expected in (ConnectionError, CircuitOpenError):
        with pytest.raises(expected):
            handler.execute_with_error_handling(
                _failing, operation_name="charge", error_severity="CRITICAL"
            )
    return handler


def test_the_snapshot_holds_the_counts_and_is_frozen() -> None:
    handler = busy_handler()
    snapshot = handler.snapshot()
    assert isinstance(snapshot, HandlerSnapshot)
    charge = snapshot.operations["charge"]
    assert isinstance(charge, OperationErrorSnapshot)
    assert (charge.calls, charge.failures, charge.retries, charge.rejections) == (2, 2, 1, 1)
    assert charge.severity == "CRITICAL"
    assert charge.breaker is not None
    assert charge.breaker.state is CircuitState.OPEN
    assert snapshot.breakers["charge"] is charge.breaker
    assert snapshot.total_operations == 3
    assert dict(snapshot.errors_by_type) == {"ConnectionError": 2}  # attempts, not calls
    assert [e.error_type for e in snapshot.recent_errors] == ["ConnectionError"]
    assert snapshot.health().status == "UNHEALTHY"  # a CRITICAL operation's breaker is open

    with pytest.raises(dataclasses.FrozenInstanceError):
        charge.calls = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.operations["x"] = charge  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.errors_by_type["ConnectionError"] = 0  # type: ignore[index]
    assert isinstance(snapshot.recent_errors, tuple)

    for _ in range(3):  # the handler moves on; the snapshot does not
        handler.execute_with_error_handling(lambda: "ok", operation_name="lookup")
    handler.reset_circuit_breaker("charge")
    assert snapshot.operations["lookup"].calls == 1
    assert charge.breaker.state is CircuitState.OPEN
    assert handler.snapshot().operations["lookup"].calls == 4


def test_the_reports_are_built_from_the_snapshot() -> None:
    handler = busy_handler()
    snapshot = handler.snapshot()
    report = handler.get_error_report()
    assert report["total_operations"] == snapshot.total_operations
    assert report["failed_operations"] == snapshot.total("failures") == 2
    assert report["total_retries"] == snapshot.total("retries") == 1
    assert report["rejected_by_circuit_breaker"] == snapshot.total("rejections")
    assert report["errors_by_type"] == dict(snapshot.errors_by_type)
    assert report["errors_by_severity"] == dict(snapshot.errors_by_severity) == {"CRITICAL": 2}
    for name, op in snapshot.operations.items():
        assert report["operations"][name] == {
            **op.counts(),
            "circuit_state": op.breaker.state.value,
        }  # type: ignore[union-attr]
        assert report["circuit_breakers"][name] == op.breaker.as_dict()  # type: ignore[union-attr]
    assert handler.operation_stats() == report["operations"]
    health = handler.get_health_status()
    assert health["status"] == report["status"] == snapshot.health().status.value
    assert health["open_breakers"] == list(snapshot.health().open_breakers) == ["charge"]
    with pytest.raises(ValueError, match="no counter named"):
        snapshot.total("severity")


def test_from_report_reads_a_report_back_into_the_same_type() -> None:
    handler = busy_handler()
    snapshot = handler.snapshot()
    again = HandlerSnapshot.from_report(handler.get_error_report())
    assert again.total_operations == snapshot.total_operations
    for name, op in snapshot.operations.items():
        assert again.operations[name].counts() == op.counts()
        assert again.breakers[name].state is op.breaker.state  # type: ignore[union-attr]
        assert again.breakers[name].transitions == op.breaker.transitions  # type: ignore[union-attr]
    assert dict(again.errors_by_type) == dict(snapshot.errors_by_type)
    assert again.health() == snapshot.health()
    # a partial report (the spec's duck-typed components): what it does not say is 0
    partial = HandlerSnapshot.from_report(
        {"operations": {"op": {"successes": 3}}, "circuit_breakers": {"op": {"state": "OPEN"}}}
    )
    assert partial.operations["op"].calls == 3
    assert partial.operations["op"].retries == 0
    assert partial.total_operations == 3
    with pytest.raises(TypeError, match="expected a number"):
        HandlerSnapshot.from_report({"operations": {"op": {"calls": "many"}}})
    with pytest.raises(ValueError, match="unknown circuit state"):
        HandlerSnapshot.from_report({"circuit_breakers": {"op": {"state": "AJAR"}}})
