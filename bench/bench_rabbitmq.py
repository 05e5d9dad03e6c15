"""Events per second through RabbitMQSource beside bare aio-pika's consume-ack loop.

    .venv/bin/python bench/bench_rabbitmq.py [--quick] [--url amqp://guest:guest@127.0.0.1:5672/]
        [--queue-type quorum|classic] [--prefetch 100]

Every row drains the same number of JSON events from a queue on the same broker with
the same prefetch, the queue filled again before each row, and the rows take turns
repeat by repeat (the noise of a shared machine hits them alike):

- **bare aio-pika**: ``queue.consume`` with a callback that decodes the JSON body, awaits
  a no-op handler and acks — what a hand-written consumer does;
- **RabbitMQSource + processor (async no-op)**: ``RabbitMQSource.arun`` feeding a
  ``CoordinationEventProcessor`` whose handler is a no-op coroutine (validation of the
  message's structure, the error-handling pipeline, metrics: the library's defaults);
- the same with a **sync** no-op handler (the processor runs it in a worker thread);
- **RabbitMQSource, bare processor**: the source feeding an object whose
  ``aprocess_message`` returns at once — the source's own cost, without the processor's.

Prints events per second (median and best) and each row's ratio to bare aio-pika.
Target: the source with the processor and an async no-op handler at >= 80 % of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika

from coordination.backends.rabbitmq import RabbitMQSource
from coordination.integration import CoordinationEventProcessor

TARGET_RATIO = 0.80
BARE = "bare aio-pika consume + ack"
OURS = "RabbitMQSource + processor (async no-op)"


async def fill(channel: Any, queue: str, n: int) -> None:
    """``n`` events on ``queue``, confirmed."""
    exchange = channel.default_exchange
    for start in range(0, n, 1000):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        json.dumps({"n": i, "sku": "A-1", "qty": 1}).encode(),
                        headers={"event-type": "order"},
                        type="order",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue,
                )
                for i in range(start, min(start + 1000, n))
            )
        )


async def bare(url: str, queue: str, n: int, prefetch: int, arguments: dict[str, Any]) -> float:
    """Seconds bare aio-pika takes to consume, decode and ack ``n`` messages."""

    async def handler(event: Any, event_type: str) -> None:
        return None

    done = asyncio.Event()
    seen = 0

    async def on_message(message: Any) -> None:
        nonlocal seen
        await handler(json.loads(message.body), message.headers.get("event-type"))
        await message.ack()
        seen += 1
        if seen >= n:
            done.set()

    start = time.perf_counter()
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    declared = await channel.declare_queue(queue, durable=True, arguments=arguments)
    await declared.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - start
    await connection.close()
    return elapsed


class BareProcessor:
    """The source's own cost: a processor that returns at once."""

    def __init__(self, n: int, done: Callable[[], None]) -> None:
        self.left = n
        self.done = done

    async def aprocess_message(self, event: Any, event_type: str) -> None:
        self.left -= 1
        if self.left == 0:
            self.done()

    async def adead_letter_message(self, *args: Any, **kwargs: Any) -> int:
        raise AssertionError("the benchmark's events are all good")


async def through_source(
    url: str, queue: str, n: int, prefetch: int, queue_type: Any, kind: str
) -> float:
    """Seconds RabbitMQSource takes to settle ``n`` messages (``kind`` of processor)."""
    finished: list[float] = []
    left = n

    def count() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            finished.append(time.perf_counter())

    async def async_noop(event: Any, event_type: str) -> None:
        count()

    def sync_noop(event: Any, event_type: str) -> None:
        count()

    processor: Any
    if kind == "bare":
        processor = BareProcessor(n, lambda: finished.append(time.perf_counter()))
    else:
        handler = async_noop if kind == "async" else sync_noop
        processor = CoordinationEventProcessor(handler, dead_letter_path=":memory:")
    source = RabbitMQSource(
        processor, queue, url, prefetch=prefetch, queue_type=queue_type, poll_timeout=0.05
    )
    start = time.perf_counter()
    await source.arun(stop=lambda: bool(finished), handle_signals=False)
    if kind != "bare":
        processor.dead_letters.close()
    return finished[0] - start


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum")
    parser.add_argument("--prefetch", type=int, default=100)
    args = parser.parse_args()
    n = 3000 if args.quick else 20_000
    repeats = 2 if args.quick else 5
    return asyncio.run(run(args.url, args.queue_type, args.prefetch, n, repeats))


async def run(url: str, queue_type: Any, prefetch: int, n: int, repeats: int) -> int:
    queue = f"bench_rabbitmq_{uuid.uuid4().hex[:8]}"
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
    try:
        connection = await aio_pika.connect(url)
    except (aio_pika.exceptions.AMQPError, OSError) as exc:
        print(f"RabbitMQ is unreachable ({type(exc).__name__}); nothing measured")
        return 1
    channel = await connection.channel(publisher_confirms=True)
    declared = await channel.declare_queue(queue, durable=True, arguments=arguments)
    rows: dict[str, Callable[[], Awaitable[float]]] = {
        BARE: lambda: bare(url, queue, n, prefetch, arguments),
        OURS: lambda: through_source(url, queue, n, prefetch, queue_type, "async"),
        "RabbitMQSource + processor (sync no-op)": lambda: through_source(
            url, queue, n, prefetch, queue_type, "sync"
        ),
        "RabbitMQSource, bare processor": lambda: through_source(
            url, queue, n, prefetch, queue_type, "bare"
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in rows}
    try:
        for repeat in range(repeats + 1):  # the first round warms up (connections, JIT-free)
            for name, row in rows.items():
                await declared.purge()
                await fill(channel, queue, n)
                seconds = await row()
                if repeat:
                    results[name].append(n / seconds)
    finally:
        await channel.queue_delete(queue)
        await connection.close()

    base = statistics.median(results[BARE])
    print(f"{n} events x {repeats} repeats, {queue_type} queue, prefetch {prefetch}, taking turns")
    print(f"{'':42} {'median ev/s':>12} {'best ev/s':>10} {'us/event':>9} {'vs bare':>8}")
    for name, values in results.items():
        median = statistics.median(values)
        print(
            f"{name:42} {median:12,.0f} {max(values):10,.0f} {1e6 / median:9.1f}"
            f" {median / base:7.0%}"
        )
    ratio = statistics.median(results[OURS]) / base
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(
        f"RabbitMQSource (async no-op handler): {ratio:.0%} of bare aio-pika "
        f"({verdict} the >= {TARGET_RATIO:.0%} target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
