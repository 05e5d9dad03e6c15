"""A span per protected call, recorded by the real OpenTelemetry SDK (in-memory exporter).

Every door of error handling (the decorator, the spec's call, sync and async, the
breaker's guard and the whole pipeline), every ending (success after retries, a final
failure, a rejection by the open breaker, a full bulkhead, a rate limit, a spent retry
budget, a timeout, a fallback), hedging, and the switch itself: nothing recorded and
the composed path restored while no provider (or only an ALWAYS_OFF one) is set.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

from coordination import (
    BulkheadFull,
    CircuitOpenError,
    OperationTimeout,
    RateLimitExceeded,
    _tracing,
)
from coordination.error_handling import CoordinationErrorHandler
from coordination.testing import capture_spans


class Clock:
    """A clock the test moves; the handler's sleeps move it (nothing really waits)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Flaky:
    """Fails ``failures`` times with ``error``, then answers ``value``."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, value: Any = "ok") -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return value


def handler_on(clock: Clock, **config: Any) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"base_delay": 0.5, "jitter": "none", **config},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def the_span(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def retry_events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [
        dict(event.attributes or {}) for event in span.events if event.name == "coordination.retry"
    ]


def exception_types(span: ReadableSpan) -> list[str]:
    # the SDK's name of a type: module-qualified except builtins
    return [
        str((event.attributes or {})["exception.type"]).rpartition(".")[2]
        for event in span.events
        if event.name == "exception"
    ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


# --- what a span says ---------------------------------------------------------------------


def test_a_call_is_a_span_named_by_its_operation_child_of_the_callers(clock: Clock) -> None:
    handler = handler_on(clock, error_severity="HIGH")
    fetch = handler.decorate(lambda: 42, operation_name="fetch")
    with capture_spans() as spans:
        tracer = trace.get_tracer("caller", tracer_provider=_tracing._state.override)
        with tracer.start_as_current_span("request") as parent:
            assert fetch() == 42
    child, outer = spans
    assert (child.name, outer.name) == ("fetch", "request")
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context.trace_id == parent.get_span_context().trace_id
    assert child.kind is trace.SpanKind.INTERNAL
    assert attributes(child) == {
        "coordination.operation": "fetch",
        "coordination.severity": "HIGH",
        "coordination.attempts": 1,
        "coordination.outcome": "success",
        "coordination.breaker.state": "CLOSED",
    }
    assert child.status.status_code is StatusCode.UNSET
    assert child.events == ()


def test_each_retry_is_an_event_with_its_attempt_wait_and_exception(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=3)
    flaky = Flaky(2, TimeoutError)
    call = handler.decorate(flaky, operation_name="dep")
    with capture_spans() as spans:
        assert call() == "ok"
    span = the_span(spans)
    assert attributes(span)["coordination.attempts"] == 3 == flaky.calls
    assert attributes(span)["coordination.outcome"] == "success"
    assert retry_events(span) == [
        {
            "coordination.attempt": 2,
            "coordination.retry.delay_s": 0.5,
            "exception.type": "TimeoutError",
            "coordination.retry.reason": "exception",
        },
        {
            "coordination.attempt": 3,
            "coordination.retry.delay_s": 1.0,
            "exception.type": "TimeoutError",
            "coordination.retry.reason": "exception",
        },
    ]
    assert clock.slept == [0.5, 1.0]  # the events name the waits really taken
    assert span.status.status_code is StatusCode.UNSET


def test_a_retry_asked_for_by_a_result_says_so(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=2)
    answers = iter([None, None, "ready"])
    call = handler.decorate(
        lambda: next(answers), retry_if_result=lambda r: r is None, operation_name="poll"
    )
    with capture_spans() as spans:
        assert call() == "ready"
    span = the_span(spans)
    assert [e["coordination.retry.reason"] for e in retry_events(span)] == ["result", "result"]
    assert all("exception.type" not in e for e in retry_events(span))
    assert attributes(span)["coordination.attempts"] == 3


def test_a_final_failure_sets_error_status_and_records_the_exception(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=2)
    call = handler.decorate(Flaky(10), operation_name="dep")
    with capture_spans() as spans, pytest.raises(ConnectionError):
        call()
    span = the_span(spans)
    assert attributes(span)["coordination.outcome"] == "failure"
    assert attributes(span)["coordination.attempts"] == 3
    assert len(retry_events(span)) == 2
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "failure: ConnectionError"
    assert exception_types(span) == ["ConnectionError"]


def test_the_open_breaker_rejects_with_error_status_and_no_attempt(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=0, circuit_breaker_threshold=2)
    flaky = Flaky(100)
    call = handler.decorate(flaky, operation_name="dep")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            call()
    with capture_spans() as spans, pytest.raises(CircuitOpenError):
        call()
    span = the_span(spans)
    assert flaky.calls == 2
    assert attributes(span)["coordination.outcome"] == "rejected"
    assert attributes(span)["coordination.attempts"] == 0
    assert attributes(span)["coordination.breaker.state"] == "OPEN"
    assert span.status.status_code is StatusCode.ERROR
    assert exception_types(span) == ["CircuitOpenError"]


def test_the_breaker_opening_during_the_call_shows_in_its_span(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=5, circuit_breaker_threshold=2)
    call = handler.decorate(Flaky(100), operation_name="dep")
    with capture_spans() as spans, pytest.raises(CircuitOpenError):
        call()
    span = the_span(spans)
    assert attributes(span)["coordination.outcome"] == "rejected"
    assert attributes(span)["coordination.attempts"] == 2  # the retry after the 2nd: refused
    assert attributes(span)["coordination.breaker.state"] == "OPEN"


def test_a_full_bulkhead_and_a_rate_limit_are_rejections(clock: Clock) -> None:
    handler = handler_on(clock)
    inside = threading.Event()
    release = threading.Event()

    def slow() -> str:
        inside.set()
        release.wait(5)
        return "done"

    bounded = handler.decorate(slow, max_concurrent=1, bulkhead_wait=0, operation_name="b")
    limited = handler.decorate(lambda: 1, rate_limit="1/m", operation_name="r")
    holder = threading.Thread(target=bounded)
    holder.start()
    try:
        assert inside.wait(5)
        with capture_spans() as spans:
            with pytest.raises(BulkheadFull):
                bounded()
            assert limited() == 1
            with pytest.raises(RateLimitExceeded):
                limited()
    finally:
        release.set()
        holder.join(5)
    outcomes = [
        (s.name, attributes(s)["coordination.outcome"], s.status.status_code) for s in spans
    ]
    assert outcomes == [
        ("b", "bulkhead_full", StatusCode.ERROR),
        ("r", "success", StatusCode.UNSET),
        ("r", "rate_limited", StatusCode.ERROR),
    ]
    assert exception_types(spans[0]) == ["BulkheadFull"]
    assert exception_types(spans[2]) == ["RateLimitExceeded"]
    assert attributes(spans[0])["coordination.attempts"] == 0


def test_a_spent_retry_budget_is_the_outcome(clock: Clock) -> None:
    handler = handler_on(
        clock,
        max_retries=3,
        retry_budget=0.0,
        retry_budget_min_per_second=0.0,
        circuit_breaker_threshold=1_000_000,
    )
    call = handler.decorate(Flaky(100), operation_name="dep")
    with capture_spans() as spans, pytest.raises(ConnectionError):
        call()
    span = the_span(spans)
    assert attributes(span)["coordination.outcome"] == "retry_budget_exhausted"
    assert attributes(span)["coordination.attempts"] == 1
    assert span.status.status_code is StatusCode.ERROR


def test_a_timeout_is_the_outcome_and_user_spans_on_the_worker_are_children() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    with capture_spans() as spans:
        inner = trace.get_tracer("user", tracer_provider=_tracing._state.override)
        release = threading.Event()

        def slow() -> None:
            with inner.start_as_current_span("query"):
                release.wait(5)

        call = handler.decorate(slow, timeout=0.05, max_retries=0, operation_name="slow")
        try:
            with pytest.raises(OperationTimeout):
                call()
        finally:
            release.set()
        for _ in range(200):  # the abandoned attempt ends on its worker
            if len(spans) == 2:
                break
            threading.Event().wait(0.01)
    ours = next(s for s in spans if s.name == "slow")
    query = next(s for s in spans if s.name == "query")
    assert attributes(ours)["coordination.outcome"] == "timeout"
    assert ours.status.status_code is StatusCode.ERROR
    assert exception_types(ours) == ["OperationTimeout"]
    assert query.parent is not None
    assert query.parent.span_id == ours.context.span_id


def test_a_fallback_answers_but_the_span_says_the_call_failed(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=1)
    call = handler.decorate(Flaky(10), fallback="cached", operation_name="dep")
    with capture_spans() as spans:
        assert call() == "cached"
    span = the_span(spans)
    assert attributes(span)["coordination.outcome"] == "fallback"
    assert attributes(span)["coordination.attempts"] == 2
    assert span.status.status_code is StatusCode.ERROR
    assert exception_types(span) == ["ConnectionError"]


def test_the_open_breakers_fallback_is_a_rejection_with_an_answer(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=0, circuit_breaker_threshold=1)
    call = handler.decorate(Flaky(10), fallback=lambda details: "stale", operation_name="dep")
    assert call() == "stale"  # opens the breaker
    with capture_spans() as spans:
        assert call() == "stale"
    span = the_span(spans)
    assert attributes(span)["coordination.outcome"] == "fallback"
    assert exception_types(span) == ["CircuitOpenError"]
    assert attributes(span)["coordination.attempts"] == 0


def test_the_specs_call_is_traced_too(clock: Clock) -> None:
    handler = handler_on(clock)
    flaky = Flaky(1)
    other = Flaky(0)
    with capture_spans() as spans:
        options = {"max_retries": 2, "error_severity": "CRITICAL", "operation_name": "pay"}
        assert handler.execute_with_error_handling(flaky, **options) == "ok"
        # another function of the same shape takes the runner's other door
        assert handler.execute_with_error_handling(other, **options) == "ok"
    first, second = spans
    assert (first.name, attributes(first)["coordination.attempts"]) == ("pay", 2)
    assert attributes(first)["coordination.severity"] == "CRITICAL"
    assert (second.name, attributes(second)["coordination.attempts"]) == ("pay", 1)


def test_nested_protected_calls_nest_their_spans(clock: Clock) -> None:
    handler = handler_on(clock)
    inner = handler.decorate(Flaky(1), max_retries=1, operation_name="inner")
    outer = handler.decorate(lambda: inner(), operation_name="outer")
    with capture_spans() as spans:
        assert outer() == "ok"
    child, parent = spans
    assert (child.name, parent.name) == ("inner", "outer")
    assert child.parent is not None
    assert child.parent.span_id == parent.context.span_id
    assert len(retry_events(child)) == 1
    assert retry_events(parent) == []


# --- async ---------------------------------------------------------------------------------


def test_async_calls_retries_timeouts_and_rejections(clock: Clock) -> None:
    handler = handler_on(clock, circuit_breaker_threshold=3)

    class AFlaky(Flaky):
        async def run(self) -> Any:
            return self()

    flaky = AFlaky(1)

    async def forever() -> None:
        await asyncio.sleep(10)

    async def failing() -> None:
        raise ConnectionError("down")

    quick = handler.decorate(flaky.run, max_retries=2, operation_name="a")
    slow = handler.decorate(forever, timeout=0.01, max_retries=0, operation_name="t")
    down = handler.decorate(failing, max_retries=2, operation_name="d")

    async def main() -> None:
        assert await quick() == "ok"
        with pytest.raises(OperationTimeout):
            await slow()
        with pytest.raises(ConnectionError):
            await down()  # three failures: the breaker opens
        with pytest.raises(CircuitOpenError):
            await down()

    with capture_spans() as spans:
        asyncio.run(main())
    found = [
        (s.name, attributes(s)["coordination.outcome"], attributes(s)["coordination.attempts"])
        for s in spans
    ]
    assert found == [
        ("a", "success", 2),
        ("t", "timeout", 1),
        ("d", "failure", 3),
        ("d", "rejected", 0),
    ]
    assert len(retry_events(spans[0])) == 1
    assert [s.status.status_code for s in spans[1:]] == [StatusCode.ERROR] * 3


def test_async_spans_are_children_of_the_callers_span_in_its_task(clock: Clock) -> None:
    handler = handler_on(clock)

    async def work(n: int) -> int:
        await asyncio.sleep(0)
        return n

    call = handler.decorate(work, operation_name="w")
    with capture_spans() as spans:
        tracer = trace.get_tracer("caller", tracer_provider=_tracing._state.override)

        async def one(n: int) -> None:
            with tracer.start_as_current_span(f"request {n}"):
                assert await call(n) == n

        async def main() -> None:
            await asyncio.gather(*(one(n) for n in range(5)))

        asyncio.run(main())
    parents = {s.context.span_id: s.name for s in spans if s.name.startswith("request")}
    ours = [s for s in spans if s.name == "w"]
    assert len(ours) == 5
    assert sorted(parents[s.parent.span_id] for s in ours if s.parent) == [
        f"request {n}" for n in range(5)
    ]


# --- hedging -------------------------------------------------------------------------------


def test_a_hedge_is_an_event_and_an_attempt_sync_and_async() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    first = threading.Event()
    release = threading.Event()
    calls = 0

    def read() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first attempt stalls until the hedge has answered
            first.set()
            release.wait(5)
            return "late"
        return "hedge"

    started = 0

    async def aread() -> str:
        nonlocal started
        started += 1
        if started == 1:
            await asyncio.sleep(5)
        return "hedge"

    hedged = handler.decorate(read, hedge_after=0.02, operation_name="h")
    ahedged = handler.decorate(aread, hedge_after=0.02, operation_name="ah")
    with capture_spans() as spans:
        try:
            assert hedged() == "hedge"
        finally:
            release.set()
        assert asyncio.run(ahedged()) == "hedge"
    for span in spans:
        assert [e.name for e in span.events] == ["coordination.hedge"]
        assert dict(span.events[0].attributes or {}) == {"coordination.hedge": 1}
        assert attributes(span)["coordination.attempts"] == 2
        assert attributes(span)["coordination.outcome"] == "success"


# --- on and off ----------------------------------------------------------------------------


def test_no_provider_no_span_and_the_composed_path_is_back(clock: Clock) -> None:
    handler = handler_on(clock)
    plain = handler.decorate(lambda: 1, operation_name="p")  # the breaker's guard
    timed = handler.decorate(lambda: 2, timeout=5, operation_name="t")  # the pipeline
    with capture_spans() as spans:
        assert (plain(), timed()) == (1, 2)
        assert len(spans) == 2
        assert _tracing._state.calls_on
    assert not _tracing._state.calls_on
    assert (plain(), timed()) == (1, 2)
    assert len(spans) == 2  # nothing more recorded
    runners = list(handler._runners)
    assert runners
    assert all(not runner.tracing for runner in runners)
    with capture_spans() as again:  # and on again
        assert (plain(), timed()) == (1, 2)
    assert [s.name for s in again] == ["p", "t"]


def test_a_provider_that_records_nothing_counts_as_none(clock: Clock) -> None:
    handler = handler_on(clock)
    call = handler.decorate(lambda: 1, operation_name="p")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with _tracing.use_tracer_provider(provider):
        assert _tracing.current_tracer() is None
        assert not _tracing._state.calls_on  # the wrappers were never switched
        assert call() == 1
    assert exporter.get_finished_spans() == ()


def test_a_disabled_sdk_counts_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with _tracing.use_tracer_provider(TracerProvider()):
        assert _tracing.current_tracer() is None
        assert not _tracing._state.calls_on


def test_functions_wrapped_while_tracing_is_on_turn_off_with_it(clock: Clock) -> None:
    handler = handler_on(clock)
    with capture_spans() as spans:
        call = handler.decorate(lambda: 1, operation_name="late")
        assert call() == 1
    assert call() == 1
    assert [s.name for s in spans] == ["late"]
    assert not any(runner.tracing for runner in handler._runners)


def closure_of(func: Any) -> list[Any]:
    return [cell.cell_contents for cell in func.__closure__ or ()]


@pytest.mark.parametrize("mode", ["normal", "metrics_only", "disabled"])
@pytest.mark.parametrize("shape", [{}, {"timeout": 5}, {"retry_time_budget": 30}])
def test_off_the_wrapper_is_the_closure_it_was_composed_as(
    clock: Clock, mode: str, shape: dict[str, Any]
) -> None:
    """No flag on the call path: tracing rebinds a cell of the wrapper, and back."""
    handler = handler_on(clock, breaker_mode=mode)
    for func in (lambda: 1, _one):
        call = handler.decorate(func, operation_name=f"op{id(func)}", **shape)
        composed = closure_of(call)
        with capture_spans() as spans:
            answer = call()
            if asyncio.iscoroutine(answer):
                answer = asyncio.run(answer)
            assert answer == 1
            traced = closure_of(call)
        assert closure_of(call) == composed
        assert traced != composed
        assert [s.name for s in spans] == [f"op{id(func)}"]
        assert attributes(spans[0])["coordination.outcome"] == "success"


async def _one() -> int:
    return 1


def test_no_secret_of_an_exception_reaches_the_span(clock: Clock) -> None:
    handler = handler_on(clock, max_retries=0)

    def login() -> None:
        raise PermissionError("refused: password=hunter2 for redis://admin:s3cret@cache:6379")

    call = handler.decorate(login, operation_name="login")
    with capture_spans() as spans, pytest.raises(PermissionError):
        call()
    (event,) = [e for e in the_span(spans).events if e.name == "exception"]
    shown = str(dict(event.attributes or {})) + str(the_span(spans).status.description)
    assert "hunter2" not in shown
    assert "s3cret" not in shown
    assert "[redacted]" in str((event.attributes or {})["exception.message"])
    assert "PermissionError" in str((event.attributes or {})["exception.stacktrace"])


def test_an_exception_whose_str_raises_still_reaches_the_caller(clock: Clock) -> None:
    class Odd(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    handler = handler_on(clock, max_retries=0)

    def odd() -> None:
        raise Odd

    call = handler.decorate(odd, operation_name="odd")
    with capture_spans() as spans, pytest.raises(Odd):
        call()
    (event,) = [e for e in the_span(spans).events if e.name == "exception"]
    assert (event.attributes or {})["exception.message"] == "<Odd: str() failed>"
    assert attributes(the_span(spans))["coordination.outcome"] == "failure"
