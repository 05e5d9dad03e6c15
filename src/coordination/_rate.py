"""``Rate`` / ``RateLimit``: the "100/s" and "100/s;5000/h" value types of rate limits.

A core value type: the configuration checks ``rate_limit``, ``client_rate_limit`` and
``route_limits`` with the same grammar the limiters read them with, without importing any
capability. A ``RateLimit`` is one or more windows (``Rate``s) over one key: a call is
allowed only when every window allows it, and then counts in all of them. ``Quota`` is a
limiter's fuller answer (how much of each window is left), read by the HTTP headers.

>>> Rate.parse("5/10s")
Rate(count=5.0, period=10.0)
>>> str(Rate.parse("20/m"))
'20/60s'
>>> str(RateLimit.parse("100/s; 5000/h"))
'100/1s;5000/3600s'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ._errors import ConfigError
from ._quote import quote

T = TypeVar("T")

__all__ = [
    "MAX_WINDOWS",
    "RATE_EXAMPLE",
    "Quota",
    "Rate",
    "RateLimit",
    "WindowQuota",
    "read_rate",
    "read_rate_limit",
    "read_route_limits",
]

RATE_EXAMPLE = 'a rate such as "100/s", "20/m", "5/10s"'
RATE_LIMIT_EXAMPLE = 'a rate such as "100/s", or several windows such as "100/s;5000/h"'
ROUTE_LIMITS_EXAMPLE = (
    'route templates and their limits, such as "POST /orders=5/s, GET /items/{id}=100/s;5000/h"'
)
# A route key: "/template" (any method) or "METHOD /template", as route_rules are keyed.
_ROUTE_KEY = re.compile(r"^(?:([A-Z][A-Z0-9_-]*)\s+)?(/\S*)$")
# Windows one limit may have: each is one number per key (memory) or in the key (Redis).
MAX_WINDOWS = 8

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` calls per ``period`` seconds; ``Rate.parse("100/s")``, ``"5/10s"``, ``"20/m"``.

    As a GCRA limit it allows a burst of ``count`` calls, then one every
    ``period / count`` seconds.
    """

    count: float
    period: float

    def __post_init__(self) -> None:
        if not (self.count > 0 and self.period > 0):
            raise ConfigError(
                f"invalid rate {self.count:g}/{self.period:g}s: count and period must be "
                "greater than 0",
                field="rate_limit",
                value=f"{self.count}/{self.period}s",
                source="keyword argument",
            )

    @classmethod
    def parse(
        cls, text: str | Rate, *, field: str = "rate_limit", source: str = "keyword argument"
    ) -> Rate:
        """``text`` as a ``Rate`` (a ``Rate`` is returned as it is), else ``ConfigError``."""
        if isinstance(text, Rate):
            return text
        return _read(read_rate, text, field, source)

    @property
    def interval(self) -> float:
        """Seconds between calls at the sustained rate (GCRA's emission interval)."""
        return self.period / self.count

    def __str__(self) -> str:
        return f"{self.count:g}/{self.period:g}s"


def read_rate(text: object) -> Rate:
    """``text`` as a ``Rate``; ``ValueError`` saying what was expected (no echo of ``text``).

    The message is the *problem* only, so whoever reports it names the field, the value
    and its source in its own words without stripping anything.
    """
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None or match.group(3) not in _UNIT_SECONDS:
        raise ValueError(f"expected {RATE_EXAMPLE}")
    count, multiple, unit = match.groups()
    period = float(multiple or 1) * _UNIT_SECONDS[unit]
    if not (float(count) > 0 and period > 0):
        raise ValueError(f"expected {RATE_EXAMPLE}: count and period must be greater than 0")
    return Rate(float(count), period)


