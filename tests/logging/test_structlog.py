"""structlog's stdlib integration gets the library's fields: a ``ProcessorFormatter``
with ``ExtraAdder`` in its chain for records of other loggers (the library's) renders
operation, severity, attempt, breaker state, error type and the span's ids, redacted
(the filter masked them before any handler or processor saw them). Real structlog."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from coordination import CoordinationErrorHandler
from coordination._tracing import use_tracer_provider
from coordination.testing import set_testing
from fakes import FakeClock


@pytest.fixture
def rendered() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    out = logging.StreamHandler(stream)
    out.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    library = logging.getLogger("coordination")
    library.addHandler(out)
    level = library.level
    library.setLevel(logging.INFO)
    try:
        with set_testing(False):
            yield stream
    finally:
        library.removeHandler(out)
        library.setLevel(level)


def test_structlog_renders_the_library_fields(rendered: io.StringIO) -> None:
    clock = FakeClock()
    handler = CoordinationErrorHandler(
        {"jitter": "none", "max_retries": 2},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )

    def down() -> None:
        raise ConnectionError("refused: api_key=ak-0123456789")

    provider = TracerProvider()
    with use_tracer_provider(provider), provider.get_tracer("t").start_as_current_span("r") as span:
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(down, operation_name="quote", error_severity="high")
    provider.shutdown()
    lines = [json.loads(line) for line in rendered.getvalue().splitlines()]
    (final,) = [line for line in lines if "failed after" in line["event"]]
    assert final["logger"] == "coordination.error_handling"
    assert final["operation"] == "quote"
    assert final["severity"] == "HIGH"
    assert final["attempt"] == 3
    assert final["breaker_state"] == "CLOSED"
    assert final["error_type"] == "ConnectionError"
    assert final["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "span_id" in final
    assert "ak-0123456789" not in rendered.getvalue()
