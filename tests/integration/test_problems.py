"""The mapping itself: which error earns which answer, and Retry-After for any wait."""

from __future__ import annotations

import json
import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination import (
    BulkheadFull,
    CircuitOpenError,
    OperationTimeout,
    RateLimitExceeded,
    ValidationError,
)
from coordination.integration._problems import (
    AnswerLog,
    BodyTooLarge,
    answer_for,
    retry_after_header,
)
from fakes import FakeClock


@given(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_retry_after_is_whole_seconds_at_least_one(wait: float | None) -> None:
    name, value = retry_after_header(wait)
    assert name == "Retry-After"
    seconds = int(value)
    assert 1 <= seconds <= 86_400
    if wait is not None and math.isfinite(wait) and 1 <= wait <= 86_400:
        assert seconds - 1 < wait <= seconds  # rounded up, never down


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (CircuitOpenError("db", 0.0), 503, "1"),
        (CircuitOpenError("db", 29.01), 503, "30"),
        (BulkheadFull("db", 3), 503, "1"),
        (RateLimitExceeded("db", 3.0), 429, "3"),
        (OperationTimeout("db", 2.0), 504, None),
        (BodyTooLarge(11, 10), 413, None),
        (ExceptionGroup("task group", [RateLimitExceeded("db", 0.5)]), 429, "1"),
        (
            ExceptionGroup("outer", [ExceptionGroup("inner", [OperationTimeout("db", 1)])]),
            504,
            None,
        ),
    ],
)
def test_each_error_earns_its_answer(
    error: BaseException, status: int, retry_after: str | None
) -> None:
    rejection = answer_for(error, map_resilience=True)
    assert rejection is not None
    assert rejection.status == status
    assert dict(rejection.headers).get("Retry-After") == retry_after
    document = json.loads(rejection.body("/x"))
    assert (document["status"], document["instance"]) == (status, "/x")
    assert "db" not in document["detail"]


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("bug"),
        ValidationError([]),
        TimeoutError("not ours"),
        ExceptionGroup("two", [OperationTimeout("a", 1), OperationTimeout("b", 1)]),
    ],
)
def test_other_errors_are_left_alone(error: BaseException) -> None:
    assert answer_for(error, map_resilience=True) is None


def test_switched_off_only_the_body_limit_is_answered() -> None:
    assert answer_for(CircuitOpenError("db", 1.0), map_resilience=False) is None
    rejection = answer_for(BodyTooLarge(11, 10), map_resilience=False)
    assert rejection is not None
    assert rejection.status == 413


def test_an_outage_logs_one_warning_per_operation_and_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    log = AnswerLog(logging.getLogger("coordination.integration"), window=10.0, clock=clock)
    caplog.set_level(logging.INFO, "coordination.integration")
    for _ in range(50):
        log("GET", "/pay", CircuitOpenError("payments", 3.0), 503)
    log("GET", "/quote", CircuitOpenError("pricing", 3.0), 503)  # another operation
    clock.advance(10.0)
    log("GET", "/pay", CircuitOpenError("payments", 3.0), 503)
    records = [r for r in caplog.records if " answered " in r.getMessage()]
    assert len(records) == 52  # one record per answer, each naming its operation
    assert all("'payments'" in r.getMessage() or "'pricing'" in r.getMessage() for r in records)
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert warnings[-1].endswith("(49 more answered since the last warning)")


def test_the_log_table_stays_bounded() -> None:
    log = AnswerLog(logging.getLogger("coordination.test"), clock=FakeClock(), max_keys=10)
    for n in range(1_000):
        log("GET", "/", OperationTimeout(f"op-{n}", 1.0), 504)
    assert len(log._last) <= 10
