"""Attacks on the shared broker loop (``BrokerSource``) and the envelope (``_messages``):
hostile bodies and headers, cancellation, stops from anywhere, concurrency. Each message
must end acknowledged once or given back, never lost, never settled twice."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import CoordinationEventProcessor
from coordination.backends._source import Delivery
from memory_broker import MemoryBroker, MemorySource, message, no_sleep


def _drain(memory: MemoryBroker, **options: Any) -> tuple[MemorySource, int]:
    with CoordinationEventProcessor(dead_letter_path=":memory:", validate_structure=False) as proc:
        source = MemorySource(proc, memory, async_sleep=no_sleep, **options)
        settled = source.run(max_idle_polls=1, handle_signals=False)
        source.dead_letter_count = proc.dead_letters.count()  # type: ignore[attr-defined]
    return source, settled


def _assert_each_settled_once(memory: MemoryBroker, sent: int) -> None:
    assert not memory.twice
    assert not memory.outstanding
    assert len(memory.acked) == sent
    assert not memory.queue


@pytest.mark.parametrize("view", [bytearray, memoryview])
def test_a_body_handed_out_as_a_buffer_is_decoded_or_dead_lettered(view: Any) -> None:
    memory = MemoryBroker()
    memory.put(view(b'{"n": 1}'), {"event-type": "order"})
    memory.put(view(b"{not json"), {"event-type": "order"})
    source, settled = _drain(memory)
    assert settled == 2
    _assert_each_settled_once(memory, 2)
    assert source.counts.processed == source.counts.poison == 1


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def _huge_int() -> int:
    return 10**5000  # str() refuses it: beyond the int-to-text limit


_NESTED: list[Any] = []
for _ in range(100_000):
    _NESTED = [_NESTED]


def _nested() -> list[Any]:
    return _NESTED  # str() recurses too deeply


_hostile_values = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=30),
    st.integers(),
    st.builds(_huge_int),
    st.builds(_Unprintable),
    st.builds(_nested),
    st.floats(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)
_hostile_headers = st.dictionaries(
    st.one_of(
        st.sampled_from(["event-type", "traceparent", "tracestate", "baggage", "x"]),
        st.integers(),
        st.builds(_huge_int),
    ),
    _hostile_values,
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=60),
        st.just(b'{"n": 1}'),
        st.just(b"[NaN, Infinity, -Infinity, 1e999]"),
        st.just(b'"\\ud800"'),
        st.just(b"1" * 5000),
    ),
    view=st.sampled_from([bytes, bytearray, memoryview]),
    headers=_hostile_headers,
)
def test_hostile_bodies_and_headers_are_settled_once_and_never_crash_the_loop(
    body: bytes, view: Any, headers: dict[Any, Any]
) -> None:
    memory = MemoryBroker()
    memory.put(view(body), headers)
    _, settled = _drain(memory)
    assert settled == 1
    _assert_each_settled_once(memory, 1)
    assert not memory.requeued  # nothing about a message itself makes it unsettleable


def test_a_body_cut_inside_a_character_is_still_described_as_text() -> None:
    from coordination.backends._messages import describe

    body = "é".encode() * 20_000  # the described head ends inside a character
    described = describe(body[1:], {})  # not UTF-8 from its first byte: binary
    assert described["body_encoding"] == "base64"
    described = describe(b"{" + body, {})
    assert described["body_encoding"] == "utf-8"
    assert described["body"].startswith("{éé")


_GOOD_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_trace_values = st.one_of(
    st.text(max_size=40),
    st.just(_GOOD_PARENT),
    st.builds(lambda n: "k=v," * n, st.integers(2_000, 50_000)),  # over OpenTelemetry's limits
    st.builds(lambda: "\ud800=\udfff"),  # lone surrogates
    st.binary(max_size=20),
)


@settings(max_examples=100, deadline=None)
@given(
    carried=st.dictionaries(
        st.sampled_from(["traceparent", "tracestate", "baggage"]), _trace_values, min_size=1
    )
)
def test_hostile_trace_headers_with_opentelemetry_loaded_are_ignored_not_requeued(
    carried: dict[str, Any],
) -> None:
    pytest.importorskip("opentelemetry.propagate")
    records: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(catcher)
    try:
        memory = MemoryBroker()
        memory.put(b'{"n": 1}', {"event-type": "order", **carried})
        source, settled = _drain(memory)
    finally:
        logging.getLogger().removeHandler(catcher)
    assert settled == 1
    _assert_each_settled_once(memory, 1)
    assert not memory.requeued
    assert source.counts.processed == 1
    assert all(len(record.getMessage()) < 2000 for record in records)  # no header logged whole


def test_a_good_trace_header_is_still_carried_beside_hostile_ones() -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    seen: list[int] = []
    with CoordinationEventProcessor(dead_letter_path=":memory:", validate_structure=False) as proc:

        async def handle(event: Any, kind: str) -> None:
            seen.append(trace.get_current_span().get_span_context().trace_id)

        proc.on("order")(handle)
        memory = MemoryBroker()
        headers = {"event-type": "order", "traceparent": _GOOD_PARENT, "baggage": "\ud800"}
        memory.put(b"{}", headers)
        MemorySource(proc, memory, async_sleep=no_sleep).run(max_idle_polls=1, handle_signals=False)
    assert seen == [int("0af7651916cd43dd8448eb211c80319c", 16)]


# --- stopping, running twice ------------------------------------------------------------


def test_a_stop_before_run_starts_is_not_lost() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        memory = MemoryBroker(fetch_forever=True)
        memory.put(b"{}", {"event-type": "order"})
        source = MemorySource(proc, memory, async_sleep=no_sleep)
        source.stop()  # say, from another thread, just before the consuming thread runs
        done = threading.Event()
        worker = threading.Thread(target=lambda: (source.run(), done.set()), daemon=True)
        worker.start()
        stopped = done.wait(5)
        if not stopped:
            source.stop()
            worker.join(5)
        assert stopped
        assert len(memory.queue) == 1  # the stop came first: nothing consumed
        # The request was used up: the next run consumes again.
        memory.fetch_forever = False
        assert source.run(max_idle_polls=1, handle_signals=False) == 1


def test_stop_twice_then_run_twice_in_a_row() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        memory = MemoryBroker()
        source = MemorySource(proc, memory, async_sleep=no_sleep)
        for n in range(3):
            memory.put(*message({"n": n}))
            assert source.run(max_idle_polls=2, handle_signals=False) == 1
        source.stop()
        source.stop()
        assert source.run(max_idle_polls=2, handle_signals=False) == 0
        _assert_each_settled_once(memory, 3)


def test_a_second_run_while_one_is_running_is_refused() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        memory = MemoryBroker(fetch_forever=True)
        source = MemorySource(proc, memory, async_sleep=no_sleep)
        worker = threading.Thread(target=lambda: source.run(handle_signals=False))
        worker.start()
        try:
            deadline = time.monotonic() + 5
            while source.connects == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            safety = threading.Timer(2, source.stop)  # without the refusal, end it anyway
            safety.start()
            with pytest.raises(RuntimeError, match="already running"):
                source.run(handle_signals=False)
            safety.cancel()
        finally:
            source.stop()
            worker.join(5)
        assert not worker.is_alive()
        memory.fetch_forever = False
        memory.put(b"{}", {"event-type": "order"})
        assert source.run(max_idle_polls=1, handle_signals=False) == 1  # once it ended: fine


# --- cancellation -----------------------------------------------------------------------


async def _others() -> list[asyncio.Task[Any]]:
    await asyncio.sleep(0.01)
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


async def test_cancelling_arun_while_it_fetches_leaves_no_fetch_running() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        memory = MemoryBroker(fetch_forever=True)
        source = MemorySource(proc, memory, async_sleep=no_sleep)
        running = asyncio.ensure_future(source.arun(handle_signals=False))
        await asyncio.sleep(0.02)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert await _others() == []


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_cancelling_arun_mid_settle_acks_nothing_in_flight(concurrency: int) -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        started = asyncio.Event()

        async def handle(event: Any, kind: str) -> None:
            started.set()
            await asyncio.sleep(30)

        proc.on("order")(handle)
        memory = MemoryBroker()
        for n in range(6):
            memory.put(*message({"n": n}))
        source = MemorySource(proc, memory, async_sleep=no_sleep, concurrency=concurrency)
        running = asyncio.ensure_future(source.arun(handle_signals=False))
        await asyncio.wait_for(started.wait(), 5)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(running, 5)  # no hang
        assert not memory.acked
        assert not memory.twice
        assert len(memory.queue) == 6  # all given back when the connection closed
        assert await _others() == []


class _BrokenAck(MemorySource):
    """A subclass whose ack fails with an error that is not a broker error (a bug)."""

    async def _fetch(self, count: int, wait: float) -> list[Delivery]:
        deliveries = await super()._fetch(count, wait)
        for delivery in deliveries:
            if json.loads(bytes(delivery.body))["n"] == 0:
                delivery.ack = _fail  # type: ignore[method-assign]
        return deliveries


async def _fail() -> None:
    raise RuntimeError("the client library broke")


async def test_a_settle_that_fails_at_concurrency_leaves_no_sibling_running() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:

        async def handle(event: Any, kind: str) -> None:
            await asyncio.sleep(0 if event["n"] == 0 else 0.2)

        proc.on("order")(handle)
        memory = MemoryBroker()
        for n in range(4):
            memory.put(*message({"n": n}))
        source = _BrokenAck(proc, memory, async_sleep=no_sleep, concurrency=4)
        with pytest.raises(RuntimeError, match="broke"):
            await source.arun(max_idle_polls=1, handle_signals=False)
        assert await _others() == []  # nothing goes on settling after arun has returned
        await asyncio.sleep(0.3)
        assert source.counts.broker_errors == 0  # no late ack on the closed connection
        assert not memory.acked
        assert len(memory.queue) == 4  # all back with the broker


# --- backoff ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    interval=st.floats(0, 60),
    ceiling=st.floats(0, 1e6),
    failures=st.integers(1, 40),
)
def test_the_reconnect_backoff_is_never_zero_and_never_past_its_ceiling(
    interval: float, ceiling: float, failures: int
) -> None:
    from coordination import ConfigError

    memory = MemoryBroker(down=True)
    pauses: list[float] = []
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:

        async def sleep(seconds: float) -> None:
            pauses.append(seconds)
            if len(pauses) == failures:
                source.stop()

        try:
            source = MemorySource(
                proc,
                memory,
                async_sleep=sleep,
                reconnect_interval=interval,
                max_reconnect_interval=ceiling,
            )
        except ConfigError:
            assert interval < 0.001  # refused by name, at construction
            return
        source.run(handle_signals=False)
    assert len(pauses) == failures
    assert all(0.0005 <= pause <= max(interval, ceiling) for pause in pauses)


# --- signals ------------------------------------------------------------------------------


async def test_the_applications_own_loop_signal_handler_survives_arun() -> None:
    loop = asyncio.get_running_loop()
    got = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, got.set)
    try:
        with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
            source = MemorySource(proc, MemoryBroker(), async_sleep=no_sleep)
            await source.arun(max_idle_polls=2)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(got.wait(), 5)  # still the application's
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def test_a_second_sigint_stops_at_once_when_a_handler_hangs() -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:

        async def hang(event: Any, kind: str) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # finish in flight, then stop…
            await asyncio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)  # …no: stop now
            await asyncio.sleep(30)

        proc.on("order")(hang)
        memory = MemoryBroker()
        memory.put(*message({"n": 1}))
        source = MemorySource(proc, memory, async_sleep=no_sleep)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            source.run()
        assert time.monotonic() - started < 10
        assert not memory.acked
        assert len(memory.queue) == 1  # given back with the connection
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- the envelope: what publish accepts, a consumer decodes -------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(event=_json, event_type=st.one_of(st.text(), st.text(min_size=250, max_size=2000)))
def test_what_publish_accepts_a_consumer_decodes_to_the_same_event(
    event: Any, event_type: str
) -> None:
    from coordination import ConfigError, StoreError
    from coordination.backends._messages import decode_message, encode_message

    refusal: Exception | None = None
    try:
        encoded = encode_message(event, event_type)
    except (ConfigError, StoreError) as exc:
        refusal = exc
    if refusal is not None:
        assert len(str(refusal)) < 1000  # the refusal quotes the input bounded
        return
    decoded, decoded_type = decode_message(encoded.body, encoded.headers)
    assert decoded_type == event_type
    assert decoded == event


# --- what a handler raises --------------------------------------------------------------

_kinds = itertools.count()


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=30) | st.builds(lambda: "bad \ud800 value"))
def test_a_handler_error_whose_text_cannot_be_encoded_is_dead_lettered_once(text: str) -> None:
    with CoordinationEventProcessor(
        dead_letter_path=":memory:", validate_structure=False, error_config={"max_retries": 0}
    ) as proc:

        def fail(event: Any, kind: str) -> None:
            raise ValueError(text)  # say, quoting a field of the event

        kind = f"order_{next(_kinds)}"  # a breaker of its own: failures open one per type
        proc.on(kind)(fail)
        memory = MemoryBroker()
        memory.put(*message({"n": 1}, kind))
        source = MemorySource(proc, memory, async_sleep=no_sleep)
        assert source.run(max_idle_polls=1, handle_signals=False) == 1
        (letter,) = proc.dead_letters.list()
    assert letter.reason == "failed"
    assert not memory.requeued
    _assert_each_settled_once(memory, 1)


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
@pytest.mark.parametrize("coroutine", [False, True])
@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_handler_raising_a_base_exception_ends_the_run_with_it_and_loses_nothing(
    raised: type[BaseException], coroutine: bool, concurrency: int
) -> None:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:

        def handle(event: Any, kind: str) -> None:
            if event["n"] == 1:
                raise raised()

        async def ahandle(event: Any, kind: str) -> None:
            await asyncio.sleep(0)
            handle(event, kind)

        proc.on("order")(ahandle if coroutine else handle)
        memory = MemoryBroker()
        for n in range(4):
            memory.put(*message({"n": n}))
        source = MemorySource(proc, memory, async_sleep=no_sleep, concurrency=concurrency)
        with pytest.raises(raised):  # passed through untouched, never swallowed
            source.run(max_idle_polls=1, handle_signals=False)
        assert proc.dead_letters.count() == 0  # not a failure of the event
    assert 1 not in [json.loads(d.body)["n"] for d in memory.acked]
    assert not memory.twice
    assert len(memory.acked) + len(memory.queue) == 4  # the rest went back to the broker


# --- counts against the broker's own view -------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["good", "poison", "fail"]), min_size=1, max_size=30),
    concurrency=st.integers(1, 5),
    stop_after=st.integers(0, 30),
)
def test_status_counts_match_what_the_broker_saw_with_a_stop_at_concurrency(
    kinds: list[str], concurrency: int, stop_after: int
) -> None:
    with CoordinationEventProcessor(
        dead_letter_path=":memory:", validate_structure=False, error_config={"max_retries": 0}
    ) as proc:
        kind = f"order_{next(_kinds)}"
        seen = [0]

        async def handle(event: Any, event_type: str) -> None:
            seen[0] += 1
            if seen[0] == stop_after:
                source.stop()
            await asyncio.sleep(0)
            if event["fail"]:
                raise ValueError("no")

        proc.on(kind)(handle)
        memory = MemoryBroker()
        for n, what in enumerate(kinds):
            if what == "poison":
                memory.put(b"{not json", {"event-type": kind})
            else:
                memory.put(*message({"n": n, "fail": what == "fail"}, kind))
        source = MemorySource(
            proc, memory, async_sleep=no_sleep, concurrency=concurrency, batch_size=10
        )
        settled = source.run(max_idle_polls=1, handle_signals=False)
        status = source.status()
    assert not memory.twice
    assert not memory.outstanding
    assert len(memory.acked) + len(memory.queue) == len(kinds)
    assert settled == len(memory.acked)
    counted = (
        status["processed"]
        + status["dead_lettered"]
        + status["poison"]
        + status["redelivered_too_often"]
    )
    assert counted == settled
    assert status["requeued"] == len(memory.requeued)


class _LeakyDown(MemorySource):
    async def _connect(self) -> None:
        if self.memory.down:
            raise ConnectionError("cannot reach amqp://app:hunter2@broker:5672/ (refused)")
        await super()._connect()

    def _broker_errors(self) -> tuple[type[BaseException], ...]:
        return (ConnectionError,)


def test_no_url_password_reaches_the_logs_the_status_or_a_dead_letter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = MemoryBroker(down=True)
    memory.put(b"{not json", {"event-type": "order", "x-origin": "amqp://app:hunter2@b/"})
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        pauses: list[float] = []

        async def sleep(seconds: float) -> None:
            pauses.append(seconds)
            memory.down = len(pauses) < 3

        source = _LeakyDown(proc, memory, async_sleep=sleep)
        with caplog.at_level(logging.DEBUG):
            assert source.run(max_idle_polls=1, handle_signals=False) == 1
        (letter,) = proc.dead_letters.list()
        shown = [repr(letter.event), str(source.status()), caplog.text]
    assert all("hunter2" not in text for text in shown)
    assert "amqp://app:***@b/" in shown[0]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_nested = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


@given(value=_nested, limit=st.integers(0, 8))
def test_the_nesting_limit_counts_brackets_of_the_structure_never_inside_strings(
    value: Any, limit: int
) -> None:
    from coordination.backends._messages import nested_deeper_than

    assert nested_deeper_than(json.dumps(value), limit) == (_depth(value) > limit)


@pytest.mark.parametrize("depth", [1001, 4000, 100_000])
def test_a_body_nested_past_the_limit_is_poison_on_every_python(depth: int) -> None:
    from coordination.backends._messages import PoisonMessage, decode_message

    with pytest.raises(PoisonMessage, match="nested too deeply"):
        decode_message(b"[" * depth + b"]" * depth, {"event-type": "order"})
    event, _ = decode_message(b"[" * 500 + b"]" * 500, {"event-type": "order"})
    assert isinstance(event, list)
