"""Events from RabbitMQ: a durable queue feeds the event processor, and nothing is lost.

``RabbitMQSource`` declares the queue (a quorum queue by default), consumes it with
``prefetch`` as the backpressure, and acknowledges each message only once the processor
has settled it: processed, or stored as a dead letter. A message that cannot be decoded
(here: a producer that sent plain text) is dead-lettered alone, at once; an event whose
handler fails is dead-lettered by the processor, ready for ``replay()``. ``run()`` stops
on SIGTERM (finishing what is in flight), or here after two empty polls.

Needs RabbitMQ (127.0.0.1:5672, guest/guest by default, or ``COORDINATION_RABBITMQ_URL``).

    .venv/bin/python examples/13_rabbitmq_events.py
"""

import asyncio
import os
import uuid

import aio_pika

from coordination.backends.rabbitmq import RabbitMQSource
from coordination.integration import CoordinationEventProcessor

URL = os.environ.get("COORDINATION_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

processor = CoordinationEventProcessor(dead_letter_path=":memory:", error_config={"max_retries": 0})


@processor.on("order_created")
async def order_created(event, event_type):
    if event["qty"] <= 0:
        raise ValueError(f"order {event['order_id']} has no items")
    print(f"order {event['order_id']}: {event['qty']} x {event['sku']}")


async def send_plain_text(queue):
    """A producer that does not speak the envelope: its message is poison."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        message = aio_pika.Message(b"order 99, 1 x A-1", headers={"event-type": "order_created"})
        await channel.default_exchange.publish(message, routing_key=queue)


async def delete(queue):
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


if __name__ == "__main__":
    queue = f"example_orders_{uuid.uuid4().hex[:8]}"  # a fresh queue for every run
    source = RabbitMQSource(processor, queue, URL, prefetch=50)
    print(source)  # the password is masked
    try:
        source.publish({"order_id": 1, "sku": "A-1", "qty": 2}, "order_created")
        source.publish({"order_id": 2, "sku": "B-7", "qty": 0}, "order_created")
        asyncio.run(send_plain_text(queue))
        source.publish({"order_id": 3, "sku": "C-3", "qty": 1}, "order_created")
        source.close()  # the publisher's connection

        settled = source.run(max_idle_polls=2)
        status = source.status()
        print(
            f"settled {settled}: {status['processed']} processed, "
            f"{status['dead_lettered']} dead-lettered by the processor, "
            f"{status['poison']} poison"
        )
        for letter in processor.dead_letters.list():
            print(f"dead letter {letter.id}: {letter.reason} ({letter.error_type})")
    finally:
        asyncio.run(delete(queue))
        processor.dead_letters.close()
