"""The processor's dead-letter store (PostgreSQL) goes away while a real RabbitMQ source
consumes events that all fail (so each must be stored): nothing is acknowledged that was
not stored, the loop backs off instead of spinning through redeliveries, the log stays
bounded, and once the database is back every event is dead-lettered and the queue empty."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from coordination.backends.rabbitmq import RabbitMQSource
from coordination.integration import CoordinationEventProcessor
from tcp_proxy import TcpProxy

from .conftest import Amqp

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

EVENTS = 300


def test_the_store_going_away_mid_run_gives_messages_back_backs_off_and_loses_nothing(
    queue: str,
    amqp: Amqp,
    postgres_url: str,
    unique_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    parts = urlsplit(postgres_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        url = f"postgresql://postgres:pg-s3cret@127.0.0.1:{proxy.port}{parts.path}"
        processor = CoordinationEventProcessor(
            error_config={"max_retries": 0},
            dead_letter_path=url,
            config={"dead_letter_namespace": unique_name},
        )
        store = processor.dead_letters

        @processor.on("order")
        def handle(event: Any, event_type: str) -> None:
            raise RuntimeError("this handler always fails")  # then its breaker opens

        stores = 0
        store_letter = store.dead_letter

        def counting(*args: Any, **kwargs: Any) -> Any:  # a spy: the real store runs
            nonlocal stores
            stores += 1
            return store_letter(*args, **kwargs)

        store.dead_letter = counting  # type: ignore[method-assign]
        source = RabbitMQSource(
            processor, queue, reconnect_interval=0.05, max_reconnect_interval=0.2
        )
        try:
            for n in range(EVENTS):
                source.publish({"n": n}, "order")
            running = threading.Thread(target=source.run, kwargs={"handle_signals": False})
            running.start()
            deadline = time.monotonic() + 10
            while source.counts.dead_lettered < EVENTS // 3:
                assert time.monotonic() < deadline, source.status()
                time.sleep(0.001)
            proxy.cut()
            tried = stores
            time.sleep(1.0)
            assert source.counts.requeued >= 1
            # backed off, one try per batch: not every message of it against a store
            # that is down (each waiting out its connect timeout when the link hangs)
            assert stores - tried < 30, stores - tried
            assert source.status()["available"]  # the broker is fine
            proxy.restore()
            deadline = time.monotonic() + 20
            while source.counts.settled < EVENTS:
                assert time.monotonic() < deadline, source.status()
                time.sleep(0.05)
            source.stop()
            running.join(10)
        finally:
            source.close()
        assert amqp.depth(queue) == (0, 0)
        # Every event stored. A letter whose INSERT committed as the link was cut is not
        # known to the store as stored: its message goes back and is stored again (at
        # least once: one cut, at most one batch in flight, so at most a duplicate or two).
        stored = [letter.event["n"] for letter in store.list(limit=EVENTS + 10)]
        assert set(stored) == set(range(EVENTS))
        assert EVENTS <= len(stored) <= EVENTS + 2, len(stored)
        store.purge()
        processor.close()
    # the source's own lines (each failed event's dead letter is the processor's to log)
    loud = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.endswith("rabbitmq")
    ]
    assert len(loud) <= 10, [r.getMessage()[:120] for r in loud]
    assert "pg-s3cret" not in caplog.text
