"""The broker goes away mid-run (a TCP proxy cuts the link): the outage is logged once,
counted, reconnected with backoff, and no event is lost; the password never shows."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from coordination import StoreError
from coordination.backends._source import existing_broker_errors
from coordination.backends.rabbitmq import RabbitMQSource
from coordination.integration import CoordinationEventProcessor
from tcp_proxy import TcpProxy

from .conftest import Amqp

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

EVENTS = 400


def errors_counted() -> float:
    counter = existing_broker_errors()
    if counter is None:
        return 0.0
    return counter.labels("rabbitmq", "source")._value.get()  # type: ignore[no-any-return]


def test_an_outage_is_logged_once_counted_and_loses_nothing(
    queue: str, amqp: Amqp, rabbitmq_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coordination")
    parts = urlsplit(rabbitmq_url)
    handled: list[int] = []
    cut_at = threading.Event()

    async def handle(event: Any, event_type: str) -> None:
        handled.append(event["n"])
        if len(handled) == EVENTS // 4:
            cut_at.set()
        await asyncio.sleep(0.001)

    processor = CoordinationEventProcessor(handle, dead_letter_path=":memory:")
    direct = RabbitMQSource(processor, queue, rabbitmq_url)
    for n in range(EVENTS):
        direct.publish({"n": n}, "order")
    direct.close()
    before = errors_counted()

    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        source = RabbitMQSource(
            processor,
            queue,
            url,
            prefetch=20,
            poll_timeout=0.2,
            reconnect_interval=0.05,
            max_reconnect_interval=0.2,
        )

        def break_the_link() -> None:
            cut_at.wait(30)
            proxy.cut()
            time.sleep(1.0)  # long enough for several reconnects to fail
            proxy.restore()

        breaker = threading.Thread(target=break_the_link, daemon=True)
        breaker.start()
        source.run(max_idle_polls=10, handle_signals=False)
        breaker.join(5)
        status = source.status()

    assert set(handled) == set(range(EVENTS))  # every one, at least once
    assert len(handled) - EVENTS <= 20  # duplicates: at most what one prefetch held
    assert status["available"] is True
    assert status["broker_errors"] >= 2
    assert status["reconnects"] >= 2
    assert errors_counted() - before >= 2
    ours = [r.getMessage() for r in caplog.records if r.name == "coordination.rabbitmq"]
    outage = [m for m in ours if "unavailable" in m and "trying again with backoff" in m]
    assert len(outage) == 1, ours  # logged once, however many errors were counted
    assert any("again" in m and "trying again" not in m for m in ours), ours  # and its end
    shown = caplog.text + repr(source) + repr(status)
    assert "guest:guest" not in shown
    assert amqp.settled(queue, (0, 0)) == (0, 0)
    processor.dead_letters.close()


def test_publishing_while_the_broker_is_away_raises_then_recovers(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    parts = urlsplit(rabbitmq_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as proxy:
        source = RabbitMQSource(
            processor,
            queue,
            f"amqp://guest:guest@127.0.0.1:{proxy.port}/",
            connect_timeout=2,
        )
        source.publish({"n": 1}, "order")
        proxy.cut()
        with pytest.raises(StoreError) as raised:
            source.publish({"n": 2}, "order")
        assert isinstance(raised.value.__cause__, source._broker_errors())
        assert "guest:guest" not in str(raised.value) + repr(raised.value)
        proxy.restore()
        source.publish({"n": 3}, "order")  # a new connection
        source.close()
    assert amqp.settled(queue, (2, 0)) == (2, 0)
