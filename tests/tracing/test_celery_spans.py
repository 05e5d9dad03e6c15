"""coordinated_task's span: one CONSUMER span per task execution (a delivery), named by
the operation, joined to the publisher's trace when the task's headers carry it. In
process with Celery's eager ``apply()``; the real worker is test_celery_worker_spans.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

celery = pytest.importorskip("celery")

from coordination import Coordination  # noqa: E402
from coordination.integration.celery import TaskDeadLettered, coordinated_task  # noqa: E402

from .doors import PARENT_ID, TRACE_ID, TRACEPARENT, Recorded, hex_trace, recording  # noqa: E402


@pytest.fixture
def app() -> Iterator[Any]:
    application = celery.Celery("span_tests", broker="memory://", backend="cache+memory://")
    application.conf.task_always_eager = True
    yield application
    application.close()


@pytest.fixture
def coordination() -> Iterator[Coordination]:
    made = Coordination(
        config={"dead_letter_path": ":memory:", "base_delay": 0.01, "jitter": "none"}
    )
    yield made
    made.close()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")


def test_a_task_joins_the_publishers_trace(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    @coordinated_task(app, operation_name="charge card", coordination=coordination)
    def charge(order: str) -> str:
        return order

    assert charge.apply(("o1",), headers={"traceparent": TRACEPARENT}).get() == "o1"
    span = recorded.one(SpanKind.CONSUMER)
    assert span.name == "charge card"
    assert hex_trace(span) == TRACE_ID
    assert parent_id(span) == PARENT_ID
    found = attributes(span)
    assert found["coordination.operation"] == "charge card"
    assert found["coordination.outcome"] == "success"
    assert found["coordination.attempt"] == 1
    assert found["coordination.breaker.state"] == "CLOSED"
    assert found["coordination.severity"]
    assert found["messaging.system"] == "celery"
    assert found["messaging.message.id"]
    assert span.status.status_code is StatusCode.UNSET


def test_without_a_carried_trace_the_task_is_the_current_spans_child(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    @coordinated_task(app, coordination=coordination)
    def plain() -> int:
        return 1

    caller = recorded.provider.get_tracer("caller")
    with caller.start_as_current_span("caller") as outer:
        plain.apply()
    span = recorded.one(SpanKind.CONSUMER)
    assert span.name == plain.name  # the operation defaults to the task's name
    assert parent_id(span) == format(outer.get_span_context().span_id, "016x")


def test_retries_are_deliveries_and_a_dead_letter_is_the_error(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    @coordinated_task(app, error_config={"max_retries": 2}, coordination=coordination)
    def flaky() -> None:
        raise ConnectionError("token=sk_live_abcdefghijklmnopqrstuvwx down")

    result = flaky.apply(headers={"traceparent": TRACEPARENT})
    assert isinstance(result.result, TaskDeadLettered)
    spans = sorted(recorded.of_kind(SpanKind.CONSUMER), key=lambda s: s.start_time or 0)
    assert [attributes(s)["coordination.outcome"] for s in spans] == [
        "retry",
        "retry",
        "dead_lettered",
    ]
    assert [attributes(s)["coordination.attempt"] for s in spans] == [1, 2, 3]
    assert all(hex_trace(s) == TRACE_ID for s in spans)  # every delivery, the same trace
    assert [s.status.status_code for s in spans] == [
        StatusCode.UNSET,
        StatusCode.UNSET,
        StatusCode.ERROR,
    ]
    for span in spans:
        (event,) = [e for e in span.events if e.name == "exception"]
        assert (event.attributes or {})["exception.type"] == "ConnectionError"
        assert "sk_live_" not in str(dict(event.attributes or {}))
    assert attributes(spans[-1])["error.type"] == "ConnectionError"


def test_no_tracer_provider_no_span(app: Any, coordination: Coordination) -> None:
    from coordination._tracing import DOORS

    @coordinated_task(app, coordination=coordination)
    def plain() -> int:
        return 1

    with recording() as recorded:
        pass
    assert not DOORS.on
    assert plain.apply().get() == 1
    assert recorded.spans == ()


# --- the publishing side: delay / apply_async ---------------------------------------


def test_a_publish_is_a_producer_span_the_delivery_is_a_child_of(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    @coordinated_task(app, operation_name="send receipt", coordination=coordination)
    def receipt(order: str) -> str:
        return order

    caller = recorded.provider.get_tracer("caller")
    with caller.start_as_current_span("checkout") as outer:
        result = receipt.delay("o1")
        signed = receipt.s("o2").apply_async()
    assert (result.get(), signed.get()) == ("o1", "o2")
    producers = sorted(recorded.of_kind(SpanKind.PRODUCER), key=lambda s: s.start_time or 0)
    consumers = sorted(recorded.of_kind(SpanKind.CONSUMER), key=lambda s: s.start_time or 0)
    assert [s.name for s in producers] == ["send receipt publish"] * 2
    assert len(consumers) == 2
    checkout = format(outer.get_span_context().span_id, "016x")
    ids = (result.id, signed.id)
    for producer, consumer, task_id in zip(producers, consumers, ids, strict=True):
        assert parent_id(producer) == checkout
        assert hex_trace(producer) == hex_trace(consumer)
        assert parent_id(consumer) == format(producer.context.span_id, "016x")  # type: ignore[union-attr]
        found = attributes(producer)
        assert found["messaging.system"] == "celery"
        assert found["messaging.operation.type"] == "send"
        assert found["messaging.message.id"] == task_id
        assert found["coordination.operation"] == "send receipt"
        assert found["coordination.outcome"] == "published"
        assert producer.status.status_code is StatusCode.UNSET


def test_a_send_carrying_a_traceparent_goes_as_it_is(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    @coordinated_task(app, coordination=coordination)
    def carried(order: str) -> str:
        return order

    given = {"traceparent": TRACEPARENT, "tenant": "t1"}
    assert carried.apply_async(("o1",), headers=given).get() == "o1"
    assert given == {"traceparent": TRACEPARENT, "tenant": "t1"}  # the caller's, untouched
    assert recorded.of_kind(SpanKind.PRODUCER) == []
    assert parent_id(recorded.one(SpanKind.CONSUMER)) == PARENT_ID


def test_the_callers_headers_are_kept_beside_the_trace_context(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    seen: list[Any] = []

    @coordinated_task(app, coordination=coordination, bind=True)
    def tagged(task: Any) -> None:
        seen.append(task.request.headers or {})

    given = {"tenant": "t1"}
    tagged.apply_async(headers=given).get()
    assert given == {"tenant": "t1"}  # copied, not written into
    assert seen[0]["tenant"] == "t1"
    producer = recorded.one(SpanKind.PRODUCER)
    assert seen[0]["traceparent"].split("-")[2] == format(producer.context.span_id, "016x")  # type: ignore[union-attr]


def test_a_publish_that_fails_is_an_error_span_and_the_callers_error(
    coordination: Coordination, recorded: Recorded
) -> None:
    from kombu.exceptions import OperationalError

    unreachable = celery.Celery("span_tests_down", broker="amqp://guest:guest@127.0.0.1:9//")
    unreachable.conf.broker_connection_timeout = 1

    @coordinated_task(unreachable, operation_name="send receipt", coordination=coordination)
    def receipt(order: str) -> str:
        return order

    try:
        with pytest.raises(OperationalError):
            receipt.apply_async(("o1",), retry=False)
    finally:
        unreachable.close()
    producer = recorded.one(SpanKind.PRODUCER)
    assert producer.status.status_code is StatusCode.ERROR
    assert attributes(producer)["coordination.outcome"] == "error"
    assert [e.name for e in producer.events] == ["exception"]


def test_a_base_of_the_applications_own_still_publishes(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    sent: list[tuple[Any, ...]] = []

    class Audited(celery.Task):  # type: ignore[misc]
        def apply_async(self, *args: Any, **options: Any) -> Any:
            sent.append(args)
            return super().apply_async(*args, **options)

    @coordinated_task(app, coordination=coordination, base=Audited)
    def audited(order: str) -> str:
        return order

    assert audited.delay("o1").get() == "o1"
    assert sent == [(("o1",), {})]
    assert isinstance(audited, Audited)
    assert len(recorded.of_kind(SpanKind.PRODUCER)) == 1


def test_no_tracer_provider_no_publish_span_and_headers_untouched(
    app: Any, coordination: Coordination
) -> None:
    seen: list[Any] = []

    @coordinated_task(app, coordination=coordination, bind=True)
    def quiet(task: Any) -> None:
        seen.append(dict(task.request.headers or {}))

    with recording() as recorded:
        pass  # spans were on once in this process: the switch turned them off again
    quiet.delay().get()
    assert recorded.spans == ()
    assert "traceparent" not in seen[0]


def test_a_dead_lettered_tasks_replay_links_to_the_delivery_that_failed(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    broken = [True]

    @coordinated_task(app, error_config={"max_retries": 0}, coordination=coordination)
    def charge() -> str:
        if broken[0]:
            raise ConnectionError("down")
        return "charged"

    assert isinstance(charge.apply(headers={"traceparent": TRACEPARENT}).result, TaskDeadLettered)
    delivery = recorded.one(SpanKind.CONSUMER)
    door = charge.coordination
    (letter,) = door.list_dead_letters()
    assert letter.trace_id == TRACE_ID  # the publisher's trace, which the delivery joined
    broken[0] = False
    assert len(door.replay().succeeded) == 1
    (replay,) = [s for s in recorded.spans if s.name.endswith(" replay")]
    assert delivery.context is not None
    assert [(link.context.trace_id, link.context.span_id) for link in replay.links] == [
        (delivery.context.trace_id, delivery.context.span_id)
    ]


def test_any_headers_a_caller_sends_go_on_and_stay_the_callers(
    app: Any, coordination: Coordination, recorded: Recorded
) -> None:
    """Hypothesis: whatever headers a caller gives ``apply_async`` while tracing (a
    traceparent of its own, hostile or not, other headers of any JSON value), the task
    runs, the caller's dict is not written to, and a send without a traceparent of its
    own gets ours."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seen: list[dict[str, Any]] = []

    @coordinated_task(app, coordination=coordination, bind=True)
    def echo(task: Any) -> str:
        seen.append(dict(task.request.headers or {}))
        return "ok"

    values = st.none() | st.booleans() | st.integers() | st.text(max_size=40)
    names = st.text(min_size=1, max_size=20) | st.sampled_from(["traceparent", "tracestate"])

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(headers=st.dictionaries(names, values, max_size=5) | st.none())
    def check(headers: dict[str, Any] | None) -> None:
        before = None if headers is None else dict(headers)
        seen.clear()
        assert echo.apply_async(headers=headers).get() == "ok"
        assert headers == before
        carried = seen[0].get("traceparent")
        if headers is None or "traceparent" not in headers:
            assert isinstance(carried, str)
            assert carried.startswith("00-")

    check()
