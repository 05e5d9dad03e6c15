"""The middleware's rate limits: per client, per route template, 429 with Retry-After.

A client is its peer address (``REMOTE_ADDR``, ``scope["client"]``) or, with
``client_rate_limit_key="header:X-API-Key"``, the value of that header (requests without
it fall back to their address). A header value becomes a short hash: a hostile header
cannot grow the limiter's memory per byte sent, and API keys never reach Redis, logs or
metric labels. An address is used as it is (the hash would cost more than the rest of
the check), unless it is longer than any real address — a proxy-fix middleware may have
copied it from a client's ``X-Forwarded-For`` — and then it is hashed too.

``client_rate_limit`` holds each client to one limit across the app; ``route_limits``
(``{"POST /orders": "5/s"}``) holds each client to a limit on one route template (the
template the route resolver names, as ``route_rules`` are keyed; a key without a method
applies to every method). The client limit is asked first: a request it refuses spends
nothing of the route's; a request the route's refuses has been counted by the client's.

The limits are GCRA through the ``RateLimiterBackend`` seam: in process by default
(``InMemoryRateLimiter``, bounded in keys), shared by every process through Redis when
``redis_url`` is set. With ``rate_limit_headers`` the answers carry the IETF
``RateLimit-Policy`` / ``RateLimit`` headers (or ``X-RateLimit-*``, ``_rate_headers``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from .. import _time
from .._config import CoordinationConfig
from .._errors import ConfigError
from .._logging import component_logger, log_extra
from .._quote import quote
from .._rate import Quota, Rate, RateLimit, read_route_limits
from .._settings import SETTINGS
from .._shared_state import shared_state_for
from ..error_handling import InMemoryRateLimiter, QuotaLimiter, RateLimiterBackend
from ._http import Rejection
from ._rate_headers import rate_limit_headers

__all__ = ["ClientRateLimit", "build_client_limit", "route_limits_of"]

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


class _Limit:
    """One limiter, the name its headers carry, and how it is asked (chosen once)."""

    __slots__ = ("blocking", "limiter", "name", "quota", "rate")

    def __init__(self, limiter: RateLimiterBackend, name: str, headers: str) -> None:
        self.limiter = limiter
        self.name = name
        self.rate = RateLimit.of(limiter.rate)
        self.blocking = bool(getattr(limiter, "blocking", False))
        # "always": every answer carries the quota. "rejected": a limiter doing I/O is
        # asked for it every time (one round trip either way), one in memory only when it
        # refuses (a look that counts nothing). "never", or a limiter without quotas: no.
        self.quota = headers != "never" and isinstance(limiter, QuotaLimiter)
        if self.quota and headers == "rejected" and not self.blocking:
            self.quota = False  # looked up on a refusal only (see _refused)


class ClientRateLimit:
    """``check`` / ``acheck`` answer None (allowed) or the 429 (or 503) rejection.

    ``client`` is the limit of each client across the app (None: none), ``routes`` the
    limits of each client on one route key (``"POST /orders"``, ``"/orders"``).
    """

    __slots__ = (
        "_asgi_header",
        "_blocking",
        "_headers",
        "_logger",
        "_style",
        "_wsgi_header",
        "client",
        "key",
        "rate",
        "routes",
    )

    def __init__(
        self,
        limiter: RateLimiterBackend | None,
        key: str,
        routes: Mapping[str, RateLimiterBackend] | None = None,
        *,
        headers: str = "rejected",
        style: str = "ietf",
    ) -> None:
        self.client = None if limiter is None else _Limit(limiter, "client", headers)
        self.rate = None if self.client is None else self.client.rate
        self.routes = {
            route: _Limit(route_limiter, "route", headers)
            for route, route_limiter in (routes or {}).items()
        }
        self.key = key
        self._headers = headers
        self._style = style
        self._blocking = any(limit.blocking for limit in self._limits())
        self._logger = component_logger("integration")
        header = _header_name(key)
        self._wsgi_header = None if header is None else _environ_name(header)
        self._asgi_header = None if header is None else header.lower().encode("latin-1")

    def _limits(self) -> list[_Limit]:
        return ([] if self.client is None else [self.client]) + list(self.routes.values())

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

    def route_limit(self, method: str, route: str | None) -> tuple[_Limit, str] | None:
        """The limit of ``route`` for ``method`` and its key suffix, or None."""
        if route is None or not self.routes:
            return None
        key = f"{method} {route}"
        limit = self.routes.get(key)
        if limit is None:
            key = route
            limit = self.routes.get(route)
        return None if limit is None else (limit, key)

    def check(
        self, client: str, route: tuple[_Limit, str] | None = None
    ) -> tuple[Rejection | None, tuple[tuple[str, str], ...]]:
        """The rejection (or None) and the headers an admitted request's answer carries."""
        limit = self.client
        if route is None and limit is not None and not limit.quota:  # the common case
            try:
                wait = limit.limiter.try_acquire(client)
            except Exception as exc:
                return self._unavailable(exc), ()
            return _ADMITTED if wait <= 0.0 else (self._refused(limit, client, wait, ""), ())
        quotas: list[tuple[str, Quota]] = []
        try:
            if limit is not None:
                rejection = self._ask(limit, client, quotas)
                if rejection is not None:
                    return rejection, ()
            if route is not None:
                rejection = self._ask(route[0], _route_key(client, route[1]), quotas, route[1])
                if rejection is not None:
                    return rejection, ()
        except Exception as exc:
            return self._unavailable(exc), ()
        return None, self._fields(quotas)

    async def acheck(
        self, client: str, route: tuple[_Limit, str] | None = None
    ) -> tuple[Rejection | None, tuple[tuple[str, str], ...]]:
        if not self._blocking:  # in memory: no I/O, no need for a coroutine frame
            return self.check(client, route)
        quotas: list[tuple[str, Quota]] = []
        try:
            limit = self.client
            if limit is not None:
                rejection = await self._aask(limit, client, quotas)
                if rejection is not None:
                    return rejection, ()
            if route is not None:
                key = _route_key(client, route[1])
                rejection = await self._aask(route[0], key, quotas, route[1])
                if rejection is not None:
                    return rejection, ()
        except Exception as exc:
            return self._unavailable(exc), ()
        return None, self._fields(quotas)

    def _ask(
        self, limit: _Limit, key: str, quotas: list[tuple[str, Quota]], route: str = ""
    ) -> Rejection | None:
        if limit.quota:
            quota = limit.limiter.acquire_quota(key)  # type: ignore[attr-defined]
            quotas.append((limit.name, quota))
            return None if quota.allowed else self._too_many(limit, quota.retry_after, route, quota)
        wait = limit.limiter.try_acquire(key)
        return None if wait <= 0.0 else self._refused(limit, key, wait, route)

    async def _aask(
        self, limit: _Limit, key: str, quotas: list[tuple[str, Quota]], route: str = ""
    ) -> Rejection | None:
        limiter: Any = limit.limiter
        if limit.quota:
            quota = (
                await limiter.aacquire_quota(key) if limit.blocking else limiter.acquire_quota(key)
            )
            quotas.append((limit.name, quota))
            return None if quota.allowed else self._too_many(limit, quota.retry_after, route, quota)
        wait = await limiter.atry_acquire(key) if limit.blocking else limiter.try_acquire(key)
        return None if wait <= 0.0 else self._refused(limit, key, wait, route)

    def _refused(self, limit: _Limit, key: str, wait: float, route: str) -> Rejection:
        quota = None
        if self._headers == "rejected" and isinstance(limit.limiter, QuotaLimiter):
            quota = limit.limiter.acquire_quota(key, 0)  # in memory: a look, nothing counted
        return self._too_many(limit, wait, route, quota)

    def _fields(self, quotas: list[tuple[str, Quota]]) -> tuple[tuple[str, str], ...]:
        if not quotas or self._headers != "always":
            return ()
        return rate_limit_headers(quotas, self._style)

    def _too_many(self, limit: _Limit, wait: float, route: str, quota: Quota | None) -> Rejection:
        seconds = max(1, math.ceil(wait))  # Retry-After takes whole seconds; never 0
        where = f" on {route}" if route else ""
        headers: tuple[tuple[str, str], ...] = (("Retry-After", str(seconds)),)
        if quota is not None and self._headers != "never":
            headers += rate_limit_headers([(limit.name, quota)], self._style)
        return Rejection(
            429,
            f"the {limit.name} rate limit of {limit.rate}{where} is spent; retry in {seconds} s",
            headers=headers,
        )

    def _unavailable(self, exc: Exception) -> Rejection:
        # The limiter's outage policy said "raise" (or a custom limiter failed): refuse
        # with a 503 that says to come back, never a 500 and never a crash of the app.
        self._logger.warning(
            "client rate limit unavailable (%s: %s); answering 503",
            type(exc).__name__,
            exc,
            extra=log_extra(error_type=type(exc).__name__, http_status=503),
        )
        return Rejection(
            503,
            "the client rate limit cannot be checked right now",
            headers=(("Retry-After", "1"),),
        )

    def status(self) -> dict[str, Any]:
        client = self.client
        status: dict[str, Any] = {
            "rate": None if client is None else str(client.rate),
            "key": self.key,
            "limiter": None if client is None else type(client.limiter).__name__,
        }
        if self.routes:
            status["routes"] = {route: str(limit.rate) for route, limit in self.routes.items()}
        return status


