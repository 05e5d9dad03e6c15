"""Hostile input: Hypothesis-made bodies, headers and AMQP types on the real broker never
stop the source (every message is settled: processed or dead-lettered, the queue left
empty), and constructor arguments are checked at once, passwords never shown."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import ConfigError
from coordination.backends.rabbitmq import RabbitMQSource
from coordination.integration import CoordinationEventProcessor
from test_exported_members import check_module

from .conftest import Amqp

header_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
header_names = st.sampled_from(
    ["event-type", "x-delivery-count", "x-coordination-deliveries", "traceparent", "tracestate"]
) | st.text(min_size=1, max_size=20)
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
    ).map(lambda value: repr(value).replace("'", '"').encode()),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
)
messages = st.tuples(
    bodies,
    st.dictionaries(header_names, header_values, max_size=4),
    st.none() | st.text(max_size=30),
)


class Stub:
    """Enough of a processor for what is tested before anything is consumed."""

    async def aprocess_message(self, event: Any, event_type: str) -> None:
        return None

    async def adead_letter_message(self, *args: Any, **kwargs: Any) -> int:
        return 0


def _drain(source: RabbitMQSource) -> int:
    return source.run(max_idle_polls=1, handle_signals=False)


@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(messages, min_size=1, max_size=4))
def test_hostile_messages_are_settled_and_the_good_one_processed(
    queue_type: Any, queue: str, amqp: Amqp, rabbitmq_url: str, batch: list[Any]
) -> None:
    handled: list[Any] = []

    async def handle(event: Any, event_type: str) -> None:
        handled.append(event)

    processor = CoordinationEventProcessor(
        handle, error_config={"max_retries": 0}, dead_letter_path=":memory:"
    )
    source = RabbitMQSource(
        processor,
        queue,
        rabbitmq_url,
        queue_type=queue_type,
        poll_timeout=0.1,
        max_message_bytes=4096,
    )
    try:
        source.publish({"sentinel": "before"}, "order")
        source.close()
        published = 1
        for body, headers, kind in batch:
            try:
                amqp.publish(queue, body, headers, type=kind)
            except (TypeError, ValueError, OverflowError, UnicodeError):
                continue  # a header aio-pika itself cannot encode never reaches the broker
            except (AMQPError, ChannelInvalidStateError):
                # RabbitMQ 3.10 closes the publisher's connection (INTERNAL_ERROR) on some
                # header tables it accepts from the client: that message never reached
                # the queue either
                amqp.reopen()
                continue
            published += 1
        amqp.publish(queue, b'{"sentinel": "after"}', {"event-type": "order"})
        published += 1
        settled = 0
        for _ in range(5):  # a classic redelivery may take a second round (its copy)
            settled += _drain(source)
            if amqp.depth(queue)[0] == 0:
                break
        assert {"sentinel": "before"} in handled
        assert {"sentinel": "after"} in handled
        assert settled == published
        assert amqp.settled(queue, (0, 0)) == (0, 0)
        assert source.counts.requeued == 0
    finally:
        processor.dead_letters.close()


passwords = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.~!$&'()*+,;=", min_size=6, max_size=30
)


@settings(max_examples=60, deadline=None)
@given(password=passwords, host=st.sampled_from(["127.0.0.1", "rabbit.internal", "[::1]"]))
def test_a_password_in_the_url_is_never_shown(password: str, host: str) -> None:
    password = f"pw-{password}"  # never a word the output holds anyway ("quorum")
    url = f"amqp://svc:{password}@{host}:5672/vhost"
    source = RabbitMQSource(Stub(), "orders", url)
    shown = repr(source) + str(source.status()) + source.url
    assert password not in shown
    assert "svc:***@" in source.url
    for bad in (url.replace("amqp://", "amqpx://"), url.replace(":5672", ":port")):
        with pytest.raises(ConfigError) as raised:
            RabbitMQSource(Stub(), "orders", bad)
        assert password not in str(raised.value) + repr(raised.value)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"queue": ""}, "queue"),
        ({"queue": 7}, "queue"),
        ({"queue": "amq.orders"}, "reserved"),
        ({"queue": "x" * 256}, "255 bytes"),
        ({"queue": "line\nbreak"}, "printable"),
        ({"url": "http://127.0.0.1/"}, "amqp://"),
        ({"url": 5672}, "url"),
        ({"url": "amqp://"}, "amqp://"),
        ({"prefetch": 0}, "prefetch"),
        ({"prefetch": 70_000}, "prefetch"),
        ({"prefetch": True}, "prefetch"),
        ({"prefetch": 1.5}, "prefetch"),
        ({"queue_type": "stream"}, "queue_type"),
        ({"queue_arguments": {"durable": True}}, "x-"),
        ({"queue_arguments": {"x-queue-type": "classic"}}, "queue_type"),
        ({"queue_arguments": {"x-max-length": [1]}}, "x-max-length"),
        ({"queue_arguments": ["x-max-length"]}, "mapping"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"concurrency": -1}, "concurrency"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"publish_timeout": float("nan")}, "publish_timeout"),
        ({"poll_timeout": -1}, "poll_timeout"),
    ],
)
def test_bad_arguments_are_config_errors_at_construction(
    arguments: dict[str, Any], problem: str
) -> None:
    given_arguments: dict[str, Any] = {"queue": "orders", **arguments}
    with pytest.raises(ConfigError, match=problem):
        RabbitMQSource(Stub(), **given_arguments)


def test_a_processor_without_aprocess_message_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="aprocess_message"):
        RabbitMQSource(object(), "orders")  # type: ignore[arg-type]


def test_importing_the_library_does_not_import_aio_pika() -> None:
    code = (
        "import sys, coordination, coordination.integration, coordination.backends; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('aio_pika', 'aiormq', 'pamqp')))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


def test_the_package_all_is_honest() -> None:
    import coordination.backends.rabbitmq as package

    check_module(package)
    assert package.__all__ == ["RabbitMQSource"]


def test_publish_and_run_refuse_a_running_loop() -> None:
    source = RabbitMQSource(Stub(), "orders")

    async def inside() -> None:
        with pytest.raises(RuntimeError, match="apublish"):
            source.publish({}, "order")
        with pytest.raises(RuntimeError, match="arun"):
            source.run()

    asyncio.run(inside())
