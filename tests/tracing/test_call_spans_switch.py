"""When spans turn on and off, attacked: any schedule of failures gives a span that tells
the truth; a global provider set after the calls were wrapped is found (a fresh process:
OpenTelemetry sets it once); a reload while traced makes one span per call; the helper
without the SDK says what to install.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import StatusCode

from coordination import CoordinationConfig
from coordination.error_handling import CoordinationErrorHandler
from coordination.testing import capture_spans


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.now += seconds


def handler_on(clock: Clock, **config: Any) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"base_delay": 0.1, "jitter": "none", "circuit_breaker_threshold": 1_000_000, **config},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


@settings(max_examples=60, deadline=None)
@given(
    schedule=st.lists(st.booleans(), min_size=1, max_size=8),
    max_retries=st.integers(0, 6),
    fallback=st.booleans(),
    run_async=st.booleans(),
    timeout=st.booleans(),
)
def test_any_schedule_of_failures_gives_a_span_that_tells_the_truth(
    schedule: list[bool], max_retries: int, fallback: bool, run_async: bool, timeout: bool
) -> None:
    """``schedule[i]``: whether attempt i fails (past its end, every attempt succeeds)."""
    clock = Clock()
    made = 0

    def attempt() -> str:
        nonlocal made
        made += 1
        if made <= len(schedule) and schedule[made - 1]:
            raise ConnectionError(f"attempt {made}")
        return "ok"

    async def aattempt() -> str:
        return attempt()

    options: dict[str, Any] = {"max_retries": max_retries, "operation_name": "dep"}
    if fallback:
        options["fallback"] = "fallback"
    if timeout:
        options["timeout"] = 30  # the pipeline's path (a worker per attempt when sync)
    handler = handler_on(clock)
    with capture_spans() as spans:
        if run_async:
            call = handler.decorate(aattempt, **options)
            try:
                answer: Any = asyncio.run(call())
            except ConnectionError as exc:
                answer = exc
        else:
            call = handler.decorate(attempt, **options)
            try:
                answer = call()
            except ConnectionError as exc:
                answer = exc
    (span,) = spans
    attributes = dict(span.attributes or {})
    retries = [e for e in span.events if e.name == "coordination.retry"]
    assert attributes["coordination.attempts"] == made
    assert len(retries) == made - 1
    assert [dict(e.attributes or {})["coordination.attempt"] for e in retries] == list(
        range(2, made + 1)
    )
    assert all(dict(e.attributes or {})["exception.type"] == "ConnectionError" for e in retries)
    if answer == "ok":
        assert attributes["coordination.outcome"] == "success"
        assert span.status.status_code is StatusCode.UNSET
    else:
        assert made == max_retries + 1
        assert attributes["coordination.outcome"] == ("fallback" if fallback else "failure")
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events if e.name == "exception"] == ["exception"]


def test_a_reload_while_traced_makes_one_span_per_call() -> None:
    clock = Clock()
    handler = handler_on(clock, max_retries=1)
    fetch = handler.decorate(lambda: 1, operation_name="fetch")  # the breaker's guard
    with capture_spans() as spans:
        assert fetch() == 1
        # a timeout changes the pipeline's shape: the function is wrapped anew (redirect)
        handler.reconfigure(
            CoordinationConfig(
                base_delay=0.1, circuit_breaker_threshold=1_000_000, max_retries=1, timeout=30
            )
        )
        assert fetch() == 1
    assert [span.name for span in spans] == ["fetch", "fetch"]
    assert fetch() == 1  # off again: the new wrapper too
    assert len(spans) == 2


def _run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_a_global_provider_set_after_the_calls_were_wrapped_is_found() -> None:
    """The usual application: functions decorated at import, OpenTelemetry configured in
    main(), calls already made (a warm-up) before it. No call reads anything to know."""
    done = _run(
        """
        import time
        from coordination import _tracing, handle_errors
        _tracing.POLL_SECONDS = 0.05  # the watch's period, short for the test

        @handle_errors(operation_name="fetch")
        def fetch():
            return 1

        fetch()  # untraced: nothing set yet

        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        deadline = time.monotonic() + 10
        while not exporter.get_finished_spans() and time.monotonic() < deadline:
            fetch()
            time.sleep(0.01)
        print([span.name for span in exporter.get_finished_spans()][:1])
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the watch thread raised nothing (OpenTelemetry half imported)
    assert done.stdout.strip() == "['fetch']"


def test_without_opentelemetry_installed_no_watch_runs() -> None:
    done = _run(
        """
        import sys, threading
        sys.modules["opentelemetry"] = None  # as if not installed
        from coordination import _tracing, handle_errors

        @handle_errors(operation_name="fetch")
        def fetch():
            return 1

        fetch()
        print(sorted(t.name for t in threading.enumerate()), _tracing._state.installed)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread'] False"


def test_capture_spans_without_the_sdk_says_what_to_install() -> None:
    done = _run(
        """
        import sys
        sys.modules["opentelemetry.sdk"] = None  # as if only the API were installed
        from coordination.testing import capture_spans
        try:
            with capture_spans():
                pass
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install opentelemetry-sdk" in done.stdout


@pytest.mark.parametrize("variable", ["OTEL_PYTHON_TRACER_PROVIDER"])
def test_the_environments_provider_is_found_when_opentelemetry_is_loaded(variable: str) -> None:
    done = _run(
        """
        from opentelemetry import trace  # loaded by the application
        from coordination import _tracing, handle_errors

        @handle_errors(operation_name="fetch")
        def fetch():
            return 1

        print(_tracing.current_tracer() is not None, _tracing._state.calls_on)
        """,
        **{variable: "sdk_tracer_provider"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True True"
