"""Waking a synchronous ``RedisStreamSource.run`` out of its blocking ``XREADGROUP``.

redis-py cannot cancel a blocking command from another thread, but Redis can end it:
``CLIENT UNBLOCK <id>`` makes the blocked read return as if its ``block`` time ran out.
So a run reads on a connection of its own (``Redis.client()``: one connection of the
same pool), learns its id once, and a helper thread sends the unblock when the stop
comes. Never the thread that asked: ``stop()`` may be called from a signal handler,
which must not do I/O (the interrupted main thread may hold the pool's lock).

Where the read cannot be woken — a Redis Cluster (the read goes to the stream's node),
a user not allowed ``CLIENT ID`` — it returns by itself within ``block`` seconds; so it
does when the stop lands between the run's last look at it and the read reaching Redis.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import TYPE_CHECKING

from ._connection import is_cluster_client, store_errors

if TYPE_CHECKING:
    import redis

__all__ = ["ReadWaker"]

_WAKE = object()  # put by wake(): unblock the read
_DONE = object()  # put by close(): the helper thread returns
_UNKNOWN = -1  # the reader's id could not be learned: it is not woken


class ReadWaker:
    """The reading connection of one synchronous run, and the thread that wakes it.

    ``wake()`` and ``signalled()`` only put on a ``SimpleQueue`` (reentrant: safe in a
    signal handler); the helper thread does the rest."""

    def __init__(
        self,
        client: Callable[[], redis.Redis | redis.RedisCluster],
        on_signal: Callable[[int], None],
    ) -> None:
        self._client = client  # a cluster client is made on first use: it may be down
        self._reader: redis.Redis | None = None
        self._reader_id: int | None = None
        self._on_signal = on_signal
        self._asks: SimpleQueue[object] = SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name="coordination-stream-waker", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def reader(self) -> redis.Redis | redis.RedisCluster:
        """The client the run's ``XREADGROUP`` goes through, its connection's id learnt
        (once per connection; a Redis error here is the run's outage like any other)."""
        client = self._client()
        if is_cluster_client(client):  # no single-connection twin: read within block
            return client
        reader = self._reader
        if reader is None:
            reader = self._reader = client.client()  # type: ignore[union-attr]
        if self._reader_id is None:
            from redis.exceptions import ResponseError

            try:
                self._reader_id = int(reader.client_id())
            except ResponseError:  # not allowed (an ACL): reads end within block instead
                self._reader_id = _UNKNOWN
        return reader

    def broken(self) -> None:
        """A command failed: the next one may be on a new connection, with a new id."""
        if self._reader_id != _UNKNOWN:
            self._reader_id = None

    def wake(self) -> None:
        self._asks.put(_WAKE)

    def signalled(self, signum: int) -> None:
        self._asks.put(signum)

    def close(self) -> None:
        self._asks.put(_DONE)
        self._thread.join(timeout=1.0)  # an unblock in flight on a hung Redis is not waited
        if self._reader is not None:
            self._reader.close()  # its connection back to the pool

    def _serve(self) -> None:
        while True:
            ask = self._asks.get()
            if ask is _DONE:
                return
            if isinstance(ask, int):
                self._on_signal(ask)  # logs, then stop(): which wakes, through this queue
                continue
            reader_id = self._reader_id
            if reader_id is not None and reader_id != _UNKNOWN:
                with contextlib.suppress(*store_errors()):  # the read then ends within block
                    self._client().client_unblock(reader_id)
