"""Stopping the Redis Streams source, and what it says of itself: ``stop()`` from another
thread or before the run, SIGTERM and SIGINT in a real process, one run at a time, and a
``status()`` and ``repr`` that never show the URL's password (the shape the RabbitMQ and
NATS sources have, docs/patterns/events.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from coordination.backends.redis import RedisStreamSource

pytestmark = pytest.mark.redis


class Recorder:
    """A processor; ``hold`` makes each event wait for it (an event in flight)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.started = threading.Event()
        self.hold: threading.Event | None = None

    def process_event(self, event_data: Any, event_type: str) -> Any:
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(10)
        self.seen.append(event_data)
        return {"status": "processed"}


@pytest.fixture
def stream(namespace: str) -> str:
    return f"{namespace}:events"


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_stop_from_another_thread_ends_a_blocking_run_after_its_read(
    redis_url: str, stream: str, closing: Any
) -> None:
    source = closing(RedisStreamSource(Recorder(), stream, url=redis_url, block=0.2))
    results: list[int] = []
    running = threading.Thread(
        target=lambda: results.append(source.run(handle_signals=False)), daemon=True
    )
    running.start()
    deadline = time.monotonic() + 5
    while not source.status()["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    asked = time.monotonic()
    source.stop()
    running.join(5)
    assert not running.is_alive()
    assert time.monotonic() - asked < 1.0  # one blocking read (0.2 s) at the most
    assert results == [0]
    assert source.status()["running"] is False


def test_a_stop_before_the_run_makes_it_return_at_once_and_is_used_up(
    redis_url: str, stream: str, closing: Any
) -> None:
    recorder = Recorder()
    source = closing(RedisStreamSource(recorder, stream, url=redis_url, block=0.05))
    source.publish({"n": 1}, "order")
    source.stop()
    assert source.run(handle_signals=False) == 0  # stopped before its first poll
    assert recorder.seen == []
    assert source.run(max_idle_polls=1, handle_signals=False) == 1  # the stop was used up
    assert recorder.seen == [{"n": 1}]


def test_the_batch_in_flight_finishes_and_is_acknowledged(
    redis_url: str, stream: str, closing: Any
) -> None:
    recorder = Recorder()
    recorder.hold = threading.Event()
    source = closing(RedisStreamSource(recorder, stream, url=redis_url, block=0.05))
    source.ensure_group()
    source.publish({"n": 1}, "order")
    running = threading.Thread(target=source.run, kwargs={"handle_signals": False})
    running.start()
    try:
        assert recorder.started.wait(5)
        source.stop()  # while the event is in its handler
        time.sleep(0.1)
        assert running.is_alive()  # it waits for the handler
    finally:
        recorder.hold.set()
        running.join(5)
    assert recorder.seen == [{"n": 1}]
    assert source.pending() == 0  # acknowledged before the run returned
    assert source.status()["processed"] == 1


def test_a_stop_cuts_the_reconnect_wait_short(stream: str) -> None:
    source = RedisStreamSource(
        Recorder(), stream, url=f"redis://127.0.0.1:{dead_port()}/0", reconnect_interval=30
    )
    running = threading.Thread(target=source.run, kwargs={"handle_signals": False})
    running.start()
    try:
        deadline = time.monotonic() + 10
        while source.status()["broker_errors"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        asked = time.monotonic()
        source.stop()
        running.join(5)
        assert not running.is_alive()
        assert time.monotonic() - asked < 2.0  # not the 30 s reconnect interval
    finally:
        source.stop()
        running.join(5)
        source.close()
    status = source.status()
    assert status["available"] is False
    assert status["reconnects"] >= 1
    assert status["last_error"]


async def test_arun_stops_from_another_thread_and_in_its_reconnect_wait(
    redis_url: str, stream: str
) -> None:
    source = RedisStreamSource(Recorder(), stream, url=redis_url, block=0.2)
    running = asyncio.ensure_future(source.arun(handle_signals=False))
    try:
        await source.apublish({"n": 1}, "order")
        deadline = asyncio.get_running_loop().time() + 5
        while source.status()["processed"] < 1:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        threading.Thread(target=source.stop).start()
        assert await asyncio.wait_for(running, 2) == 1
    finally:
        await source.aclose()
    down = RedisStreamSource(
        Recorder(), stream, url=f"redis://127.0.0.1:{dead_port()}/0", reconnect_interval=30
    )
    running = asyncio.ensure_future(down.arun(handle_signals=False))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while down.status()["broker_errors"] == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        down.stop()
        assert await asyncio.wait_for(running, 2) == 0  # not the 30 s reconnect interval
    finally:
        await down.aclose()


async def test_one_run_at_a_time(redis_url: str, stream: str) -> None:
    source = RedisStreamSource(Recorder(), stream, url=redis_url, block=0.05)
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
        await source.aclose()
    assert await source.arun(max_idle_polls=1, handle_signals=False) == 0  # free again
    await source.aclose()


def test_the_signal_handlers_are_put_back(redis_url: str, stream: str, closing: Any) -> None:
    def mine(signum: int, frame: Any) -> None:
        return None

    before = signal.signal(signal.SIGTERM, mine)
    try:
        source = closing(RedisStreamSource(Recorder(), stream, url=redis_url, block=0.01))
        source.run(max_idle_polls=1)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_status_and_repr_never_show_the_password(stream: str) -> None:
    secret = "s3cr3t-pass"
    source = RedisStreamSource(
        Recorder(), stream, url=f"redis://user:{secret}@127.0.0.1:{dead_port()}/0"
    )
    try:
        source.run(stop=lambda: source.status()["broker_errors"] > 0, handle_signals=False)
        assert source.status()["broker_errors"] == 1
        shown = f"{source!r} {source.status()}"
        assert secret not in shown
        assert "127.0.0.1" in repr(source)
        assert set(source.status()) >= {
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
        assert source.status()["broker"] == "redis"
    finally:
        source.close()


_CONSUMER = textwrap.dedent(
    """
    import sys, threading, time
    from coordination.backends.redis import RedisStreamSource

    url, stream = sys.argv[1:3]
    release = threading.Event()

    class Slow:
        def process_event(self, event, event_type):
            print("handling", flush=True)
            release.wait(float(event["hold"]))
            print("handled", event["n"], flush=True)

    source = RedisStreamSource(Slow(), stream, url=url, block=0.1)
    print("ready", flush=True)
    print("returned", source.run(), flush=True)
    """
)


def start_consumer(redis_url: str, stream: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _CONSUMER, redis_url, stream],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_finishes_the_entry_in_flight_then_stops(
    redis_url: str, stream: str, signum: int, closing: Any
) -> None:
    publisher = closing(RedisStreamSource(Recorder(), stream, url=redis_url))
    publisher.ensure_group()
    process = start_consumer(redis_url, stream)
    try:
        publisher.publish({"n": 1, "hold": 0.5}, "order")
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "handling"
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert out.split("\n")[:2] == ["handled 1", "returned 1"], (out, err)
    assert signal.Signals(signum).name in err  # said once, as a warning
    assert publisher.pending() == 0  # the entry in flight was acknowledged


def test_a_second_sigint_is_a_keyboard_interrupt(redis_url: str, stream: str, closing: Any) -> None:
    publisher = closing(RedisStreamSource(Recorder(), stream, url=redis_url))
    publisher.ensure_group()
    process = start_consumer(redis_url, stream)
    try:
        publisher.publish({"n": 1, "hold": 30}, "order")  # a handler that will not end
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "handling"
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert process.poll() is None  # the first waits for the event in flight
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "returned" not in out
    assert publisher.pending() == 1  # not acknowledged: reclaimed later, not lost
