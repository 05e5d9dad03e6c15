"""The library's log records carry their context as record attributes (``extra``):
operation, severity, attempt, breaker state where they apply, and the current span's
trace and span ids, added by the filter on every library logger.

Real components throughout: the error handler's pipeline and breaker, the event
processor with its SQLite journal, a Flask app behind the WSGI middleware, and
OpenTelemetry's SDK (a TracerProvider given to ``use_tracer_provider``, spans kept by the
SDK's InMemorySpanExporter).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.test import Client

import coordination
from coordination import (
    CircuitOpenError,
    CoordinationErrorHandler,
    CoordinationEventProcessor,
    CoordinationMiddleware,
    EventDeadLettered,
)
from coordination._tracing import use_tracer_provider
from coordination.testing import set_testing
from fakes import FakeClock


@pytest.fixture(autouse=True)
def _no_testing_mode() -> Iterator[None]:
    with set_testing(False):
        yield


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="coordination")
    return caplog


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with use_tracer_provider(provider):
        yield provider, exporter
    provider.shutdown()


def make_handler(clock: FakeClock, **config: Any) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"jitter": "none", **config},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


def down() -> None:
    raise ConnectionError("payments down (password=hunter2-xyz)")


def with_message(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    found = [r for r in caplog.records if text in r.getMessage()]
    assert found, f"no record says {text!r}: {[r.getMessage() for r in caplog.records]}"
    return found


def test_a_failed_call_logs_operation_severity_attempts_and_breaker_state(
    records: pytest.LogCaptureFixture,
) -> None:
    handler = make_handler(FakeClock(), max_retries=2, circuit_breaker_threshold=10)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(down, operation_name="charge", error_severity="high")
    (final,) = with_message(records, "failed after")
    assert "after 3 attempt(s)" in final.getMessage()
    assert final.__dict__["operation"] == "charge"
    assert final.__dict__["severity"] == "HIGH"
    assert final.__dict__["attempt"] == 3
    assert final.__dict__["breaker_state"] == "CLOSED"
    assert final.__dict__["error_type"] == "ConnectionError"
    attempts = with_message(records, "attempt failed")
    assert len(attempts) == 3
    for record in attempts:
        assert record.__dict__["operation"] == "charge"
        assert record.__dict__["severity"] == "HIGH"
        assert record.__dict__["error_type"] == "ConnectionError"


def test_a_breaker_transition_logs_both_states(records: pytest.LogCaptureFixture) -> None:
    handler = make_handler(FakeClock(), max_retries=0, circuit_breaker_threshold=1)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(down, operation_name="ledger")
    (opened,) = with_message(records, "CLOSED -> OPEN")
    assert opened.__dict__["operation"] == "ledger"
    assert opened.__dict__["breaker_state"] == "OPEN"
    assert opened.__dict__["previous_breaker_state"] == "CLOSED"
    assert opened.levelno == logging.WARNING
    (final,) = with_message(records, "failed after")
    assert final.__dict__["breaker_state"] == "OPEN"  # read after the failure opened it


def test_records_inside_a_span_carry_its_trace_and_span_ids(
    records: pytest.LogCaptureFixture, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    handler = make_handler(FakeClock(), max_retries=1)
    with provider.get_tracer("tests").start_as_current_span("request") as outer:
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(down, operation_name="charge")
    trace_id = format(outer.get_span_context().trace_id, "032x")
    finished = {format(s.context.span_id, "016x") for s in exporter.get_finished_spans()}
    library = [r for r in records.records if r.name.startswith("coordination")]
    assert library
    for record in library:
        assert record.__dict__["trace_id"] == trace_id
        # the request's span, or the library's own span of the call inside it
        assert record.__dict__["span_id"] in finished


def test_records_outside_any_span_carry_no_ids(records: pytest.LogCaptureFixture) -> None:
    import opentelemetry.trace  # noqa: F401  (loaded, but no provider: nothing traced)

    handler = make_handler(FakeClock(), max_retries=0)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(down, operation_name="charge")
    library = [r for r in records.records if r.name.startswith("coordination")]
    assert library
    assert all("trace_id" not in r.__dict__ and "span_id" not in r.__dict__ for r in library)


def test_records_of_a_traced_call_carry_the_calls_own_span(
    records: pytest.LogCaptureFixture, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    _, exporter = spans
    handler = make_handler(FakeClock(), max_retries=0)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(down, operation_name="charge")
    (call,) = [s for s in exporter.get_finished_spans() if s.name == "charge"]
    library = [r for r in records.records if r.name.startswith("coordination")]
    assert library
    assert {r.__dict__.get("span_id") for r in library} == {format(call.context.span_id, "016x")}


def test_a_callers_own_trace_id_is_kept(records: pytest.LogCaptureFixture) -> None:
    from coordination._logging import component_logger

    component_logger("tests").warning("mine", extra={"trace_id": "t" * 32})
    (record,) = with_message(records, "mine")
    assert record.__dict__["trace_id"] == "t" * 32


def test_the_json_line_of_a_failed_call_has_every_field(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = spans
    stream = io.StringIO()
    out = logging.StreamHandler(stream)
    out.setFormatter(coordination.json_log_formatter(fields={"service": "shop"}))
    library = logging.getLogger("coordination")
    library.addHandler(out)
    try:
        handler = make_handler(FakeClock(), max_retries=1)
        with provider.get_tracer("tests").start_as_current_span("request") as outer:
            with pytest.raises(ConnectionError):
                handler.execute_with_error_handling(
                    down, operation_name="charge", error_severity="critical"
                )
    finally:
        library.removeHandler(out)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (final,) = [line for line in lines if "failed after" in line["message"]]
    assert final["level"] == "ERROR"  # a CRITICAL call's failure is an ERROR record
    assert final["logger"] == "coordination.error_handling"
    assert final["service"] == "shop"
    assert final["operation"] == "charge"
    assert final["severity"] == "CRITICAL"
    assert final["attempt"] == 2
    assert final["breaker_state"] == "CLOSED"
    assert final["error_type"] == "ConnectionError"
    assert final["trace_id"] == format(outer.get_span_context().trace_id, "032x")
    assert len(final["span_id"]) == 16
    assert "hunter2-xyz" not in stream.getvalue()


def test_a_dead_lettered_event_logs_its_type_letter_and_attempts(
    records: pytest.LogCaptureFixture,
) -> None:
    def handler(event: Any, event_type: str) -> None:
        raise ConnectionError("broker down")

    processor = CoordinationEventProcessor(
        handler, dead_letter_path=":memory:", config={"max_retries": 1, "base_delay": 0}
    )
    try:
        with pytest.raises(EventDeadLettered) as caught:
            processor.process_event({"id": 1}, "order_placed")
    finally:
        processor.close()
    (record,) = with_message(records, "dead-lettered")
    assert record.__dict__["operation"] == "event_order_placed"
    assert record.__dict__["event_type"] == "order_placed"
    assert record.__dict__["dead_letter_id"] == caught.value.dead_letter_id
    assert record.__dict__["attempt"] == 2
    assert record.__dict__["error_type"] == "ConnectionError"


def test_an_answered_resilience_error_logs_the_request_and_breaker(
    records: pytest.LogCaptureFixture,
) -> None:
    app = Flask("shop")

    @app.get("/pay/<int:order>")
    def pay(order: int) -> str:
        raise CircuitOpenError("payments", 3.0)

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    response = Client(app).get("/pay/7")
    assert response.status_code == 503
    (record,) = with_message(records, "answered 503")
    assert record.__dict__["operation"] == "payments"
    assert record.__dict__["breaker_state"] == "OPEN"
    assert record.__dict__["http_method"] == "GET"
    assert record.__dict__["url_path"] == "/pay/7"
    assert record.__dict__["http_status"] == 503
    assert record.__dict__["error_type"] == "CircuitOpenError"


@pytest.mark.parametrize("trace_ids", [True, False])
def test_the_applications_records_get_the_spans_ids_unless_told_not_to(
    spans: tuple[TracerProvider, InMemorySpanExporter], trace_ids: bool
) -> None:
    provider, _ = spans
    stream = io.StringIO()
    out = logging.StreamHandler(stream)
    out.setFormatter(coordination.json_log_formatter(trace_ids=trace_ids))
    app = logging.getLogger("app.tests.fields")
    app.addHandler(out)
    app.propagate = False
    try:
        with provider.get_tracer("tests").start_as_current_span("request") as span:
            app.warning("in a span")
        app.warning("outside")
    finally:
        app.removeHandler(out)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    if trace_ids:
        assert inside["trace_id"] == format(context.trace_id, "032x")
        assert inside["span_id"] == format(context.span_id, "016x")
    else:
        assert "trace_id" not in inside
    assert "trace_id" not in outside
    assert "span_id" not in outside
