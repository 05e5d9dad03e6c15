"""Shared-state backends and event sources for running many processes as one service.

``coordination.backends.redis`` keeps breaker state, rate limits and an event stream in
Redis (the ``redis`` extra); ``coordination.backends.rabbitmq`` (``RabbitMQSource``, the
``rabbitmq`` extra) and ``coordination.backends.nats`` (``NatsJetStreamSource``, the
``nats`` extra) feed an event processor from a broker, on the loop they share
(``_source.py``). Nothing here imports a client library until its backend is used.
"""

__all__: list[str] = []
