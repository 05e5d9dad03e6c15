"""The rate-limit headers of the middleware's answers, from the limiters' ``Quota``.

``style="ietf"`` writes the structured fields of draft-ietf-httpapi-ratelimit-headers
(draft 09 and later): one quota policy per window of each limit that applies to the
request, and its current state::

    RateLimit-Policy: "client";q=100;w=1, "route-3600s";q=5000;w=3600
    RateLimit: "client";r=42;t=1, "route-3600s";r=4990;t=12

``q`` is the window's quota (whole calls), ``w`` its length in whole seconds (at least 1),
``r`` what is left of it now and ``t`` the seconds until it is whole again (GCRA gives one
call back every ``w / q`` seconds; ``Retry-After`` says when the next one is). A policy is
named by its limit (``client``, ``route``), with its window's length added when the limit
has several. ``style="x-ratelimit"`` writes the common ``X-RateLimit-Limit`` /
``-Remaining`` / ``-Reset`` (seconds from now) of the window with the least left, and
``"both"`` both sets.

>>> from coordination.error_handling import InMemoryRateLimiter, Rate
>>> quota = InMemoryRateLimiter(Rate.parse("100/s"), clock=lambda: 0.0).acquire_quota("a")
>>> dict(rate_limit_headers([("client", quota)], "ietf"))["RateLimit"]
'"client";r=99;t=1'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .._rate import Quota, WindowQuota

__all__ = ["HEADER_MODES", "HEADER_STYLES", "rate_limit_headers"]

HEADER_MODES = ("rejected", "always", "never")
HEADER_STYLES = ("ietf", "x-ratelimit", "both")


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


def _policy_name(limit: str, window: WindowQuota, several: bool) -> str:
    return f"{limit}-{window.rate.period:g}s" if several else limit


def rate_limit_headers(
    quotas: Sequence[tuple[str, Quota]], style: str
) -> tuple[tuple[str, str], ...]:
    """The header fields of ``quotas`` (a limit's name and its answer), in ``style``."""
    policies: list[str] = []
    states: list[str] = []
    tightest: WindowQuota | None = None
    for limit, quota in quotas:
        several = len(quota.windows) > 1
        for window in quota.windows:
            name = _policy_name(limit, window, several)
            quota_units = max(1, int(window.rate.count))
            length = max(1, math.ceil(window.rate.period))
            policies.append(f'"{name}";q={quota_units};w={length}')
            states.append(f'"{name}";r={window.remaining};t={_seconds(window.reset)}')
            if tightest is None or (window.remaining, -window.reset) < (
                tightest.remaining,
                -tightest.reset,
            ):
                tightest = window
    if not policies:
        return ()
    fields: list[tuple[str, str]] = []
    if style != "x-ratelimit":
        fields += [("RateLimit-Policy", ", ".join(policies)), ("RateLimit", ", ".join(states))]
    if style != "ietf" and tightest is not None:
        fields += [
            ("X-RateLimit-Limit", str(max(1, int(tightest.rate.count)))),
            ("X-RateLimit-Remaining", str(tightest.remaining)),
            ("X-RateLimit-Reset", str(_seconds(tightest.reset))),
        ]
    return tuple(fields)
