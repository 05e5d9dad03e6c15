"""Stopping RedisStreamSource: stop() from anywhere, signals, one run at a time, status().

The same shape the broker sources have (docs/patterns/events.md, "one shape for every
source"): a stop is prompt even while XREADGROUP blocks, what is in flight finishes and
is acknowledged, what was read but not started is claimable at once by any consumer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import EventDeadLettered
from coordination.backends.redis import RedisStreamSource
from loopback import free_port

pytestmark = pytest.mark.redis

LONG_BLOCK = 20.0  # seconds: a read that is not woken makes the test time out visibly
PROMPT = 3.0  # seconds a woken run may take to return (machines under load are slow)


class Recorder:
    """Records each event; runs ``during(n)`` for the n-th event it is handed."""

    def __init__(self, during: Callable[[int], None] | None = None) -> None:
        self.seen: list[Any] = []
        self._during = during

    def process_event(self, event_data: Any, event_type: str) -> Any:
        if self._during is not None:
            self._during(len(self.seen))
        self.seen.append(event_data)
        if event_type == "dead":
            raise EventDeadLettered(event_type, 7, "refused")
        if event_type == "crash":
            raise RuntimeError("handler bug")
        return None


@pytest.fixture
def stream(namespace: str) -> str:
    return f"{namespace}:events"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def make(closing: Any, redis_url: str, stream: str) -> Callable[..., RedisStreamSource]:
    def make(processor: Any, **options: Any) -> RedisStreamSource:
        options.setdefault("url", redis_url)
        options.setdefault("block", LONG_BLOCK)
        return closing(RedisStreamSource(processor, stream, **options))

    return make


def stop_later(source: RedisStreamSource, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, source.stop)
    timer.start()
    return timer


def pending(raw: redis.Redis, stream: str, group: str = "coordination") -> int:
    return int(raw.xpending(stream, group)["pending"])


# --- stop() from another thread ----------------------------------------------------------


def test_stop_from_another_thread_wakes_a_blocking_read(make: Any) -> None:
    source = make(Recorder())
    stop_later(source, 0.3)
    started = time.monotonic()
    assert source.run(handle_signals=False) == 0
    took = time.monotonic() - started
    assert 0.25 < took < PROMPT, took  # not the 20 s block: the read was unblocked


async def test_stop_from_another_thread_cancels_a_blocking_read_in_arun(make: Any) -> None:
    source = make(Recorder())
    stop_later(source, 0.3)
    started = time.monotonic()
    assert await source.arun(handle_signals=False) == 0
    took = time.monotonic() - started
    assert 0.25 < took < PROMPT, took
    await source.aclose()


def test_status_says_whether_a_run_is_going(make: Any) -> None:
    source = make(Recorder(), block=0.2)
    assert source.status()["running"] is False
    results: list[int] = []
    runner = threading.Thread(target=lambda: results.append(source.run(handle_signals=False)))
    runner.start()
    deadline = time.monotonic() + 5
    while not source.status()["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    source.stop()
    runner.join(5)
    assert not runner.is_alive()
    assert results == [0]
    assert source.status()["running"] is False


def test_a_read_after_a_stop_is_woken_again_on_the_same_connection(make: Any) -> None:
    # The reading connection's id is learnt once per connection: a second run on the
    # same source (a new reader) must be wakeable too.
    source = make(Recorder())
    for _ in range(2):
        stop_later(source, 0.2)
        started = time.monotonic()
        source.run(handle_signals=False)
        assert time.monotonic() - started < PROMPT


def test_a_stop_before_run_makes_that_run_return_at_once_and_is_used_up(
    make: Any, raw: redis.Redis, stream: str
) -> None:
    recorder = Recorder()
    source = make(recorder, block=0.05)
    for n in range(3):
        source.publish({"n": n}, "order")
    source.stop()
    started = time.monotonic()
    assert source.run(handle_signals=False) == 0
    assert time.monotonic() - started < 1.0
    assert recorder.seen == []
    assert raw.xlen(stream) == 3  # nothing read: no consumer group entry pending either
    # the stop was used up by that run: the next one consumes
    assert source.run(max_idle_polls=1, handle_signals=False) == 3
    assert pending(raw, stream) == 0


async def test_a_stop_before_arun_makes_it_return_at_once(make: Any) -> None:
    recorder = Recorder()
    source = make(recorder, block=0.05)
    await source.apublish({"n": 1}, "order")
    source.stop()
    assert await source.arun(handle_signals=False) == 0
    assert recorder.seen == []
    assert await source.arun(max_idle_polls=1, handle_signals=False) == 1
    await source.aclose()


# --- the reconnect wait -----------------------------------------------------------------


def test_stop_ends_the_reconnect_wait(closing: Any, stream: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    source = closing(RedisStreamSource(Recorder(), stream, url=dead, reconnect_interval=30.0))
    stop_later(source, 0.3)
    started = time.monotonic()
    assert source.run(handle_signals=False) == 0
    assert time.monotonic() - started < PROMPT  # not the 30 s reconnect interval
    status = source.status()
    assert status["available"] is False
    assert status["broker_errors"] >= 1
    assert status["reconnects"] >= 1
    assert "Connection" in status["last_error"]


async def test_stop_ends_the_reconnect_wait_of_arun(closing: Any, stream: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    source = closing(RedisStreamSource(Recorder(), stream, url=dead, reconnect_interval=30.0))
    stop_later(source, 0.3)
    started = time.monotonic()
    assert await source.arun(handle_signals=False) == 0
    assert time.monotonic() - started < PROMPT
    assert source.status()["reconnects"] >= 1
    await source.aclose()


# --- one run at a time ------------------------------------------------------------------


def test_a_second_concurrent_run_is_refused(make: Any, raw: redis.Redis, stream: str) -> None:
    in_handler, release = threading.Event(), threading.Event()

    def hold(n: int) -> None:
        in_handler.set()
        assert release.wait(10)

    source = make(Recorder(hold))
    source.publish({"n": 1}, "order")
    outcome: list[int] = []
    runner = threading.Thread(target=lambda: outcome.append(source.run(handle_signals=False)))
    runner.start()
    try:
        assert in_handler.wait(10)
        with pytest.raises(RuntimeError, match="already running"):
            source.run(handle_signals=False)
        with pytest.raises(RuntimeError, match="already running"):
            asyncio.run(source.arun(handle_signals=False))
        source.stop()
    finally:
        release.set()
        runner.join(10)
    assert outcome == [1]  # the refused runs did not end or disturb the first
    assert pending(raw, stream) == 0


async def test_one_arun_at_a_time_and_free_again_after(make: Any) -> None:
    source = make(Recorder(), block=0.05)
    running = asyncio.ensure_future(source.arun(handle_signals=False))
    try:
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="already running"):
            await source.arun(handle_signals=False)
        with pytest.raises(RuntimeError, match="already running"):
            await asyncio.to_thread(source.run, handle_signals=False)
        assert not running.done()  # the refused runs did not end the first
    finally:
        source.stop()
        await running
    assert await source.arun(max_idle_polls=1, handle_signals=False) == 0  # free again
    await source.aclose()


# --- what is in flight ------------------------------------------------------------------


def test_the_entry_in_flight_finishes_and_is_acknowledged(
    make: Any, raw: redis.Redis, stream: str
) -> None:
    in_handler, release = threading.Event(), threading.Event()

    def hold(n: int) -> None:
        in_handler.set()
        assert release.wait(10)

    recorder = Recorder(hold)
    source = make(recorder)
    source.publish({"n": 1}, "order")
    outcome: list[int] = []
    runner = threading.Thread(target=lambda: outcome.append(source.run(handle_signals=False)))
    runner.start()
    try:
        assert in_handler.wait(10)
        source.stop()  # while the handler runs
        time.sleep(0.1)
        assert runner.is_alive()  # it waits for the handler
    finally:
        release.set()
        runner.join(PROMPT)
    assert not runner.is_alive()
    assert outcome == [1]
    assert recorder.seen == [{"n": 1}]
    assert pending(raw, stream) == 0  # acknowledged before the run returned
    assert source.status()["processed"] == 1


def test_entries_read_but_not_started_are_given_back_claimable_at_once(
    make: Any, raw: redis.Redis, stream: str, redis_url: str, closing: Any
) -> None:
    holder: list[RedisStreamSource] = []
    source = make(Recorder(lambda n: holder[0].stop() if n == 1 else None), consumer="a")
    holder.append(source)
    ids = [source.publish({"n": n}, "order") for n in range(5)]
    assert source.run(handle_signals=False) == 2  # the second one asked the stop
    # the other three are still pending, but idle for claim_idle (60 s) already
    details = raw.xpending_range(stream, "coordination", "-", "+", 10)
    assert [d["message_id"] for d in details] == ids[2:]
    assert all(d["time_since_delivered"] >= 60_000 for d in details)
    assert all(d["times_delivered"] == 1 for d in details)  # JUSTID: not counted again
    assert source.status()["requeued"] == 3
    other = closing(RedisStreamSource(Recorder(), stream, url=redis_url, consumer="b"))
    batch = other.poll()  # XAUTOCLAIM with the same claim_idle takes them now
    assert batch.reclaimed == ids[2:]
    assert batch.processed == ids[2:]
    assert pending(raw, stream) == 0


async def test_arun_gives_back_what_it_did_not_start(
    make: Any, raw: redis.Redis, stream: str
) -> None:
    holder: list[RedisStreamSource] = []
    recorder = Recorder(lambda n: holder[0].stop())
    source = make(recorder)
    holder.append(source)
    ids = [await source.apublish({"n": n}, "order") for n in range(4)]
    assert await source.arun(handle_signals=False) == 1
    assert recorder.seen == [{"n": 0}]
    details = raw.xpending_range(stream, "coordination", "-", "+", 10)
    assert [d["message_id"] for d in details] == ids[1:]
    await source.aclose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(entries=st.integers(1, 8), data=st.data())
def test_wherever_the_stop_lands_each_entry_is_acknowledged_or_claimable(
    redis_url: str, namespace: str, entries: int, data: st.DataObject
) -> None:
    """A stop during entry k: entries up to k are acknowledged (processed), the rest
    are pending and claimable at once, none lost, none acknowledged unprocessed."""
    at = data.draw(st.integers(0, entries - 1), label="stop during entry")
    stream = f"{namespace}:{uuid.uuid4().hex[:8]}"
    holder: list[RedisStreamSource] = []
    recorder = Recorder(lambda n: holder[0].stop() if n == at else None)
    source = RedisStreamSource(recorder, stream, url=redis_url, block=LONG_BLOCK)
    holder.append(source)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ids = [source.publish({"n": n}, "order") for n in range(entries)]
        assert source.run(handle_signals=False) == at + 1
        assert recorder.seen == [{"n": n} for n in range(at + 1)]
        left = [d["message_id"] for d in raw.xpending_range(stream, "coordination", "-", "+", 99)]
        assert left == ids[at + 1 :]
        assert source.status()["processed"] == at + 1
        assert source.status()["requeued"] == entries - at - 1
        taken = raw.xautoclaim(stream, "coordination", "other", 60_000, "0-0", count=99)
        assert [entry_id for entry_id, _ in taken[1]] == ids[at + 1 :]
    finally:
        raw.delete(stream)
        raw.close()
        source.close()


# --- signals, in a process of their own -------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from coordination.backends.redis import RedisStreamSource

    url, stream, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])

    class Slow:
        def process_event(self, event, event_type):
            print("started", flush=True)
            time.sleep(hold)
            print("finished", flush=True)

    source = RedisStreamSource(Slow(), stream, url=url, block=30)
    source.ensure_group()
    print("ready", flush=True)
    try:
        handled = source.run()
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(3)
    print("returned", handled, flush=True)
    source.close()
    """
)


