"""``Rate``: the "100/s" value type of rate limits, and its grammar.

A core value type: the configuration checks ``rate_limit`` and ``client_rate_limit`` with
the same grammar the limiters read them with, without importing any capability.

>>> Rate.parse("5/10s")
Rate(count=5.0, period=10.0)
>>> str(Rate.parse("20/m"))
'20/60s'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import ConfigError
from ._quote import quote

__all__ = ["RATE_EXAMPLE", "Rate", "read_rate"]

RATE_EXAMPLE = 'a rate such as "100/s", "20/m", "5/10s"'

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
        try:
            return read_rate(text)
        except ValueError as exc:
            raise ConfigError(
                f"invalid {field} = {quote(text)} from {source}: {exc}",
                field=field,
                value=text,
                source=source,
            ) from None

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
