"""The event door at its edges: events the journal cannot hold, replay on asyncio and its
reasons, resetting a breaker, idempotency keys that are missing or hostile."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import CircuitOpenError, CoordinationConfig, EventDeadLettered
from coordination.integration import CoordinationEventProcessor, DeadLetterStore

CONFIG = CoordinationConfig(max_retries=0, base_delay=0.0, circuit_breaker_threshold=1000)


class Hostile:
    """A value whose ``str()`` and ``repr()`` both fail."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


def _cyclic() -> dict[str, Any]:
    event: dict[str, Any] = {"id": 1}
    event["self"] = event
    return event


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


UNSTORABLE = {
    "cyclic": _cyclic(),
    "too deep": {"a": _deep(100_000)},
    "huge int": {"x": 10**5000},
    "tuple key": {(1, 2): "JSON keys are text"},
    "hostile str": {"x": Hostile()},
}


def test_events_the_journal_cannot_hold_are_dead_lettered_and_the_batch_goes_on() -> None:
    seen: list[Any] = []
    with CoordinationEventProcessor(
        lambda event, event_type: seen.append(event["n"]),
        dead_letter_path=":memory:",
        config=CONFIG,
    ) as processor:
        batch: list[Any] = []
        for n, bad in enumerate(UNSTORABLE.values()):
            batch += [{"n": n}, bad]
        outcomes = processor.process_batch(batch, "job")
        assert [o.status for o in outcomes] == ["processed", "dead_lettered"] * len(UNSTORABLE)
        assert seen == list(range(len(UNSTORABLE)))
        letters = processor.dead_letters.list()
        assert [o.dead_letter_id for o in outcomes[1::2]] == [d.id for d in letters]
        for letter in letters:
            assert letter.reason == "invalid"
            assert letter.replayable is False
            assert isinstance(letter.event, str)  # a bounded repr of what was given
            assert len(letter.event) <= 2100
            assert "cannot be stored as JSON" in letter.error
        assert "{...}" in letters[0].event  # the cycle, shown as repr shows it
        assert processor.dead_letters.pending_count() == 0


def test_process_event_raises_dead_lettered_for_an_unstorable_event() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:", config=CONFIG) as processor:
        with pytest.raises(EventDeadLettered, match="invalid") as caught:
            processor.process_event(UNSTORABLE["huge int"], "job")
        assert isinstance(caught.value.__cause__, ValueError)
        assert processor.dead_letters.count() == 1


async def test_aprocess_event_dead_letters_an_unstorable_event() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:", config=CONFIG) as processor:
        with pytest.raises(EventDeadLettered, match="invalid"):
            await processor.aprocess_event(_cyclic(), "job")
        assert processor.dead_letters.count() == 1


# Any Python value, including ones JSON cannot hold and values that break str() or repr().
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**4400, max_value=10**4500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None), max_size=20),  # lone surrogates included
    st.binary(max_size=20),
    st.datetimes().map(lambda d: d),
    st.decimals(allow_nan=True),
    st.builds(Hostile),
    st.just(Path("/tmp/x")),
    st.builds(object),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(), st.tuples(st.integers())), inner, max_size=3),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)


@st.composite
def _events(draw: st.DrawFn) -> Any:
    value = draw(_values)
    if draw(st.booleans()):
        value = {"id": draw(_values), "payload": value}
    if draw(st.integers(0, 9)) == 0:  # sometimes a cycle
        holder: dict[str, Any] = {"v": value}
        holder["loop"] = [holder]
        value = holder
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_events(), min_size=1, max_size=6))
def test_arbitrary_values_never_abort_a_batch_and_each_ends_somewhere(events: list[Any]) -> None:
    handled: list[Any] = []
    with CoordinationEventProcessor(
        lambda event, event_type: handled.append(event),
        dead_letter_path=":memory:",
        idempotency_key="id",
        config=CONFIG,
    ) as processor:
        outcomes = processor.process_batch(events, "anything")
        assert [o.index for o in outcomes] == list(range(len(events)))
        statuses = [o.status for o in outcomes]
        assert set(statuses) <= {"processed", "duplicate", "dead_lettered"}
        dead = statuses.count("dead_lettered")
        assert processor.dead_letters.count() == dead
        assert len(handled) == statuses.count("processed")
        assert processor.dead_letters.pending_count() == 0
        processor.get_processor_status()  # reports never choke on what was seen


# --- replay: on asyncio, and why a letter failed again -----------------------------------


