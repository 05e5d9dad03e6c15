"""The broker-independent consume loop (``backends._source.BrokerSource``) on an in-memory
broker: what is acknowledged, given back, dead-lettered; outages; stopping."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import CoordinationEventProcessor
from memory_broker import MemoryBroker, MemorySource
from memory_broker import message as _message
from memory_broker import no_sleep as _no_sleep

NO_RETRIES = {"max_retries": 0}  # a failure is dead-lettered at once, no backoff waits


@pytest.fixture
def processor() -> Any:
    with CoordinationEventProcessor(dead_letter_path=":memory:", error_config=NO_RETRIES) as made:
        yield made


def test_processed_messages_are_acknowledged_and_poison_is_dead_lettered_alone(
    processor: CoordinationEventProcessor,
) -> None:
    seen: list[int] = []
    processor.on("order")(lambda event, kind: seen.append(event["n"]))
    memory = MemoryBroker()
    for n in range(10):
        memory.put(*_message({"n": n}))
    memory.put(b"\xff not utf-8", {"event-type": "order"})
    memory.put(b"{not json", {"event-type": "order"})
    memory.put(b"[" * 100_000 + b"]" * 100_000, {"event-type": "order"})
    memory.put(b"{}", {})  # no type
    source = MemorySource(processor, memory, async_sleep=_no_sleep)
    settled = source.run(max_idle_polls=2, handle_signals=False)
    assert seen == list(range(10))
    assert settled == 14
    assert len(memory.acked) == 14
    assert not memory.requeued
    letters = processor.dead_letters.list()
    assert len(letters) == 4
    assert all(letter.reason.startswith("poison: ") for letter in letters)
    assert not any(letter.replayable for letter in letters)
    assert {letter.event["body_encoding"] for letter in letters} == {"utf-8", "base64"}
    assert source.status()["poison"] == 4
    assert source.status()["processed"] == 10


def test_a_message_delivered_too_often_is_dead_lettered_replayable(
    processor: CoordinationEventProcessor,
) -> None:
    memory = MemoryBroker()
    memory.put(*_message({"n": 1}), delivered_before=5)  # this is its 6th delivery
    source = MemorySource(processor, memory, max_deliveries=5, async_sleep=_no_sleep)
    assert source.run(max_idle_polls=1, handle_signals=False) == 1
    (letter,) = processor.dead_letters.list()
    assert letter.reason == "redelivered"
    assert letter.replayable
    assert letter.event == {"n": 1}
    assert letter.attempts == 5
    assert "more than max_deliveries=5" in letter.error


def test_a_failing_handler_is_dead_lettered_then_acknowledged(
    processor: CoordinationEventProcessor,
) -> None:
    def fail(event: Any, kind: str) -> None:
        raise ValueError("the handler broke")

    processor.on("order")(fail)
    memory = MemoryBroker()
    memory.put(*_message({"n": 1}))
    source = MemorySource(processor, memory, async_sleep=_no_sleep)
    source.run(max_idle_polls=1, handle_signals=False)
    (letter,) = processor.dead_letters.list()
    assert letter.reason == "failed"
    assert letter.error_type == "ValueError"
    assert len(memory.acked) == 1
    assert source.status()["dead_lettered"] == 1


def test_a_store_that_fails_gives_the_message_back_and_the_loop_backs_off(
    processor: CoordinationEventProcessor, caplog: pytest.LogCaptureFixture
) -> None:
    from coordination import StoreError

    failures = {"left": 3}
    real = processor.aprocess_message

    async def flaky(event: Any, kind: str) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreError("the dead-letter store is unreachable")
        return await real(event, kind)

    processor.aprocess_message = flaky  # type: ignore[method-assign]
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    memory = MemoryBroker()
    memory.put(*_message({"n": 1}))
    source = MemorySource(processor, memory, async_sleep=sleep, reconnect_interval=0.5)
    with caplog.at_level(logging.WARNING, "coordination"):
        source.run(max_idle_polls=1, handle_signals=False)
    assert len(memory.requeued) == 3
    assert len(memory.acked) == 1
    assert len(pauses) == 3
    assert pauses[0] <= pauses[-1] <= 2.0
    unavailable = [r for r in caplog.records if "cannot settle" in r.getMessage()]
    assert len(unavailable) == 1  # logged once for the whole outage
    assert any("working again" in r.getMessage() for r in caplog.records)


def test_a_broker_outage_is_logged_once_counted_and_waited_out(
    processor: CoordinationEventProcessor, caplog: pytest.LogCaptureFixture
) -> None:
    memory = MemoryBroker(down=True)
    memory.put(*_message({"n": 1}))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 5:
            memory.down = False

    source = MemorySource(
        processor, memory, async_sleep=sleep, reconnect_interval=0.1, max_reconnect_interval=1.0
    )
    with caplog.at_level(logging.WARNING, "coordination"):
        assert source.run(max_idle_polls=1, handle_signals=False) == 1
    assert source.status()["broker_errors"] == 5
    assert source.status()["reconnects"] == 5
    assert [w <= 1.0 for w in waits] == [True] * 5
    assert waits[-1] > waits[0]
    logged = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in logged) == 1
    assert sum("working again" in m for m in logged) == 1


def test_stop_finishes_what_is_in_flight_and_gives_back_what_has_not_started(
    processor: CoordinationEventProcessor,
) -> None:
    source: MemorySource

    def handle(event: Any, kind: str) -> None:
        if event["n"] == 2:
            source.stop()

    processor.on("order")(handle)
    memory = MemoryBroker()
    for n in range(10):
        memory.put(*_message({"n": n}))
    source = MemorySource(processor, memory, batch_size=10, async_sleep=_no_sleep)
    assert source.run(handle_signals=False) == 3
    assert [json.loads(d.body)["n"] for d in memory.acked] == [0, 1, 2]
    assert len(memory.requeued) == 7
    assert len(memory.queue) == 7


def test_sigterm_stops_the_loop_gracefully(processor: CoordinationEventProcessor) -> None:
    started = threading.Event()

    def handle(event: Any, kind: str) -> None:
        if not started.is_set():
            started.set()
            os.kill(os.getpid(), signal.SIGTERM)

    processor.on("order")(handle)
    memory = MemoryBroker()
    for n in range(5):
        memory.put(*_message({"n": n}))
    previous = signal.getsignal(signal.SIGTERM)
    source = MemorySource(processor, memory, async_sleep=_no_sleep)
    settled = source.run()
    assert settled >= 1
    assert len(memory.acked) == settled
    assert len(memory.acked) + len(memory.queue) == 5  # nothing lost
    assert signal.getsignal(signal.SIGTERM) is previous  # put back


def test_concurrency_runs_async_handlers_together(processor: CoordinationEventProcessor) -> None:
    running = {"now": 0, "most": 0}

    async def handle(event: Any, kind: str) -> None:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(0.01)
        running["now"] -= 1

    processor.on("order")(handle)
    memory = MemoryBroker()
    for n in range(20):
        memory.put(*_message({"n": n}))
    source = MemorySource(processor, memory, concurrency=5, batch_size=20, async_sleep=_no_sleep)
    assert source.run(max_idle_polls=1, handle_signals=False) == 20
    assert running["most"] == 5


def test_heartbeats_run_while_a_slow_handler_works(processor: CoordinationEventProcessor) -> None:
    async def slow(event: Any, kind: str) -> None:
        await asyncio.sleep(0.12)

    processor.on("order")(slow)
    memory = MemoryBroker()
    memory.put(*_message({"n": 1}))
    source = MemorySource(processor, memory, heartbeat=0.025, async_sleep=_no_sleep)
    source.run(max_idle_polls=1, handle_signals=False)
    assert memory.heartbeats >= 3


def test_publish_round_trips_through_the_envelope(processor: CoordinationEventProcessor) -> None:
    memory = MemoryBroker()
    source = MemorySource(processor, memory, async_sleep=_no_sleep)
    source.publish({"n": "é"}, "order")
    source.close()
    ((body, headers, _),) = memory.queue
    assert json.loads(body) == {"n": "é"}
    assert headers["event-type"] == "order"


async def test_run_inside_a_loop_is_refused_with_the_async_name(
    processor: CoordinationEventProcessor,
) -> None:
    source = MemorySource(processor, MemoryBroker())
    with pytest.raises(RuntimeError, match="await arun"):
        source.run()
    with pytest.raises(RuntimeError, match="await apublish"):
        source.publish({}, "order")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("concurrency", 0),
        ("batch_size", True),
        ("max_deliveries", 1.5),
        ("heartbeat", 0),
        ("poll_timeout", float("nan")),
        ("reconnect_interval", -1),
        ("max_message_bytes", "big"),
    ],
)
def test_bad_options_are_refused_by_name(
    processor: CoordinationEventProcessor, option: str, value: Any
) -> None:
    from coordination import ConfigError

    with pytest.raises(ConfigError, match=option):
        MemorySource(processor, MemoryBroker(), **{option: value})


def test_a_processor_without_the_message_api_is_refused() -> None:
    with pytest.raises(TypeError, match="aprocess_message"):
        MemorySource(object(), MemoryBroker())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bodies=st.lists(
        st.tuples(
            st.binary(max_size=200),
            st.dictionaries(
                st.sampled_from(["event-type", "traceparent", "x"]),
                st.one_of(st.text(max_size=20), st.binary(max_size=20), st.integers()),
                max_size=3,
            ),
        ),
        max_size=8,
    )
)
def test_hostile_messages_are_all_settled_and_none_lost(
    bodies: list[tuple[bytes, dict[str, Any]]],
) -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:", validate_structure=False) as proc:
        memory = MemoryBroker()
        for body, headers in bodies:
            memory.put(body, headers)
        source = MemorySource(proc, memory, async_sleep=_no_sleep)
        settled = source.run(max_idle_polls=1, handle_signals=False)
        assert settled == len(bodies) == len(memory.acked)
        assert not memory.requeued
        assert source.status()["processed"] + proc.dead_letters.count() == len(bodies)


def test_a_poison_message_the_store_cannot_take_is_given_back_not_counted(
    processor: CoordinationEventProcessor,
) -> None:
    from coordination import StoreError

    async def store_down(*args: Any, **kwargs: Any) -> int:
        raise StoreError("the dead-letter store is unreachable")

    processor.adead_letter_message = store_down  # type: ignore[method-assign]
    memory = MemoryBroker()
    memory.put(b"{not json", {"event-type": "order"})
    memory.put(*_message({"n": 1}), delivered_before=9)
    source = MemorySource(processor, memory, async_sleep=_no_sleep, max_deliveries=5)
    batch = memory.queue.copy()
    source.run(max_idle_polls=1, handle_signals=False, stop=lambda: len(memory.requeued) >= 2)
    assert len(memory.requeued) >= 2
    assert not memory.acked
    assert source.status()["poison"] == 0
    assert source.status()["redelivered_too_often"] == 0
    assert len(batch) == 2


def test_synchronous_handlers_of_a_batch_share_one_worker_thread_in_order(
    processor: CoordinationEventProcessor,
) -> None:
    threads: list[int] = []
    order: list[int] = []

    def handle(event: Any, kind: str) -> None:
        threads.append(threading.get_ident())
        order.append(event["n"])

    async def handle_async(event: Any, kind: str) -> None:
        order.append(event["n"])

    def fail(event: Any, kind: str) -> None:
        if event["n"] not in order:  # retried by the pipeline: counted once
            order.append(event["n"])
        raise ValueError("this one fails")

    processor.on("order")(handle)
    processor.on("async")(handle_async)
    processor.on("failing")(fail)
    memory = MemoryBroker()
    kinds = ["order"] * 4 + ["failing", "async", "order", "order"]
    for n, kind in enumerate(kinds):
        memory.put(*_message({"n": n}, kind))
    memory.put(b"{poison", {"event-type": "order"})
    memory.put(*_message({"n": 9}), delivered_before=9)  # over-delivered, within a run
    memory.put(*_message({"n": 10}))
    source = MemorySource(processor, memory, batch_size=20, async_sleep=_no_sleep)
    assert source.run(max_idle_polls=1, handle_signals=False) == 11
    assert order == [0, 1, 2, 3, 4, 5, 6, 7, 10]
    assert len(set(threads)) <= 3  # one hop per run of synchronous handlers, not per event
    assert threading.get_ident() not in threads  # never on the loop's thread
    assert [
        json.loads(d.body).get("n") if d.body[:1] == b"{" and d.body != b"{poison" else None
        for d in memory.acked
    ][:8] == list(range(8))
    status = source.status()
    assert status["processed"] == 8
    assert status["dead_lettered"] == 1
    assert status["poison"] == 1
    assert status["redelivered_too_often"] == 1


def test_a_stop_on_the_worker_thread_gives_back_what_it_had_not_started(
    processor: CoordinationEventProcessor,
) -> None:
    source: MemorySource

    def handle(event: Any, kind: str) -> None:
        if event["n"] == 1:
            source.stop()

    processor.on("order")(handle)
    memory = MemoryBroker()
    for n in range(6):
        memory.put(*_message({"n": n}))
    source = MemorySource(processor, memory, batch_size=6, async_sleep=_no_sleep)
    assert source.run(handle_signals=False) == 2
    assert [json.loads(d.body)["n"] for d in memory.acked] == [0, 1]
    assert len(memory.requeued) == 4


def test_a_store_failing_on_the_worker_thread_gives_that_message_back(
    processor: CoordinationEventProcessor,
) -> None:
    from coordination import StoreError

    processor.on("order")(lambda event, kind: None)
    real = processor.process_message
    calls = {"n": 0}

    def flaky(event: Any, kind: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreError("the dead-letter store is unreachable")
        return real(event, kind)

    processor.process_message = flaky  # type: ignore[method-assign]
    memory = MemoryBroker()
    for n in range(3):
        memory.put(*_message({"n": n}))
    source = MemorySource(processor, memory, batch_size=3, async_sleep=_no_sleep)
    source.run(max_idle_polls=1, handle_signals=False)
    assert sorted(json.loads(d.body)["n"] for d in memory.acked) == [0, 1, 2]
    # 1 could not be settled; 2, after it in the batch, is given back untried (the store
    # is down: it would fail too), and both are settled on redelivery
    assert [json.loads(d.body)["n"] for d in memory.requeued] == [1, 2]


def test_per_loop_keeps_a_value_for_each_loop_and_forgets_closed_ones() -> None:
    from coordination.backends._source import PerLoop

    values: PerLoop[str] = PerLoop()

    async def put(value: str) -> str | None:
        before = values.get()
        values.set(value)
        return before

    first = asyncio.new_event_loop()
    second = asyncio.new_event_loop()
    try:
        assert first.run_until_complete(put("a")) is None
        assert second.run_until_complete(put("b")) is None  # not the first loop's
        assert first.run_until_complete(put("a2")) == "a"
        assert sorted(values._by_loop.values()) == ["a2", "b"]
        first.close()
        assert asyncio.run(put("c")) is None  # setting drops the closed first loop's
        assert sorted(values._by_loop.values()) == ["b", "c"]

        async def take() -> tuple[str | None, str | None]:
            values.discard("not it")
            kept = values.get()
            return kept, values.pop()

        assert second.run_until_complete(take()) == ("b", "b")
    finally:
        second.close()
