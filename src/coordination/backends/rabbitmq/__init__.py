"""Events from RabbitMQ: ``RabbitMQSource`` consumes a durable queue, losing nothing.

    >>> from coordination.backends.rabbitmq import RabbitMQSource
    >>> source = RabbitMQSource(processor, "orders", "amqp://guest:guest@127.0.0.1:5672/")
    >>> source.publish({"order_id": 7}, "order_created")
    >>> source.run()          # until SIGTERM: finishes what is in flight, acks, exits

Needs aio-pika, the ``rabbitmq`` extra (``pip install 'coordination-systems[rabbitmq]'``);
``import coordination.backends`` does not import it, this package does.
"""

try:
    import aio_pika as _aio_pika  # noqa: F401  (the extra is installed, or say which one)
except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
    raise ImportError(
        "coordination.backends.rabbitmq needs aio-pika: "
        "pip install 'coordination-systems[rabbitmq]'"
    ) from exc

from ._source import RabbitMQSource

__all__ = ["RabbitMQSource"]
