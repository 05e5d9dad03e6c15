"""A storm of poison messages (a foreign producer sending garbage, thousands at once):
each is dead-lettered and acknowledged, and the log stays bounded — a warning per message
was a log flood, so they are logged at most once per 10 s with the count since (as
``Plan.refused`` logs refusals)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from coordination.backends.rabbitmq import RabbitMQSource

from .conftest import Amqp

pytestmark = pytest.mark.rabbitmq

STORM = 2000


def test_a_poison_storm_is_all_dead_lettered_and_logged_a_bounded_number_of_times(
    queue: str, amqp: Amqp, processor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="coordination")
    source = RabbitMQSource(processor, queue, poll_timeout=0.05)
    source.publish({"n": 0}, "order")  # declares the queue
    garbage = [
        (b"\xff not json %d" % n, {"event-type": "order", "x-odd": "y" * 2000})
        for n in range(STORM)
    ]
    amqp.publish_many(queue, garbage)
    source.run(max_idle_polls=2, handle_signals=False)
    source.close()
    assert source.counts.poison == STORM
    assert processor.dead_letters.count() == STORM
    assert amqp.depth(queue) == (0, 0)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 2, len(loud)
    assert f"{STORM} message(s)" in caplog.text or "message(s)" in caplog.text
