"""One recorder for every span's error (``_tracing.span_error``): a protected call's span
and a door's span name the same error alike — the library's own errors by their public
path — redacted, bounded, and never raising for an error whose ``__str__`` raises."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from coordination import CircuitOpenError, StoreError
from coordination._tracing import exception_type, span_error
from coordination.error_handling import CoordinationErrorHandler
from coordination.testing import capture_spans

from .doors import recording


def _exception(span: ReadableSpan) -> dict[str, Any]:
    (event,) = [e for e in span.events if e.name == "exception"]
    return dict(event.attributes or {})


def test_the_librarys_errors_are_named_by_their_public_path() -> None:
    assert exception_type(CircuitOpenError("dep", 1.0)) == "coordination.CircuitOpenError"
    assert exception_type(StoreError("x")) == "coordination.StoreError"
    assert exception_type(ValueError()) == "ValueError"
    assert exception_type(pickle.PicklingError()) == "_pickle.PicklingError"
    # the class itself is untouched: its module, repr and pickles stay what they were
    assert CircuitOpenError.__module__ == "coordination._errors"
    again = pickle.loads(pickle.dumps(StoreError("x")))
    assert type(again) is StoreError


def test_a_rejected_call_and_a_door_record_the_same_way() -> None:
    handler = CoordinationErrorHandler({"circuit_breaker_threshold": 1, "max_retries": 0})

    def fail() -> None:
        raise ConnectionError("password=hunter2 refused")

    call = handler.decorate(fail, operation_name="dep")
    with pytest.raises(ConnectionError):
        call()
    with capture_spans() as spans, pytest.raises(CircuitOpenError):
        call()
    (span,) = spans
    found = _exception(span)
    assert found["exception.type"] == "coordination.CircuitOpenError"
    assert dict(span.attributes or {})["error.type"] == "coordination.CircuitOpenError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "rejected: CircuitOpenError"

    with recording() as recorded:
        from coordination._tracing import current_tracer

        tracer = current_tracer()
        assert tracer is not None
        door = tracer.start_span("door")
        try:
            fail()
        except ConnectionError as error:
            span_error(door, error)
        door.end()
    (ended,) = recorded.spans
    event = _exception(ended)
    assert event["exception.type"] == "ConnectionError"
    assert "hunter2" not in str(event)
    assert "hunter2" not in str(ended.status.description)
    assert "[redacted]" in str(event["exception.message"])


class _Hostile(Exception):
    def __init__(self, text: str, raises: bool) -> None:
        super().__init__(text)
        self.text, self.raises = text, raises

    def __str__(self) -> str:
        if self.raises:
            raise RuntimeError("no")
        return self.text


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=3000), raises=st.booleans())
def test_any_error_is_recorded_bounded_and_never_raises(text: str, raises: bool) -> None:
    with recording() as recorded:
        from coordination._tracing import current_tracer

        tracer = current_tracer()
        assert tracer is not None
        span = tracer.start_span("any")
        span_error(span, _Hostile(f"token=sk_live_{'a' * 24} {text}", raises))
        span.end()
    (ended,) = recorded.spans
    event = _exception(ended)
    assert len(str(event["exception.message"])) < 1100
    assert len(str(ended.status.description)) < 260
    assert "sk_live_" + "a" * 24 not in str(event) + str(ended.status.description)
    assert ended.status.status_code is StatusCode.ERROR
