"""The doors' off-check is ``_tracing.DOORS.on`` (an attribute read per request or
message), kept by the same flip as the runners' wrappers: true exactly while a span would
be recorded, and it follows a provider set after the doors were made."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from coordination._tracing import DOORS, current_tracer, use_tracer_provider

from .doors import recording


def test_the_switch_is_on_exactly_while_a_tracer_is() -> None:
    assert DOORS.on is (current_tracer() is not None)
    with recording():
        assert DOORS.on
        assert current_tracer() is not None
        with use_tracer_provider(TracerProvider(sampler=ALWAYS_OFF)):
            assert not DOORS.on  # a sampler that drops every span: nothing to make
            assert current_tracer() is None
        assert DOORS.on
    assert DOORS.on is (current_tracer() is not None)


@pytest.mark.parametrize(
    ("doors", "expected"),
    [
        ("wsgi", "[('SERVER', 'GET')]"),  # no protected call at all: the door alone watches
        (
            "wsgi processor",
            "[('CONSUMER', 'orders process'), ('INTERNAL', 'event_orders'), ('SERVER', 'GET')]",
        ),
    ],
)
def test_a_global_provider_set_after_the_doors_were_made_is_found(
    doors: str, expected: str
) -> None:
    """A WSGI app (and an event processor) made and used before main() configures
    OpenTelemetry: spans once it is set."""
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            textwrap.dedent(
                """
                import os, time
                from coordination import _tracing
                from coordination.integration import (
                    CoordinationEventProcessor, CoordinationMiddleware,
                )
                _tracing.POLL_SECONDS = 0.05

                def app(environ, start_response):
                    start_response("200 OK", [("Content-Type", "text/plain")])
                    return [b"ok"]

                DOORS_USED = os.environ["DOORS_USED"]
                wsgi = CoordinationMiddleware(app, config={})
                processor = None
                if "processor" in DOORS_USED:
                    processor = CoordinationEventProcessor(
                        lambda event, event_type: None, dead_letter_path=":memory:",
                        validate_structure=False,
                    )

                def request():
                    body = wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/",
                                 "wsgi.url_scheme": "http", "SERVER_NAME": "x",
                                 "SERVER_PORT": "80"}, lambda status, headers: None)
                    b"".join(body)
                    getattr(body, "close", lambda: None)()
                    if "processor" in DOORS_USED:
                        processor.process_event({"n": 1}, "orders")

                request()  # untraced: nothing set yet
                from opentelemetry import trace
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import SimpleSpanProcessor
                from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                    InMemorySpanExporter,
                )
                exporter = InMemorySpanExporter()
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                assert not _tracing.DOORS.on
                trace.set_tracer_provider(provider)
                deadline = time.monotonic() + 10
                while not _tracing.DOORS.on and time.monotonic() < deadline:
                    time.sleep(0.01)
                request()
                if processor is not None:
                    processor.close()
                print(sorted({(s.kind.name, s.name) for s in exporter.get_finished_spans()}))
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DOORS_USED": doors},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
