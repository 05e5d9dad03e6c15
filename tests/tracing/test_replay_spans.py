"""A dead letter's replay: one span ``"<event_type> replay"`` per letter fed back, the
event's protected call (its operation's span) inside it, a failed replay an error; none
without a provider."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from coordination import EventDeadLettered
from coordination.integration import CoordinationEventProcessor

from .doors import hex_span, recording


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")


def _processor(broken: list[bool]) -> CoordinationEventProcessor:
    def handle(event: Any, event_type: str) -> str:
        if broken[0]:
            raise ConnectionError("password=hunter2 refused")
        return "done"

    return CoordinationEventProcessor(
        handle,
        error_config={"max_retries": 0},
        dead_letter_path=":memory:",
        validate_structure=False,
    )


def test_each_replayed_letter_has_its_span_around_its_processing() -> None:
    broken = [True]
    with _processor(broken) as processor:
        for n in range(2):
            with pytest.raises(EventDeadLettered):
                processor.process_event({"n": n}, "orders")
        with recording() as recorded:
            report = processor.dead_letters.replay(limit=1)  # fails again: still broken
            broken[0] = False
            again = processor.dead_letters.replay()
    assert len(report.failed) == 1
    assert len(again.succeeded) == 2
    replays = [s for s in recorded.spans if s.name == "orders replay"]
    assert [attributes(s)["coordination.outcome"] for s in replays] == [
        "error",
        "replayed",
        "replayed",
    ]
    failed = replays[0]
    assert failed.status.status_code is StatusCode.ERROR
    assert "hunter2" not in str([dict(e.attributes or {}) for e in failed.events])
    assert attributes(failed)["coordination.dead_letter.reason"]
    assert attributes(replays[1])["coordination.dead_letter.attempts"] >= 1
    assert {attributes(s)["coordination.dead_letter_id"] for s in replays[1:]} == {
        str(i) for i in again.succeeded
    }
    calls = [s for s in recorded.spans if s.name == "event_orders"]
    assert all(c.kind is SpanKind.INTERNAL for c in calls)
    assert sorted(parent_id(c) or "" for c in calls) == sorted(hex_span(r) for r in replays)


async def test_an_async_replay_has_the_same_spans() -> None:
    broken = [True]
    with _processor(broken) as processor:
        with pytest.raises(EventDeadLettered):
            processor.process_event({"n": 1}, "orders")
        broken[0] = False
        with recording() as recorded:
            report = await processor.dead_letters.areplay()
    assert len(report.succeeded) == 1
    (replay,) = [s for s in recorded.spans if s.name == "orders replay"]
    (call,) = [s for s in recorded.spans if s.name == "event_orders"]  # on a worker thread
    assert parent_id(call) == hex_span(replay)


def test_no_provider_no_replay_span() -> None:
    broken = [True]
    with _processor(broken) as processor:
        with pytest.raises(EventDeadLettered):
            processor.process_event({"n": 1}, "orders")
        broken[0] = False
        with recording() as recorded:
            pass
        assert len(processor.dead_letters.replay().succeeded) == 1
    assert recorded.spans == ()
