"""CoordinationEventProcessor with the real validator, error handler and monitor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from coordination import EventDeadLettered, ValidationError
from coordination.integration import CoordinationEventProcessor

from .conftest import op_count

EVENTS = [
    {"user_id": "123", "action": "login", "timestamp": "2024-01-01T12:00:00Z"},
    {"user_id": "456", "action": "logout", "timestamp": "2024-01-01T12:05:00Z"},
]
RULES = {"user_activity": {"required_fields": ["user_id", "action"]}}


_MADE: list[CoordinationEventProcessor] = []


@pytest.fixture(autouse=True)
def _close_processors() -> Iterator[None]:
    """Every processor a test makes is closed (its dead-letter journal with it)."""
    yield
    while _MADE:
        _MADE.pop().close()


def make(components: dict[str, Any], **kwargs: Any) -> CoordinationEventProcessor:
    kwargs.setdefault("dead_letter_path", ":memory:")
    processor = CoordinationEventProcessor(**kwargs, **components)
    _MADE.append(processor)
    return processor


def test_without_a_handler_events_are_processed_as_in_the_spec(components: dict[str, Any]) -> None:
    processor = make(components)
    for event in EVENTS:
        assert processor.process_event(event, "user_activity") == {
            "status": "processed",
            "event_type": "user_activity",
        }
    assert op_count(processor.performance_monitor, "event_user_activity") == 2
    status = processor.get_processor_status()
    assert set(status) >= {"validation", "error_handling", "performance", "dead_letters"}
    assert status["dead_letters"] == {
        "count": 0,
        "pending": 0,
        "path": ":memory:",
        "kind": "sqlite",
        "namespace": "default",
    }
    assert status["sources"] == []  # no broker source feeds it


def test_handlers_by_type_then_default_then_subclass(components: dict[str, Any]) -> None:
    calls: list[tuple[str, Any]] = []
    processor = make(components, handler=lambda e, t: calls.append(("default", t)) or "d")

    @processor.on("order")
    def on_order(event: Any, event_type: str) -> str:
        calls.append(("order", event["id"]))
        return "o"

    assert processor.process_event({"id": 7}, "order") == "o"
    assert processor.process_event({"id": 8}, "other") == "d"
    assert calls == [("order", 7), ("default", "other")]

    class Orders(CoordinationEventProcessor):
        def _process_event_internal(self, event_data: Any, event_type: str) -> Any:
            return {"handled_by": "subclass", "id": event_data["id"]}

    with Orders(dead_letter_path=":memory:", **components) as sub:
        assert sub.process_event({"id": 9}, "order") == {"handled_by": "subclass", "id": 9}


def test_invalid_events_are_dead_lettered_without_a_handler_call(
    components: dict[str, Any],
) -> None:
    calls: list[Any] = []
    processor = make(components, rules=RULES, handler=lambda e, t: calls.append(e))
    with pytest.raises(EventDeadLettered) as caught:
        processor.process_event({"user_id": "1"}, "user_activity")
    assert isinstance(caught.value.__cause__, ValidationError)
    assert calls == []
    (letter,) = processor.dead_letters.list()
    assert letter.id == caught.value.dead_letter_id
    assert (letter.reason, letter.attempts, letter.error_type) == ("invalid", 0, "ValidationError")
    assert "action" in letter.error
    # other types are not held to these rules
    processor.process_event({"anything": 1}, "other")
    assert len(calls) == 1


def test_failures_are_retried_by_the_error_handler_then_processed(
    components: dict[str, Any], sleeps: list[float]
) -> None:
    attempts: list[int] = []

    def flaky(event: Any, event_type: str) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("broker hiccup")
        return "ok"

    processor = make(components, handler=flaky, error_config={"max_retries": 3})
    assert processor.process_event({"n": 1}, "t") == "ok"
    assert len(attempts) == 3
    assert sleeps == [0.5, 1.0]  # the waits were asked for, not slept
    assert processor.dead_letters.count() == 0
    report = processor.error_handler.get_error_report()
    assert report["operations"]["event_t"]["retries"] == 2


def test_exhausted_retries_dead_letter_with_the_attempt_count(
    components: dict[str, Any],
) -> None:
    def broken(event: Any, event_type: str) -> None:
        raise ConnectionError("down")

    processor = make(components, handler=broken, error_config={"max_retries": 2})
    with pytest.raises(EventDeadLettered, match="down") as caught:
        processor.process_event({"n": 1}, "t")
    assert isinstance(caught.value.__cause__, ConnectionError)
    (letter,) = processor.dead_letters.list()
    assert (letter.reason, letter.attempts, letter.error_type) == ("failed", 3, "ConnectionError")
    assert processor.dead_letters.pending_count() == 0
    stats = processor.performance_monitor.operation_stats()["event_t"]
    assert (stats.count, stats.failures) == (1, 1)


def test_replay_goes_through_the_handlers_and_empties_the_store(
    components: dict[str, Any],
) -> None:
    healthy = {"now": False}
    done: list[Any] = []

    def handler(event: Any, event_type: str) -> None:
        if not healthy["now"]:
            raise ConnectionError("down")
        done.append(event["n"])

    processor = make(components, handler=handler, error_config={"max_retries": 0})
    outcomes = processor.process_batch([{"n": n} for n in range(4)], "t")
    assert [o.status for o in outcomes] == ["dead_lettered"] * 4
    assert processor.dead_letters.count() == 4
    healthy["now"] = True
    report = processor.dead_letters.replay()
    assert len(report.succeeded) == 4
    assert done == [0, 1, 2, 3]
    assert processor.dead_letters.count() == 0


def test_idempotency_key_skips_duplicates(components: dict[str, Any]) -> None:
    done: list[Any] = []
    processor = make(
        components, handler=lambda e, t: done.append(e["id"]) or "ok", idempotency_key="id"
    )
    assert processor.process_event({"id": "a"}, "t") == "ok"
    again = processor.process_event({"id": "a"}, "t")
    assert again == {"status": "duplicate", "event_type": "t", "idempotency_key": "t:a"}
    outcomes = processor.process_batch([({"id": "a"}, "t"), ({"id": "b"}, "t")])
    assert [o.status for o in outcomes] == ["duplicate", "processed"]
    assert done == ["a", "b"]


def test_batch_reports_each_outcome_and_goes_on(components: dict[str, Any]) -> None:
    def handler(event: Any, event_type: str) -> int:
        if event["n"] == 2:
            raise KeyError("n")
        return int(event["n"]) * 10

    processor = make(components, handler=handler, rules=RULES, error_config={"max_retries": 0})
    batch = [({"n": 1}, "t"), ({"n": 2}, "t"), ({"user_id": "x"}, "user_activity"), ({"n": 3}, "t")]
    outcomes = processor.process_batch(iter(batch))
    assert [(o.index, o.status) for o in outcomes] == [
        (0, "processed"),
        (1, "dead_lettered"),
        (2, "dead_lettered"),
        (3, "processed"),
    ]
    assert [outcomes[0].result, outcomes[3].result] == [10, 30]
    assert outcomes[1].dead_letter_id is not None
    assert processor.dead_letters.count() == 2


def test_bad_batch_items_and_event_types_get_clear_errors(components: dict[str, Any]) -> None:
    processor = make(components)
    with pytest.raises(TypeError, match="item 0 must be an"):
        processor.process_batch([{"not": "a pair"}])
    with pytest.raises(ValueError, match="event_type"):
        processor.process_event({}, "")
    with pytest.raises(TypeError, match="handler must be callable"):
        make(components, handler=42)  # type: ignore[arg-type]


async def test_async_twin_with_coroutine_and_plain_handlers(components: dict[str, Any]) -> None:
    processor = make(components)
    seen: list[str] = []

    @processor.on("async")
    async def handle(event: Any, event_type: str) -> str:
        await asyncio.sleep(0)
        seen.append(event_type)
        return "async-ok"

    assert await processor.aprocess_event({"n": 1}, "async") == "async-ok"
    assert await processor.aprocess_event({"n": 2}, "plain") == {
        "status": "processed",
        "event_type": "plain",
    }
    assert seen == ["async"]

    @processor.on("broken")
    async def broken(event: Any, event_type: str) -> None:
        raise ConnectionError("down")

    with pytest.raises(EventDeadLettered):
        await processor.aprocess_event({"n": 3}, "broken")
    assert processor.dead_letters.list()[0].attempts == 3  # config.max_retries=2, plus one


def test_validation_switch_off_skips_rules(components: dict[str, Any]) -> None:
    components = {**components, "config": components["config"].replace(enable_validation=False)}
    processor = make(components, rules=RULES)
    assert processor.process_event({}, "user_activity")["status"] == "processed"


async def test_coroutine_handlers_need_the_async_path_but_replay_anywhere(
    components: dict[str, Any],
) -> None:
    processor = make(components, error_config={"max_retries": 0})
    healthy = {"now": False}

    @processor.on("async")
    async def handle(event: Any, event_type: str) -> str:
        if not healthy["now"]:
            raise ConnectionError("down")
        return "ok"

    with pytest.raises(TypeError, match="use aprocess_event"):
        processor.process_event({"n": 1}, "async")
    with pytest.raises(TypeError, match="use aprocess_event"):
        processor.process_batch([{"n": 1}], "async")
    assert processor.dead_letters.pending_count() == 0  # refused before journaling
    with pytest.raises(EventDeadLettered):
        await processor.aprocess_event({"n": 2}, "async")
    healthy["now"] = True
    report = processor.dead_letters.replay()  # from inside this running loop
    assert len(report.succeeded) == 1
    assert processor.dead_letters.count() == 0


def test_a_rule_set_that_cannot_run_dead_letters_instead_of_losing(
    components: dict[str, Any],
) -> None:
    processor = make(components, rules={"t": "no_such_loaded_rule_set"})
    with pytest.raises(EventDeadLettered) as caught:
        processor.process_event({"n": 1}, "t")
    (letter,) = processor.dead_letters.list()
    assert letter.reason == "check_failed"
    assert letter.error_type == type(caught.value.__cause__).__name__
    assert processor.dead_letters.pending_count() == 0
