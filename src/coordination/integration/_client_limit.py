"""The middleware's per-client rate limit: who the client is, and 429 with Retry-After.

A client is its peer address (``REMOTE_ADDR``, ``scope["client"]``) or, with
``client_rate_limit_key="header:X-API-Key"``, the value of that header (requests without
it fall back to their address). A header value becomes a short hash: a hostile header
cannot grow the limiter's memory per byte sent, and API keys never reach Redis, logs or
metric labels. An address is used as it is (the hash would cost more than the rest of
the check), unless it is longer than any real address — a proxy-fix middleware may have
copied it from a client's ``X-Forwarded-For`` — and then it is hashed too.

The limit is GCRA through the ``RateLimiterBackend`` seam: in process by default
(``InMemoryRateLimiter``, bounded in keys), shared by every process through Redis when
``redis_url`` is set.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from .. import _time
from .._config import CoordinationConfig
from .._errors import ConfigError
from .._logging import component_logger
from .._rate import Rate, RateLimit
from .._shared_state import shared_state_for
from ..error_handling import InMemoryRateLimiter, RateLimiterBackend
from ._http import Rejection

__all__ = ["ClientRateLimit", "build_client_limit"]

_FIELD = "client_rate_limit_key"
# Enough to tell billions of clients apart; short enough to keep the limiter's keys small.
_DIGEST_BYTES = 12
_UNKNOWN = "unknown"  # a request whose server gave no peer address
_LONGEST_ADDRESS = 64  # an IPv6 address with a zone index fits; anything longer is hashed


def _digest(kind: bytes, value: bytes) -> str:
    # The kind keeps an address and a header value that are the same text apart.
    return hashlib.blake2b(kind + value, digest_size=_DIGEST_BYTES).hexdigest()


def _address_key(address: str) -> str:
    if len(address) <= _LONGEST_ADDRESS:
        return "a:" + address  # never a 24-character hex digest: the two cannot collide
    return _digest(b"a:", address.encode("utf-8", "replace"))


class ClientRateLimit:
    """``check_*`` / ``acheck_*`` answer None (allowed) or the 429 (or 503) rejection."""

    __slots__ = ("_asgi_header", "_blocking", "_limiter", "_logger", "_wsgi_header", "key", "rate")

    def __init__(self, limiter: RateLimiterBackend, key: str) -> None:
        self.rate = RateLimit.of(limiter.rate)
        self.key = key
        self._limiter = limiter
        self._blocking = bool(getattr(limiter, "blocking", False))
        self._logger = component_logger("integration")
        header = _header_name(key)
        self._wsgi_header = None if header is None else _environ_name(header)
        self._asgi_header = None if header is None else header.lower().encode("latin-1")

    # --- who the client is -------------------------------------------------------------

    def wsgi_client(self, environ: Mapping[str, Any]) -> str:
        if self._wsgi_header is not None:
            value = environ.get(self._wsgi_header)
            if value:
                return _digest(b"h:", value.encode("latin-1", "replace"))
        return _address_key(environ.get("REMOTE_ADDR") or _UNKNOWN)

    def asgi_client(self, scope: Mapping[str, Any]) -> str:
        if self._asgi_header is not None:
            for name, value in scope.get("headers") or ():
                if name == self._asgi_header and value:
                    return _digest(b"h:", bytes(value))
        client = scope.get("client")
        return _address_key(str(client[0]) if client else _UNKNOWN)

    # --- the decision ------------------------------------------------------------------

    def check(self, client: str) -> Rejection | None:
        try:
            wait = self._limiter.try_acquire(client)
        except Exception as exc:
            return self._unavailable(exc)
        return None if wait <= 0.0 else self._too_many(wait)

    async def acheck(self, client: str) -> Rejection | None:
        if not self._blocking:  # in memory: no I/O, no need for a coroutine frame
            return self.check(client)
        try:
            wait = await self._limiter.atry_acquire(client)
        except Exception as exc:
            return self._unavailable(exc)
        return None if wait <= 0.0 else self._too_many(wait)

    def _too_many(self, wait: float) -> Rejection:
        seconds = max(1, math.ceil(wait))  # Retry-After takes whole seconds; never 0
        return Rejection(
            429,
            f"the client rate limit of {self.rate} is spent; retry in {seconds} s",
            headers=(("Retry-After", str(seconds)),),
        )

    def _unavailable(self, exc: Exception) -> Rejection:
        # The limiter's outage policy said "raise" (or a custom limiter failed): refuse
        # with a 503 that says to come back, never a 500 and never a crash of the app.
        self._logger.warning(
            "client rate limit unavailable (%s: %s); answering 503", type(exc).__name__, exc
        )
        return Rejection(
            503,
            "the client rate limit cannot be checked right now",
            headers=(("Retry-After", "1"),),
        )

    def status(self) -> dict[str, Any]:
        return {"rate": str(self.rate), "key": self.key, "limiter": type(self._limiter).__name__}


def _header_name(key: str) -> str | None:
    if key == "address":
        return None
    kind, _, name = key.partition(":")
    if kind != "header" or not name:
        raise ConfigError(
            f'{_FIELD} must be "address" or "header:<Name>", got {key!r}',
            field=_FIELD,
            value=key,
            source="keyword argument",
        )
    return name


def _environ_name(header: str) -> str:
    """A header's WSGI environ key (``X-API-Key`` -> ``HTTP_X_API_KEY``)."""
    return "HTTP_" + header.upper().replace("-", "_")


def build_client_limit(
    config: CoordinationConfig,
    rate: str | Rate | RateLimit | None,
    key: str | None,
    limiter: RateLimiterBackend | None,
) -> ClientRateLimit | None:
    """The limit the keywords (else the configuration) ask for, or None for no limit.

    ``limiter`` replaces the backend (and its rate); otherwise ``redis_url`` chooses the
    Redis GCRA limiter, shared by every process, and its absence the in-memory one.
    """
    key = config.client_rate_limit_key if key is None else key
    _header_name(key)  # a bad key fails here, at construction, naming the field
    if limiter is not None:
        if not isinstance(limiter, RateLimiterBackend):
            raise TypeError(
                "rate_limiter must be a RateLimiterBackend (try_acquire, atry_acquire, rate), "
                f"got {type(limiter).__name__}"
            )
        return ClientRateLimit(limiter, key)
    text = config.client_rate_limit if rate is None else rate
    if text is None:
        return None
    parsed = RateLimit.parse(text, field="client_rate_limit")
    shared = shared_state_for(config)  # redis_url's backend, found by its scheme
    if shared is not None:
        return ClientRateLimit(shared.rate_limiter(parsed, clock=_time.monotonic), key)
    return ClientRateLimit(InMemoryRateLimiter(parsed), key)
