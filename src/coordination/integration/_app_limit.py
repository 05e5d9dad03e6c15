"""``app_adaptive_concurrency``: one adaptive concurrency limit in front of the whole app.

The middleware (WSGI, ASGI) and ``CoordinationDjangoMiddleware`` take a slot of one
``AdaptiveLimiter`` (group ``app``) for each request that passed their own checks, just
before the app runs, and give it back when the response has been sent, with the request's
sample: its duration, and *dropped* when it was answered 429, 503 or 504 (the app or a
dependency was overloaded) or raised a timeout or overload error. A request the client
abandoned (499) or that raised another error is no sample (its slot is released).
Beyond the limit (after waiting up to ``bulkhead_wait``) the request is answered at once
with a 503 problem document and ``Retry-After: 1``: load shedding, before the app spends
anything on it. The limit moves by ``concurrency_algorithm`` between ``min_concurrency``
and ``max_concurrency``, the settings the operations' limits use.
"""

from __future__ import annotations

from .._config import CoordinationConfig
from .._errors import BulkheadFull, ConfigError
from ..error_handling._adaptive import AdaptiveLimiter, Entry, is_dropped
from ..error_handling._limit_algorithms import algorithm_for
from ._http import Rejection
from ._problems import retry_after_header

__all__ = ["APP_GROUP", "aenter_app", "app_limiter", "app_refusal", "enter_app", "leave_app"]

APP_GROUP = "app"  # the group label of the limit in front of the app
_DROPPED_STATUSES = frozenset({429, 503, 504})
_CLIENT_CLOSED = 499
_REFUSAL = Rejection(
    503,
    "the service is at its concurrency limit; try again shortly",
    headers=(retry_after_header(1),),
)


def app_limiter(config: CoordinationConfig) -> AdaptiveLimiter | None:
    """The limit in front of the app, when ``app_adaptive_concurrency`` is on."""
    if not config.app_adaptive_concurrency:
        return None
    if config.min_concurrency > config.max_concurrency:
        raise ConfigError(
            f"invalid min_concurrency = {config.min_concurrency}: above max_concurrency = "
            f"{config.max_concurrency} (app_adaptive_concurrency)",
            field="min_concurrency",
            value=config.min_concurrency,
        )
    algorithm = algorithm_for(
        config.concurrency_algorithm, config.min_concurrency, config.max_concurrency
    )
    return AdaptiveLimiter(
        APP_GROUP,
        algorithm,
        config.bulkhead_wait,
        algorithm_name=config.concurrency_algorithm,
        minimum=config.min_concurrency,
        maximum=config.max_concurrency,
    )


def app_refusal() -> Rejection:
    """The answer to a request beyond the limit: 503, ``Retry-After: 1``."""
    return _REFUSAL


def enter_app(limiter: AdaptiveLimiter) -> Entry | None:
    """A slot for a request (None: refused; answer ``app_refusal()``)."""
    try:
        return limiter.enter()
    except BulkheadFull:
        return None


async def aenter_app(limiter: AdaptiveLimiter) -> Entry | None:
    try:
        return await limiter.aenter()
    except BulkheadFull:
        return None


def leave_app(
    limiter: AdaptiveLimiter, entry: Entry, status: int, error: BaseException | None
) -> None:
    """The request of ``entry`` ended with ``status`` (and ``error``, if it raised)."""
    if error is not None:
        dropped = is_dropped(error)
        limiter.end(entry, sampled=dropped, dropped=dropped, release=True)
    elif status == _CLIENT_CLOSED:
        limiter.end(entry, sampled=False, dropped=False, release=True)
    else:
        dropped = status in _DROPPED_STATUSES
        limiter.end(entry, sampled=dropped or status < 500, dropped=dropped, release=True)