def test_replay_report_says_why_each_letter_failed_again_bounded() -> None:
    def handle(event: Any, event_type: str) -> None:
        if event["n"] == 1:
            raise ConnectionError("upstream refused: " + "x" * 10_000)
        if event["n"] == 2:
            raise KeyError("missing")

    with CoordinationEventProcessor(handle, dead_letter_path=":memory:", config=CONFIG) as proc:
        store = proc.dead_letters
        for n in range(3):
            store.dead_letter(
                None, {"n": n}, "job", reason="failed", error=OSError("x"), attempts=1, key=None
            )
        report = proc.dead_letters.replay()
        assert len(report.succeeded) == 1
        assert [f.error_type for f in report.failures] == ["ConnectionError", "KeyError"]
        assert report.failed == [f.id for f in report.failures]
        long_one = report.failure(report.failed[0])
        assert long_one is not None
        assert long_one.error.startswith("upstream refused: xxx")
        assert len(long_one.error) < 2100  # bounded, as stored
        assert store.list()[0].error == long_one.error
        assert report.failure(report.succeeded[0]) is None


async def test_areplay_awaits_async_handlers_and_keeps_the_loop_free() -> None:
    loop_thread = threading.get_ident()
    store_threads: set[int] = set()
    awaited: list[int] = []
    ran_in_thread: list[bool] = []

    with CoordinationEventProcessor(dead_letter_path=":memory:", config=CONFIG) as processor:

        @processor.on("async_job")
        async def async_job(event: Any, event_type: str) -> None:
            await asyncio.sleep(0)
            if event["n"] == 3:
                raise ValueError("still wrong")
            awaited.append(event["n"])

        @processor.on("sync_job")
        def sync_job(event: Any, event_type: str) -> None:
            ran_in_thread.append(threading.get_ident() != loop_thread)
            time.sleep(0.2)  # a blocking handler: must not stall the loop

        store = processor.dead_letters
        for name in ("list", "is_processed", "delete", "_replay_failed", "_replay_succeeded"):
            original = getattr(store, name)

            def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                store_threads.add(threading.get_ident())
                return _original(*args, **kwargs)

            setattr(store, name, spy)
        for n in range(4):
            store.dead_letter(
                None, {"n": n}, "async_job", reason="failed", error=OSError(), attempts=1, key=None
            )
        store.dead_letter(
            None, {"n": 9}, "sync_job", reason="failed", error=OSError(), attempts=1, key=None
        )

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        report = await store.areplay()
        ticking.cancel()

    assert awaited == [0, 1, 2]
    assert ran_in_thread == [True]
    assert len(report.succeeded) == 4
    assert [(f.error_type, f.error) for f in report.failures] == [("ValueError", "still wrong")]
    assert ticks >= 5  # the loop ran while the sync handler slept
    assert store_threads
    assert loop_thread not in store_threads  # every SQLite call ran in a worker thread


async def test_areplay_needs_a_processor_and_keeps_unreplayable_letters() -> None:
    with DeadLetterStore(":memory:") as store, pytest.raises(RuntimeError, match="not bound"):
        await store.areplay()
    with CoordinationEventProcessor(dead_letter_path=":memory:", config=CONFIG) as processor:
        processor.process_batch([_cyclic()], "job")
        report = await processor.dead_letters.areplay()
        (failure,) = report.failures
        assert failure.error_type == "NotReplayable"
        assert processor.dead_letters.count() == 1
        assert processor.dead_letters.list()[0].attempts == 0  # left as it was


# --- the breaker of an event type, reset from the processor ------------------------------


def test_reset_circuit_breaker_closes_an_event_types_breaker() -> None:
    healthy = False

    def handle(event: Any, event_type: str) -> str:
        if not healthy:
            raise ConnectionError("down")
        return "ok"

    config = CoordinationConfig(max_retries=0, base_delay=0.0, circuit_breaker_threshold=2)
    with CoordinationEventProcessor(handle, dead_letter_path=":memory:", config=config) as proc:
        for _ in range(2):
            with pytest.raises(EventDeadLettered):
                proc.process_event({}, "orders")
        healthy = True
        with pytest.raises(EventDeadLettered) as caught:
            proc.process_event({}, "orders")
        assert isinstance(caught.value.__cause__, CircuitOpenError)
        proc.reset_circuit_breaker("orders")
        assert proc.process_event({}, "orders") == "ok"
        # With no event type: every event type this processor has handled.
        healthy = False
        for event_type in ("orders", "refunds", "refunds"):
            with pytest.raises(EventDeadLettered):
                proc.process_event({}, event_type)
        with pytest.raises(EventDeadLettered):
            proc.process_event({}, "orders")
        healthy = True
        proc.reset_circuit_breaker()
        assert proc.process_event({}, "orders") == "ok"
        assert proc.process_event({}, "refunds") == "ok"
        with pytest.raises(ValueError, match="event_type"):
            proc.reset_circuit_breaker("")


