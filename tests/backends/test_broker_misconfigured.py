"""A hostile or careless setup of a broker source, against the real brokers: a closed
port, a wrong password. A publish that fails is the library's ``StoreError`` naming the
broker and the masked URL (the client's error as ``__cause__``); a refused login is a
``ConfigError`` at once, not an endless silent reconnect loop; nothing shows the
password."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import ConfigError, StoreError
from coordination.integration import CoordinationEventProcessor
from loopback import free_port, nats_problem

SECRET = "s3cr3t-pw"


@pytest.fixture
def processor() -> Iterator[CoordinationEventProcessor]:
    with CoordinationEventProcessor(dead_letter_path=":memory:") as proc:
        yield proc


def rabbitmq(processor: Any, url: str) -> Any:
    from coordination.backends.rabbitmq import RabbitMQSource

    return RabbitMQSource(
        processor, "attack2_never_declared", url, connect_timeout=2, reconnect_interval=0.01
    )


def nats_source(processor: Any, url: str) -> Any:
    from coordination.backends.nats import NatsJetStreamSource

    return NatsJetStreamSource(
        processor, "attack2.never", url=url, connect_timeout=2, reconnect_interval=0.01
    )


def shows_no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text), text


@pytest.fixture
def nats_with_a_password(nats_url: str, tmp_path: Path) -> Iterator[int]:
    """A private nats-server that wants user ``app``, password ``right``."""
    binary = shutil.which("nats-server")
    if binary is None:
        pytest.skip("nats-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-sd",
            str(tmp_path / "js"),
            "--user",
            "app",
            "--pass",
            "right",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while nats_problem("127.0.0.1", port) is not None:
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(rabbitmq, marks=pytest.mark.rabbitmq),
        pytest.param(nats_source, marks=pytest.mark.nats),
    ],
)
def test_a_publish_to_a_closed_port_is_a_store_error_naming_the_broker(
    make: Any, processor: Any, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("rabbitmq_url" if make is rabbitmq else "nats_url")
    scheme = "amqp" if make is rabbitmq else "nats"
    source = make(processor, f"{scheme}://app:{SECRET}@127.0.0.1:{free_port()}/")
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        source.publish({"n": 1}, "order")
    source.close()
    assert time.monotonic() - started < 5
    error = raised.value
    assert source.broker in str(error)
    assert f"{scheme}://app:***@127.0.0.1" in str(error)
    assert error.__cause__ is not None  # the client's own error, for who wants it
    shows_no_secret(error, repr(error), source.status())
    assert source.status()["broker_errors"] == 1


def refused_url(broker: str, request: pytest.FixtureRequest) -> str:
    if broker == "rabbitmq":
        request.getfixturevalue("rabbitmq_url")
        return f"amqp://guest:{SECRET}@127.0.0.1:5672/"
    port = request.getfixturevalue("nats_with_a_password")
    return f"nats://app:{SECRET}@127.0.0.1:{port}"


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("nats", marks=pytest.mark.nats),
    ],
)
def test_a_refused_login_fails_fast_with_a_config_error_not_a_silent_reconnect_loop(
    broker: str,
    processor: Any,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Resilience4j/Polly-style: back off on outages, fail fast on configuration
    errors. A wrong password does not fix itself; retrying it forever with one warning
    hid it (and hammers the broker's auth, which may lock the account)."""
    caplog.set_level(logging.DEBUG)
    url = refused_url(broker, request)
    source = (rabbitmq if broker == "rabbitmq" else nats_source)(processor, url)
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        source.run(max_idle_polls=1, handle_signals=False)
    assert time.monotonic() - started < 5
    assert source.counts.reconnects == 0
    error = raised.value
    assert error.field == "url"
    assert "refused" in str(error)
    assert "***@127.0.0.1" in str(error)
    with pytest.raises(ConfigError):  # publishing: the same answer
        source.publish({"n": 1}, "order")
    source.close()
    shows_no_secret(error, repr(error), source.status(), caplog.text)


@pytest.mark.rabbitmq
def test_an_unreachable_rabbitmq_is_logged_once_not_once_per_attempt_by_aiormq(
    processor: Any, rabbitmq_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aiormq logs each failed connect at ERROR: with the source's backoff that was a
    log line per attempt (hundreds an hour), beside the source's own "logged once"."""
    caplog.set_level(logging.DEBUG)
    source = rabbitmq(processor, f"amqp://guest:{SECRET}@127.0.0.1:{free_port()}/")
    source.reconnect_interval = source.max_reconnect_interval = 0.01
    timer = threading.Timer(0.5, source.stop)
    timer.start()
    try:
        source.run(handle_signals=False)
    finally:
        timer.cancel()
    assert source.counts.broker_errors > 5
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].name == "coordination.rabbitmq"
    shows_no_secret(caplog.text)
