"""Events from NATS JetStream: a durable pull consumer feeding the event processor.

``NatsJetStreamSource`` finds or creates the stream for the subject and a durable pull
consumer with explicit acks; a message is acknowledged only once the processor has
settled it (processed, or stored as a dead letter), so a consumer killed mid-message
loses nothing: NATS delivers it again after ``ack_wait``. A message that cannot be
decoded is dead-lettered alone, at once. ``run()`` stops on SIGTERM, finishing what is
in flight.

Needs NATS with JetStream (``nats-server -js`` at 127.0.0.1:4222 by default, or
``COORDINATION_NATS_URL``) and the ``nats`` extra.

    .venv/bin/python examples/14_nats_events.py
"""

import asyncio
import os
import uuid

import nats

from coordination import CoordinationEventProcessor
from coordination.backends.nats import NatsJetStreamSource

NATS_URL = os.environ.get("COORDINATION_NATS_URL", "nats://127.0.0.1:4222")

processor = CoordinationEventProcessor(dead_letter_path=":memory:")


@processor.on("order_created")
def bill(order, event_type):
    print(f"billed order {order['order_id']}: {order['amount']:.2f}")


async def publish_garbage(subject):
    """What a buggy producer elsewhere might send: not JSON."""
    client = await nats.connect(NATS_URL)
    await client.jetstream().publish(subject, b"\xff\xfe", headers={"event-type": "order"})
    await client.close()


async def delete_stream(name):
    client = await nats.connect(NATS_URL)
    await client.jetstream().delete_stream(name)
    await client.close()


if __name__ == "__main__":
    stream = f"example_{uuid.uuid4().hex[:8]}"  # a fresh stream for every run
    subject = f"{stream}.orders"
    source = NatsJetStreamSource(processor, subject, stream=stream, url=NATS_URL)
    try:
        for order_id, amount in ((1, 9.5), (2, 120.0), (3, 42.25)):
            source.publish({"order_id": order_id, "amount": amount}, "order_created")
        asyncio.run(publish_garbage(subject))

        settled = source.run(max_idle_polls=1)  # until the stream is drained
        status = source.status()
        print(f"settled {settled}: {status['processed']} processed, {status['poison']} poison")
        for letter in processor.dead_letters.list():
            print(f"dead letter: {letter.reason}")
    finally:
        source.close()
        asyncio.run(delete_stream(stream))
    print(f"deleted the stream {stream!r}")
