"""Events per second through NatsJetStreamSource beside bare nats-py's pull-fetch-ack loop.

    .venv/bin/python bench/bench_nats.py [--quick] [--url nats://127.0.0.1:4222]

One stream (limits retention) holds N enveloped events (JSON body, ``event-type``
header). Each row consumes all N through a fresh durable pull consumer, fetching the same
batch (100) and acknowledging each message:

- *bare nats-py*: its own connection and durable (as the source makes), then
  ``sub.fetch(100)``, and for each message what any consumer does — decode the JSON
  body, read the ``event-type`` header, await the no-op handler — and ``await
  msg.ack()``, then close (as bench_rabbitmq.py's bare aio-pika loop does);
- *NatsJetStreamSource*: the same fetch and acks, plus what the source adds per message
  (decode the envelope, the delivery count, the processor's pipeline around a no-op
  ``async`` handler: validation, error handling, timing, and the in-progress heartbeat
  timer), driven by ``arun``;
- the same with a synchronous no-op handler, which the processor runs in a worker thread
  (``aprocess_message`` never blocks the loop), shown for what that hop costs;
- the source feeding a processor that does nothing (no validation, error handler or
  timing): what the source itself adds to bare nats-py.

The rows take turns repeat by repeat so the noise of a shared machine hits them alike;
the figure is the median. Target: the source with an async handler at >= 80 % of bare.
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

import nats
import nats.errors
from nats.js import api

from coordination import CoordinationEventProcessor
from coordination.backends.nats import NatsJetStreamSource

TARGET = 0.80
BATCH = 100


async def bare(js: Any, stream: str, subject: str, n: int, url: str) -> float:
    """What the source does, with nothing of ours: its own connection, the durable pull
    consumer made, fetch + ack until all ``n`` are acknowledged, the connection closed."""
    durable = f"bare_{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    nc = await nats.connect(url, allow_reconnect=False)
    sub = await nc.jetstream().pull_subscribe(subject, durable=durable, stream=stream)
    done = 0
    while done < n:
        try:
            messages = await sub.fetch(BATCH, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        for message in messages:  # what any consumer does: decode, handle, ack
            headers = message.headers or {}
            await noop_async(json.loads(message.data), headers.get("event-type", ""))
            await message.ack()
        done += len(messages)
    await nc.close()
    elapsed = time.perf_counter() - start
    await js.delete_consumer(stream, durable)
    return n / elapsed


class BareProcessor:
    """The least a source can feed: the source's own cost, without the pipeline's."""

    async def aprocess_message(self, event: Any, event_type: str) -> None:
        return None

    async def adead_letter_message(self, event: Any, event_type: str, **details: Any) -> int:
        raise AssertionError("nothing is dead-lettered here")


def ours(
    handler: Callable[..., Any] | None,
) -> Callable[[Any, str, str, int, str], Awaitable[float]]:
    async def run(js: Any, stream: str, subject: str, n: int, url: str) -> float:
        processor: Any = (
            BareProcessor()
            if handler is None
            else CoordinationEventProcessor(handler, dead_letter_path=":memory:")
        )
        durable = f"ours_{uuid.uuid4().hex[:8]}"
        source = NatsJetStreamSource(
            processor, subject, stream=stream, durable=durable, url=url, batch_size=BATCH
        )
        start = time.perf_counter()
        await source.arun(stop=lambda: source.counts.settled >= n, handle_signals=False)
        elapsed = time.perf_counter() - start
        assert source.counts.processed == n, source.status()
        await js.delete_consumer(stream, durable)
        if handler is not None:
            processor.dead_letters.close()
        return n / elapsed

    return run


async def noop_async(event: Any, event_type: str) -> None:
    return None


def noop_sync(event: Any, event_type: str) -> None:
    return None


async def main_async(url: str, quick: bool) -> int:
    n = 2000 if quick else 10000
    repeats = 3 if quick else 5
    try:
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    except Exception as exc:
        print(f"NATS at {url} is unreachable ({exc}); nothing measured")
        return 1
    js = nc.jetstream()
    stream = f"bench_{uuid.uuid4().hex[:8]}"
    subject = f"{stream}.events"
    await js.add_stream(name=stream, subjects=[subject], retention=api.RetentionPolicy.LIMITS)
    try:
        body = json.dumps({"order_id": 1, "amount": 9.5}).encode()
        for i in range(n):
            await js.publish_async(subject, body, headers={"event-type": "order_created"})
            if i % 500 == 499:
                await js.publish_async_completed()
        await js.publish_async_completed()
        await nc.flush()

        rows: dict[str, Callable[[], Awaitable[float]]] = {
            "bare nats-py fetch, decode, ack": lambda: bare(js, stream, subject, n, url),
            "NatsJetStreamSource, async no-op": lambda: ours(noop_async)(
                js, stream, subject, n, url
            ),
            "NatsJetStreamSource, sync no-op": lambda: ours(noop_sync)(js, stream, subject, n, url),
            "  the source alone (no pipeline)": lambda: ours(None)(js, stream, subject, n, url),
        }
        for run in rows.values():  # warm up: connections, imports, code paths
            await run()
        results: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(repeats):
            for name, run in rows.items():
                results[name].append(await run())
    finally:
        await js.delete_stream(stream)
        await nc.close()

    base = statistics.median(results["bare nats-py fetch, decode, ack"])
    print(f"{n} events x {repeats} repeats, batch {BATCH}, NATS at {url}, taking turns")
    print(f"{'':36} {'median events/s':>16} {'best':>10} {'us/event':>9} {'vs bare':>8}")
    for name, values in results.items():
        median = statistics.median(values)
        print(
            f"{name:36} {median:16,.0f} {max(values):10,.0f} {1e6 / median:9.1f}"
            f" {median / base:7.0%}"
        )
    ratio = statistics.median(results["NatsJetStreamSource, async no-op"]) / base
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(
        f"NatsJetStreamSource: {ratio:.0%} of bare nats-py ({verdict} the >= {TARGET:.0%} target)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    return asyncio.run(main_async(args.url, args.quick))


if __name__ == "__main__":
    sys.exit(main())
