"""The shared-state provider of ``redis://``, ``rediss://`` and ``unix://`` URLs.

``coordination._shared_state`` finds ``provider`` (from its table and this distribution's
``coordination.backends`` entry points) whenever ``redis_url`` is set, so the error
handler, the middleware's client limit and the collector never import this package.
"""

from __future__ import annotations

from ..._config import CoordinationConfig
from ..._shared_state import MetricSource
from ._backend import RedisBackend
from ._connection import existing_redis_errors

__all__ = ["RedisProvider", "provider"]


class RedisProvider:
    """``RedisBackend.from_config`` and the ``coordination_redis_errors_total`` counter."""

    def shared_state(self, config: CoordinationConfig) -> RedisBackend:
        return RedisBackend.from_config(config)

    def error_collectors(self) -> tuple[MetricSource, ...]:
        counter = existing_redis_errors()
        return () if counter is None else (counter,)


provider = RedisProvider()