def read_rate_limit(text: object) -> RateLimit:
    """``text`` (``"100/s"`` or ``"100/s;5000/h"``) as a ``RateLimit``; ``ValueError`` saying
    what was expected (no echo of ``text``), like ``read_rate``."""
    if not isinstance(text, str):
        raise ValueError(f"expected {RATE_EXAMPLE}")
    parts = text.split(";")
    if len(parts) > MAX_WINDOWS:
        raise ValueError(f"at most {MAX_WINDOWS} windows, got {len(parts)}")
    windows: list[Rate] = []
    for number, part in enumerate(parts, 1):
        try:
            rate = read_rate(part)
        except ValueError as exc:
            if len(parts) == 1:
                raise
            raise ValueError(f"window {number} of {len(parts)}: {exc}") from None
        if any(rate.period == seen.period for seen in windows):
            raise ValueError(f"two windows of {rate.period:g}s: give each period once")
        windows.append(rate)
    return RateLimit(tuple(windows))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One or more windows over one key: ``RateLimit.parse("100/s;5000/h")``.

    A call is allowed only when every window allows it, and then counts in all of them
    (each window is a GCRA limit, as ``Rate`` says). ``str()`` gives back text that parses
    to an equal limit; ``RateLimit.of(rate)`` wraps a single ``Rate``.

    >>> limit = RateLimit.parse("100/s;5000/h")
    >>> [str(rate) for rate in limit.windows]
    ['100/1s', '5000/3600s']
    >>> RateLimit.parse(str(limit)) == limit
    True
    """

    windows: tuple[Rate, ...]

    def __post_init__(self) -> None:
        if not self.windows or not all(isinstance(rate, Rate) for rate in self.windows):
            raise ConfigError(
                "a RateLimit needs at least one window (a Rate)",
                field="rate_limit",
                value=self.windows,
                source="keyword argument",
            )
        if len(self.windows) > MAX_WINDOWS:
            raise ConfigError(
                f"a RateLimit has at most {MAX_WINDOWS} windows, got {len(self.windows)}",
                field="rate_limit",
                value=self.windows,
                source="keyword argument",
            )

    @classmethod
    def of(cls, rate: Rate | RateLimit) -> RateLimit:
        """``rate`` as a ``RateLimit`` (a ``RateLimit`` is returned as it is)."""
        return rate if isinstance(rate, RateLimit) else cls((rate,))

    @classmethod
    def parse(
        cls,
        text: str | Rate | RateLimit,
        *,
        field: str = "rate_limit",
        source: str = "keyword argument",
    ) -> RateLimit:
        """``text`` as a ``RateLimit`` (a ``Rate`` or ``RateLimit`` converts), else
        ``ConfigError`` naming ``field`` and ``source``."""
        if isinstance(text, Rate | RateLimit):
            return cls.of(text)
        return _read(read_rate_limit, text, field, source)

    def __str__(self) -> str:
        return ";".join(str(rate) for rate in self.windows)


@dataclass(frozen=True, slots=True)
class WindowQuota:
    """One window of a limiter's answer: ``remaining`` whole calls allowed now (after
    this one, when it was allowed), and ``reset`` seconds until the window is whole again."""

    rate: Rate
    remaining: int
    reset: float


@dataclass(frozen=True, slots=True)
class Quota:
    """A limiter's full answer for one key (``RateLimiterBackend.acquire_quota``).

    ``retry_after`` is 0.0 when the call was allowed (and counted in every window), else
    the seconds until it would be (nothing counted). ``delay`` is the seconds the caller
    waits before its permit may be used: a permit reserved ahead (``max_wait``) is counted
    now and valid ``delay`` seconds from now; 0.0 otherwise. ``windows`` says what is left
    of each window after this decision, in the limit's order (the HTTP ``RateLimit``
    headers read it).
    """

    retry_after: float
    delay: float
    windows: tuple[WindowQuota, ...]

    @property
    def allowed(self) -> bool:
        return self.retry_after <= 0.0


def read_route_limits(text: object) -> dict[str, RateLimit]:
    """``route_limits`` as a mapping of route key to ``RateLimit``; ``ValueError`` saying
    which entry is wrong (no echo of the whole value).

    The text form (YAML, environment) is ``"POST /orders=5/s, /search=10/s;100/m"``; code
    may give the mapping itself (``{"POST /orders": "5/s"}``). A key is a route template
    (``/orders``: any method) or a method and a template (``POST /orders``), as the keys
    of ``route_rules``.

    >>> {key: str(limit) for key, limit in read_route_limits("POST /orders=5/s").items()}
    {'POST /orders': '5/1s'}
    """
    if isinstance(text, str):
        pairs: list[tuple[object, object]] = []
        for number, entry in enumerate(text.split(","), 1):
            left, equals, right = entry.rpartition("=")
            if not equals:
                raise ValueError(f"entry {number}: expected {ROUTE_LIMITS_EXAMPLE}")
            pairs.append((left.strip(), right.strip()))
    elif isinstance(text, Mapping):
        pairs = list(text.items())
    else:
        raise ValueError(f"expected {ROUTE_LIMITS_EXAMPLE}")
    limits: dict[str, RateLimit] = {}
    for key, value in pairs:
        if not isinstance(key, str) or not _ROUTE_KEY.match(key.strip()):
            raise ValueError(
                f"route key {quote(key)}: expected a route template such as "
                '"/orders" or a method and a template such as "POST /orders"'
            )
        route = " ".join(key.split())
        if route in limits:
            raise ValueError(f"route key {quote(route)} is given twice")
        try:
            limits[route] = (
                RateLimit.of(value)
                if isinstance(value, Rate | RateLimit)
                else read_rate_limit(value)
            )
        except ValueError as exc:
            raise ValueError(f"route {quote(route)}: {exc}") from None
    return limits


def _read(reader: Callable[[str], T], text: str, field: str, source: str) -> T:
    """``reader(text)``, its ValueError turned into the ``ConfigError`` naming the setting."""
    try:
        return reader(text)
    except ValueError as exc:
        raise ConfigError(
            f"invalid {field} = {quote(text)} from {source}: {exc}",
            field=field,
            value=text,
            source=source,
        ) from None
