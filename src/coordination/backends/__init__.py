"""Shared-state backends for running many processes as one service.

``coordination.backends.redis`` keeps breaker state, rate limits and an event stream in
Redis (the ``redis`` extra). Nothing here imports redis-py until a backend is built.
"""

__all__: list[str] = []