_ADMITTED: tuple[None, tuple[tuple[str, str], ...]] = (None, ())


def _route_key(client: str, route: str) -> str:
    # Braces would end a Redis Cluster hash tag early: the key's owner stays one tag.
    return f"{client} {route}".replace("{", "<").replace("}", ">")


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
    *,
    route_limits: str | Mapping[str, Any] | None = None,
    headers: str | None = None,
    header_style: str | None = None,
) -> ClientRateLimit | None:
    """The limits the keywords (else the configuration) ask for, or None for no limit.

    ``limiter`` replaces the client limit's backend (and its rate); otherwise
    ``redis_url`` chooses the Redis GCRA limiter, shared by every process, and its
    absence the in-memory one (route limits too, one limiter per route key).
    """
    key = config.client_rate_limit_key if key is None else key
    _header_name(key)  # a bad key fails here, at construction, naming the field
    headers = _choice("rate_limit_headers", config.rate_limit_headers, headers)
    header_style = _choice("rate_limit_header_style", config.rate_limit_header_style, header_style)
    make = _limiter_maker(config)
    if limiter is not None:
        if not isinstance(limiter, RateLimiterBackend):
            raise TypeError(
                "rate_limiter must be a RateLimiterBackend (try_acquire, atry_acquire, rate), "
                f"got {type(limiter).__name__}"
            )
        client: RateLimiterBackend | None = limiter
    else:
        text = config.client_rate_limit if rate is None else rate
        client = None if text is None else make(RateLimit.parse(text, field="client_rate_limit"))
    routes = route_limits_of(config, route_limits)
    if client is None and not routes:
        return None
    return ClientRateLimit(
        client,
        key,
        {route: make(limit) for route, limit in routes.items()},
        headers=headers,
        style=header_style,
    )


def route_limits_of(
    config: CoordinationConfig, given: str | Mapping[str, Any] | None
) -> dict[str, RateLimit]:
    """The keyword's ``route_limits`` (a mapping or the text form), else the configuration's."""
    value: object = config.route_limits if given is None else given
    if value is None:
        return {}
    try:
        return read_route_limits(value)
    except ValueError as exc:
        source = "keyword argument" if given is not None else "configuration"
        raise ConfigError(
            f"invalid route_limits = {quote(value)} from {source}: {exc}",
            field="route_limits",
            value=value,
            source=source,
        ) from None


def _choice(name: str, configured: str, given: str | None) -> str:
    if given is None:
        return configured
    return str(SETTINGS[name].coerce(given, "keyword argument"))


def _limiter_maker(config: CoordinationConfig) -> Callable[[RateLimit], RateLimiterBackend]:
    shared = shared_state_for(config)  # redis_url's backend, found by its scheme
    if shared is not None:
        return lambda limit: shared.rate_limiter(limit, clock=_time.monotonic)
    return InMemoryRateLimiter