# --- idempotency keys: missing, required, hostile ----------------------------------------


def test_a_missing_key_field_is_counted_and_logged_once_per_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[Any] = []
    with (
        caplog.at_level(logging.WARNING, logger="coordination"),
        CoordinationEventProcessor(
            lambda event, event_type: handled.append(event),
            dead_letter_path=":memory:",
            idempotency_key="event_id",
            config=CONFIG,
        ) as processor,
    ):
        for event_type in ("orders", "orders", "orders", "refunds"):
            processor.process_event({"amount": 1}, event_type)
        processor.process_event({"event_id": "e1"}, "orders")
        processor.process_event({"event_id": "e1"}, "orders")  # the duplicate is skipped
        status = processor.get_processor_status()["idempotency"]
    assert len(handled) == 5  # processed all the same
    assert status == {
        "field": "event_id",
        "required": False,
        "missing_key": {"event_orders": 3, "event_refunds": 1},
    }
    said = [r.getMessage() for r in caplog.records if "have no 'event_id' field" in r.message]
    assert len(said) == 2
    assert "'orders'" in said[0]
    assert "require_idempotency_key=True" in said[0]


def test_require_idempotency_key_dead_letters_events_without_it() -> None:
    with CoordinationEventProcessor(
        dead_letter_path=":memory:",
        idempotency_key="event_id",
        require_idempotency_key=True,
        config=CONFIG,
    ) as processor:
        outcomes = processor.process_batch([{"event_id": "a"}, {"amount": 1}], "orders")
        assert [o.status for o in outcomes] == ["processed", "dead_lettered"]
        (letter,) = processor.dead_letters.list()
        assert (letter.reason, letter.event, letter.replayable) == (
            "invalid",
            {"amount": 1},
            True,
        )
        assert "idempotency key is required" in letter.error
        report = processor.dead_letters.replay()  # still without it: still refused
        assert report.failures[0].error_type == "ValidationError"
        assert processor.get_processor_status()["idempotency"]["missing_key"] == {"event_orders": 2}
    with pytest.raises(TypeError, match="field name"):
        CoordinationEventProcessor(dead_letter_path=":memory:", require_idempotency_key=True)


def test_hostile_key_values_never_abort_and_long_keys_are_bounded() -> None:
    with CoordinationEventProcessor(
        dead_letter_path=":memory:", idempotency_key="id", config=CONFIG
    ) as processor:
        outcomes = processor.process_batch(
            [
                {"id": 10**5000},  # str() of it raises
                {"id": "\ud800"},  # not Unicode text: invalid_unicode, dead-lettered, kept
                {"id": "k" * 5000},
                {"id": "k" * 5000},  # the same long key: a duplicate
                {"id": 42},
            ],
            "orders",
        )
        statuses = [o.status for o in outcomes]
        assert statuses == ["dead_lettered", "dead_lettered", "processed", "duplicate", "processed"]
        assert [letter.reason for letter in processor.dead_letters.list()] == ["invalid"] * 2
        assert outcomes[3].result["idempotency_key"].startswith("sha256:")
        assert len(outcomes[3].result["idempotency_key"]) == len("sha256:") + 64


def test_a_key_function_returning_a_non_string_dead_letters_the_event() -> None:
    with CoordinationEventProcessor(
        dead_letter_path=":memory:",
        idempotency_key=lambda event, event_type: math.pi,  # type: ignore[arg-type,return-value]
        config=CONFIG,
    ) as processor:
        (outcome,) = processor.process_batch([{"n": 1}], "orders")
        assert outcome.status == "dead_lettered"
        (letter,) = processor.dead_letters.list()
        assert (letter.reason, letter.error_type) == ("check_failed", "TypeError")


def test_event_types_must_be_printable_text() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:", config=CONFIG) as processor:
        for bad in ("\ud800", "a\nb"):
            with pytest.raises(ValueError, match="event_type"):
                processor.process_event({}, bad)
        assert processor.dead_letters.pending_count() == 0
