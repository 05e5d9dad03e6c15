"""Events from NATS JetStream: a durable pull consumer feeding an event processor.

    >>> from coordination.backends.nats import NatsJetStreamSource
    >>> source = NatsJetStreamSource(processor, "orders.created", stream="ORDERS")
    >>> source.publish({"order_id": 7}, "order_created")
    >>> source.run()   # until SIGTERM, finishing what is in flight

Needs nats-py (the ``nats`` extra: ``pip install 'coordination-systems[nats]'``); this
package imports it, ``coordination.backends`` does not. Inside it ``import nats`` is the
nats-py library (imports are absolute), never this package.
"""

from ._source import NatsJetStreamSource

__all__ = ["NatsJetStreamSource"]
