"""``process_message`` / ``aprocess_message``: events a broker delivered and holds until the
ack. Nothing is journaled; keys, validation, the pipeline and the store apply as usual."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import CoordinationEventProcessor, EventDeadLettered, InvalidEvent


@pytest.fixture
def processor() -> Any:
    with CoordinationEventProcessor(
        dead_letter_path=":memory:", idempotency_key="id", error_config={"max_retries": 0}
    ) as made:
        yield made


def test_nothing_is_journaled_while_the_handler_runs(
    processor: CoordinationEventProcessor,
) -> None:
    pending: list[int] = []
    processor.on("order")(
        lambda event, kind: pending.append(processor.dead_letters.pending_count())
    )
    processor.process_message({"id": "a"}, "order")
    assert pending == [0]


def test_a_processed_key_is_a_duplicate_the_next_time(
    processor: CoordinationEventProcessor,
) -> None:
    calls: list[str] = []
    processor.on("order")(lambda event, kind: calls.append(event["id"]))
    processor.process_message({"id": "a"}, "order")
    again = processor.process_message({"id": "a"}, "order")
    assert calls == ["a"]
    assert again["status"] == "duplicate"


async def test_async_messages_share_the_keys(processor: CoordinationEventProcessor) -> None:
    calls: list[str] = []

    async def handle(event: Any, kind: str) -> str:
        calls.append(event["id"])
        return "done"

    processor.on("order")(handle)
    assert await processor.aprocess_message({"id": "b"}, "order") == "done"
    assert (await processor.aprocess_message({"id": "b"}, "order"))["status"] == "duplicate"
    assert calls == ["b"]
    assert processor.dead_letters.pending_count() == 0


async def test_a_failure_is_stored_before_event_dead_lettered_is_raised(
    processor: CoordinationEventProcessor,
) -> None:
    async def fail(event: Any, kind: str) -> None:
        raise RuntimeError("down the line")

    processor.on("order")(fail)
    with pytest.raises(EventDeadLettered) as caught:
        await processor.aprocess_message({"id": "c"}, "order")
    (letter,) = processor.dead_letters.list()
    assert int(caught.value.dead_letter_id) == letter.id
    assert letter.event == {"id": "c"}
    assert letter.idempotency_key == "order:c"
    assert letter.replayable


def test_an_invalid_message_is_dead_lettered_as_invalid() -> None:
    rules = {"order": {"required_fields": ["amount"]}}
    with CoordinationEventProcessor(dead_letter_path=":memory:", rules=rules) as processor:
        with pytest.raises(InvalidEvent):
            processor.process_message({"id": "d"}, "order")
        (letter,) = processor.dead_letters.list()
        assert letter.reason == "invalid"


def test_a_required_key_that_is_missing_dead_letters_the_message() -> None:
    with CoordinationEventProcessor(
        dead_letter_path=":memory:", idempotency_key="id", require_idempotency_key=True
    ) as processor:
        with pytest.raises(InvalidEvent):
            processor.process_message({"no": "key"}, "order")
        assert processor.dead_letters.count() == 1


def test_dead_letter_message_keeps_a_description_not_replayable(
    processor: CoordinationEventProcessor,
) -> None:
    letter_id = processor.dead_letter_message(
        {"body": "\\xff", "body_bytes": 1},
        "undecodable",
        reason="poison: the body is not UTF-8",
        error=ValueError("not UTF-8"),
        replayable=False,
    )
    (letter,) = processor.dead_letters.list()
    assert letter.id == letter_id
    assert not letter.replayable
    report = processor.dead_letters.replay()
    assert report.failed == [letter_id]
    assert report.failures[0].error_type == "NotReplayable"


async def test_adead_letter_message_is_replayable_by_default(
    processor: CoordinationEventProcessor,
) -> None:
    seen: list[Any] = []
    processor.on("order")(lambda event, kind: seen.append(event))
    await processor.adead_letter_message(
        {"id": "e"}, "order", reason="redelivered", error=RuntimeError("6 deliveries"), attempts=5
    )
    (letter,) = processor.dead_letters.list()
    assert letter.attempts == 5
    assert processor.dead_letters.replay().succeeded == [letter.id]
    assert seen == [{"id": "e"}]


def test_a_coroutine_handler_is_refused_by_the_sync_path(
    processor: CoordinationEventProcessor,
) -> None:
    async def handle(event: Any, kind: str) -> None:
        return None

    processor.on("order")(handle)
    with pytest.raises(TypeError, match="aprocess_message"):
        processor.process_message({"id": "f"}, "order")
    assert processor.dead_letters.count() == 0


@settings(max_examples=150, deadline=None)
@given(
    event_type=st.one_of(st.text(max_size=20), st.builds(lambda: "a\ud800"), st.integers()),
    reason=st.one_of(st.text(max_size=20), st.builds(lambda: "r\ud800"), st.none()),
    attempts=st.one_of(st.integers(-5, 5), st.just(2**70), st.booleans(), st.text(max_size=2)),
)
def test_dead_letter_message_refuses_bad_arguments_clearly_or_stores_them(
    event_type: Any, reason: Any, attempts: Any
) -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        refusal: Exception | None = None
        try:
            letter_id = proc.dead_letter_message(
                {"n": 1}, event_type, reason=reason, error=ValueError("x"), attempts=attempts
            )
        except (TypeError, ValueError) as exc:
            refusal = exc
        if refusal is not None:  # named, before the store is touched
            assert type(refusal) in (TypeError, ValueError)
            assert proc.dead_letters.count() == 0
            return
        (letter,) = proc.dead_letters.list()
        assert letter.id == letter_id
        assert letter.event_type == event_type
        assert letter.attempts == attempts