def spawn(redis_url: str, stream: str, hold: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, redis_url, stream, str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for_line(child: subprocess.Popen[str], wanted: str) -> None:
    assert child.stdout is not None
    assert child.stderr is not None
    for line in child.stdout:  # the child's prints, until the one wanted
        if line.strip() == wanted:
            return
    raise AssertionError(f"the child never printed {wanted!r}: {child.stderr.read()!r}")


def finish(child: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=15)
    return child.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_lets_the_entry_in_flight_finish_and_be_acknowledged(
    redis_url: str, stream: str, raw: redis.Redis, signum: int
) -> None:
    producer = RedisStreamSource(Recorder(), stream, url=redis_url)
    producer.ensure_group()
    producer.publish({"n": 1}, "order")
    producer.close()
    child = spawn(redis_url, stream, hold=0.5)
    try:
        wait_for_line(child, "started")
        child.send_signal(signum)
        code, out, err = finish(child)
    finally:
        child.kill()
        child.wait()
    assert code == 0, err
    assert out.split() == ["finished", "returned", "1"]
    assert signal.Signals(signum).name + " received" in err  # the warning, logged once
    assert pending(raw, stream) == 0  # acknowledged before the run returned


def test_a_signal_wakes_a_blocking_read(redis_url: str, stream: str) -> None:
    child = spawn(redis_url, stream, hold=0)
    try:
        wait_for_line(child, "ready")
        time.sleep(0.5)  # into run(), blocked in XREADGROUP for up to 30 s
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        code, out, err = finish(child)
        took = time.monotonic() - started
    finally:
        child.kill()
        child.wait()
    assert code == 0, err
    assert out.split() == ["returned", "0"]
    assert took < 5.0, took  # not the 30 s block


def test_a_second_sigint_raises_keyboard_interrupt_and_acknowledges_nothing(
    redis_url: str, stream: str, raw: redis.Redis
) -> None:
    producer = RedisStreamSource(Recorder(), stream, url=redis_url)
    producer.ensure_group()
    producer.publish({"n": 1}, "order")
    producer.close()
    child = spawn(redis_url, stream, hold=30)  # a handler that hangs
    try:
        wait_for_line(child, "started")
        child.send_signal(signal.SIGINT)
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        code, out, err = finish(child)
    finally:
        child.kill()
        child.wait()
    assert code == 3, err
    assert out.split() == ["KeyboardInterrupt"]
    assert pending(raw, stream) == 1  # a hard stop: the entry waits for a redelivery


def test_signal_handlers_are_put_back_after_a_run(make: Any) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    seen: list[Any] = []
    source = make(Recorder(lambda n: seen.append(signal.getsignal(signal.SIGTERM))), block=0.05)
    source.publish({"n": 1}, "order")
    assert source.run(max_idle_polls=1) == 1
    assert len(seen) == 1
    assert seen[0] is not before[signal.SIGTERM]  # installed during the run
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_applications_own_signal_handler_is_put_back(make: Any) -> None:
    def mine(signum: int, frame: Any) -> None:
        return None

    before = signal.signal(signal.SIGTERM, mine)
    try:
        source = make(Recorder(), block=0.01)
        source.run(max_idle_polls=1)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_no_signal_handler_is_installed_off_the_main_thread(make: Any) -> None:
    seen: list[Any] = []
    source = make(Recorder(lambda n: seen.append(signal.getsignal(signal.SIGTERM))), block=0.05)
    source.publish({"n": 1}, "order")
    before = signal.getsignal(signal.SIGTERM)
    runner = threading.Thread(target=lambda: source.run(max_idle_polls=1))
    runner.start()
    runner.join(10)
    assert seen == [before]


# --- status() and what it shows ---------------------------------------------------------


def test_status_counts_each_outcome(make: Any, raw: redis.Redis, stream: str) -> None:
    source = make(Recorder(), block=0.05, max_deliveries=1, claim_idle=0)
    source.ensure_group()
    source.publish({"n": 1}, "order")
    source.publish({"n": 2}, "dead")
    source.publish({"n": 3}, "crash")
    raw.xadd(stream, {"event_type": "order", "event": "{not json"})
    source.run(max_idle_polls=3, handle_signals=False)
    status = source.status()
    assert set(status) >= {
        "broker",
        "available",
        "running",
        "stream",
        "group",
        "consumer",
        "processed",
        "dead_lettered",
        "broker_errors",
        "reconnects",
        "last_error",
    }
    assert status["broker"] == "redis"
    assert status["available"] is True
    assert status["running"] is False
    assert status["processed"] == 1
    assert status["dead_lettered"] == 1  # the processor's EventDeadLettered
    assert status["poison"] == 1
    assert status["redelivered_too_often"] == 1  # the crash, reclaimed once too often
    assert status["requeued"] == 1  # the crash, left pending on its first delivery
    assert status["broker_errors"] == 0
    assert status["reconnects"] == 0
    assert status["last_error"] is None
    assert (status["stream"], status["group"]) == (stream, "coordination")
    assert status["consumer"] == source.consumer
    assert status["dead_letter_stream"] == f"{stream}:dead-letters"
    assert pending(raw, stream) == 0


class FailingRedis(redis.Redis):
    """A client whose reads fail with an error quoting the URL, password and all."""

    secret_url = ""

    def xautoclaim(self, *args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError(f"lost the connection to {self.secret_url}")


def test_a_password_never_shows_in_repr_status_or_last_error(
    redis_url: str, stream: str, closing: Any
) -> None:
    secret = "hunter2-" + uuid.uuid4().hex[:8]
    url = f"redis://app:{secret}@127.0.0.1:{free_port()}/0"
    client = closing(FailingRedis.from_url(redis_url))
    client.secret_url = url
    source = RedisStreamSource(Recorder(), stream, url=url, client=client, sleep=lambda s: None)
    source.run(stop=lambda: source.guard.errors >= 2, handle_signals=False)
    status = source.status()
    shown = repr(source) + repr(status) + repr(source.source_snapshot())
    assert secret not in shown
    assert "redis://app:***@127.0.0.1" in repr(source)
    assert status["url"].startswith("redis://app:***@")
    assert status["last_error"].startswith(
        "ConnectionError: lost the connection to redis://app:***@"
    )
    assert status["available"] is False
    assert status["broker_errors"] >= 2


def test_the_processor_status_and_metrics_show_the_source(redis_url: str, stream: str) -> None:
    from coordination import Coordination

    service = Coordination({"max_retries": 0})
    processor = service.event_processor(lambda event, event_type: None, dead_letter_path=":memory:")
    source = RedisStreamSource(processor, stream, url=redis_url, block=0.05)
    try:
        source.publish({"n": 1}, "order")
        assert source.run(max_idle_polls=1, handle_signals=False) == 1
        sources = processor.get_processor_status()["sources"]
        assert [(s["broker"], s["source"], s["processed"]) for s in sources] == [
            ("redis", stream, 1)
        ]
        metrics = service.metrics_exporter().export_metrics()
        wanted = f'broker="redis",component="events",outcome="processed",source="{stream}"'
        assert any(wanted in line and line.endswith(" 1.0") for line in metrics.splitlines())
    finally:
        source.close()
        processor.close()


# --- publishing, and a run on an event loop -------------------------------------------


def test_a_publish_redis_refuses_is_a_counted_store_error_without_the_password(
    stream: str, make: Any, closing: Any
) -> None:
    from coordination import StoreError

    secret = "s3cr3t-pass"
    source = closing(
        RedisStreamSource(
            Recorder(), stream, url=f"redis://user:{secret}@127.0.0.1:{free_port()}/0"
        )
    )
    with pytest.raises(StoreError, match="cannot publish to redis at redis://") as caught:
        source.publish({"n": 1}, "order")
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is not None  # redis-py's own error, kept
    assert source.status()["broker_errors"] == 1
    assert source.status()["available"] is False
    up = make(Recorder())
    assert up.publish({"n": 1}, "order")  # an entry id
    assert up.status()["available"] is True


async def test_an_async_publish_redis_refuses_is_a_store_error_too(stream: str) -> None:
    from coordination import StoreError

    source = RedisStreamSource(Recorder(), stream, url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreError, match="cannot publish to redis"):
            await source.apublish({"n": 1}, "order")
        assert source.status()["broker_errors"] == 1
    finally:
        await source.aclose()
        source.close()


async def test_a_blocking_run_on_a_running_loop_is_refused(make: Any) -> None:
    source = make(Recorder())
    with pytest.raises(RuntimeError, match=r"await arun\(\)"):
        source.run(max_idle_polls=1, handle_signals=False)
    assert source.status()["running"] is False  # refused before it started
