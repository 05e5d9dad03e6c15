"""The seams between the error-handling pipeline and the state it keeps per operation.

A pipeline talks to a circuit breaker and to a rate limiter only through the two
Protocols below, so the in-memory implementations (``CircuitBreaker``,
``InMemoryRateLimiter``) can be replaced by shared ones (Redis) without touching the
pipeline. ``CoordinationErrorHandler(breaker_factory=..., rate_limiter_factory=...)`` takes
the factories.

Breaker protocol, per protected call::

    breaker.acquire()                  # admit, or raise CircuitOpenError (no call is made)
    try:
        result = operation()
    except a failure (trip_on; by default any error but the library's own):
        breaker.record_failure(duration)
    except neither (cancelled, input error, breaker_ignores):
        breaker.release()              # gives back a half-open trial slot, nothing else
    except the dependency's answer (not named by trip_on, or give_up_on's):
        breaker.record_success(duration)
    else:
        breaker.record_success(duration)   # or record_failure when trip_if_result(result)

(``error_handling._outcomes`` decides which; a backend only hears the verdict.)

``duration`` is the attempt's seconds whenever the breaker's ``tracks_duration`` is true
(slow calls count against it); otherwise it may be ``0.0`` (the pipeline reads the clock
only when the breaker or a ``timeout`` needs it). A breaker
whose ``blocking`` is true does I/O: async pipelines then await ``aacquire``,
``arecord_success``, ``arecord_failure`` and ``arelease`` instead, so no event loop waits on
a socket. State transitions are reported to the ``on_transition`` hook given to the factory.

A call's rate-limit check is a ``LimitCheck``, run once, before the first attempt, by the
pipeline's admission step. Optionally a breaker can take that check into its own acquire
(a shared store answers both in one round trip): it then offers
``limit_check(limiter, key) -> LimitCheck | None``, whose ``acquires_breaker`` is true, and
the pipeline skips the first attempt's ``acquire()``. A breaker may also offer its own
lock-free closed path, ``guard(func, ...)`` / ``aguard(func, ...)`` (see
``CircuitBreaker.guard``); the pipeline uses it when nothing comes before a call. And a
breaker whose every step is a round trip may offer ``record_failure_and_acquire(duration)``
(``arecord_failure_and_acquire`` for async pipelines): a failed attempt that will be
retried is then recorded and the next attempt admitted (or refused with
``CircuitOpenError``) in one step, instead of ``record_failure`` then ``acquire``. With a
retry budget it may also offer ``record_failure_spend_and_acquire(duration, budget) ->
bool`` (and its ``a*`` twin): the same step with the budget asked too (``False``: the
budget refused, the failure is recorded and nothing is admitted), one round trip when
both live in its store.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from .._rate import Quota, RateLimit
from .._settings import SETTINGS, default_of
from .._time import Clock

__all__ = [
    "RAISE",
    "BreakerFactory",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerTransition",
    "CircuitBreakerBackend",
    "CircuitState",
    "LimitCheck",
    "QuotaLimiter",
    "RateLimiterBackend",
    "RateLimiterFactory",
    "RetryBudgetBackend",
    "TransitionHook",
]

# What a pipeline's refusal handler returns to a breaker's ``guard`` to have the refusal
# raised from the guard's own frame (one short unwind), rather than a fallback's value; a
# guard made with ``refusals_returned=True`` returns ``[RAISE, error]`` instead, and its
# caller raises ``error`` from its own frame.
RAISE: object = type("_Raise", (), {"__repr__": lambda self: "<raise the refusal>"})()


# BreakerSettings' attributes and the settings (configuration and per-call names) they hold.
_BREAKER_SETTINGS = (
    ("failure_threshold", "circuit_breaker_threshold"),
    ("open_seconds", "circuit_breaker_timeout"),
    ("half_open_calls", "half_open_calls"),
    ("failure_rate_threshold", "failure_rate_threshold"),
    ("slow_call_duration", "slow_call_duration"),
    ("slow_call_rate_threshold", "slow_call_rate_threshold"),
    ("window_type", "window_type"),
    ("window_size", "window_size"),
    ("minimum_calls", "minimum_calls"),
    ("half_open_max_wait", "half_open_max_wait"),
    ("open_backoff_multiplier", "open_backoff_multiplier"),
    ("max_open_seconds", "max_open_seconds"),
    ("mode", "breaker_mode"),
)


class CircuitState(StrEnum):
    """A breaker's state; a ``StrEnum`` so reports show ``"CLOSED"`` and stay JSON."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """How one operation's breaker decides to open; shared by every backend.

    The breaker opens on ``failure_threshold`` consecutive failures. When
    ``failure_rate_threshold`` is set it also opens, resilience4j-style, once the sliding
    window holds at least ``minimum_calls`` outcomes and the failure rate (or the slow-call
    rate, calls longer than ``slow_call_duration`` seconds) reaches its threshold
    (fractions, 0..1). The window is the last ``window_size`` calls (``window_type="count"``)
    or the last ``window_size`` seconds (``"time"``). An open breaker rejects calls for
    ``open_seconds``, then admits ``half_open_calls`` trial calls: all succeed → CLOSED,
    any fails → OPEN again. Trials not all concluded ``half_open_max_wait`` seconds after
    the first of them was admitted (``None``: ``open_seconds``) re-open the breaker as of
    that deadline (resilience4j's ``maxWaitDurationInHalfOpenState``), so a hung trial, or
    too little traffic to finish the trials, cannot keep it half-open forever.

    Each re-open (HALF_OPEN → OPEN) without a close in between lasts
    ``open_backoff_multiplier`` times longer than the open period before it, capped by
    ``max_open_seconds`` (resilience4j's exponential ``IntervalFunction`` for
    ``waitDurationInOpenState``); ``open_time(reopens)`` says how long. The count starts
    again when the breaker closes. ``mode`` is the ``breaker_mode``: ``"normal"``,
    ``"metrics_only"`` (never rejects) or ``"disabled"``; the handler applies it around
    whatever breaker the factory makes.

    >>> settings = BreakerSettings(
    ...     open_seconds=10.0, open_backoff_multiplier=2.0, max_open_seconds=60.0
    ... )
    >>> settings.open_time(0), settings.open_time(2), settings.open_time(3)
    (10.0, 40.0, 60.0)
    """

    failure_threshold: int = default_of("circuit_breaker_threshold")
    open_seconds: float = default_of("circuit_breaker_timeout")
    half_open_calls: int = default_of("half_open_calls")
    failure_rate_threshold: float | None = default_of("failure_rate_threshold")
    slow_call_duration: float | None = default_of("slow_call_duration")
    slow_call_rate_threshold: float | None = default_of("slow_call_rate_threshold")
    window_type: Literal["count", "time"] = default_of("window_type")
    window_size: int = default_of("window_size")
    minimum_calls: int = default_of("minimum_calls")
    half_open_max_wait: float | None = default_of("half_open_max_wait")
    open_backoff_multiplier: float = default_of("open_backoff_multiplier")
    max_open_seconds: float | None = default_of("max_open_seconds")
    mode: Literal["normal", "metrics_only", "disabled"] = default_of("breaker_mode")

    def __post_init__(self) -> None:
        # The schema's checks, in its words (the settings of the same meaning).
        for attribute, name in _BREAKER_SETTINGS:
            SETTINGS[name].check(getattr(self, attribute), f"BreakerSettings({attribute}=...)")

    @property
    def trial_seconds(self) -> float:
        """Seconds the trials of a half-open period have, from the first one admitted,
        to conclude (``half_open_max_wait``, else ``open_seconds``)."""
        return self.open_seconds if self.half_open_max_wait is None else self.half_open_max_wait

    def open_time(self, reopens: int) -> float:
        """Seconds the open period lasts after ``reopens`` re-opens since the last close
        (0: the first open): ``open_seconds × open_backoff_multiplier ** reopens``, capped
        by ``max_open_seconds`` (a cap below ``open_seconds`` shortens the first too)."""
        seconds = self.open_seconds
        multiplier = self.open_backoff_multiplier
        if multiplier != 1.0 and reopens > 0:
            try:
                seconds *= multiplier**reopens
            except OverflowError:
                seconds = math.inf
        cap = self.max_open_seconds
        return float(seconds if cap is None else min(seconds, cap))

    @property
    def grows(self) -> bool:
        """True when re-opens lengthen the open period (``open_backoff_multiplier`` > 1)."""
        return self.open_backoff_multiplier != 1.0

    @property
    def uses_window(self) -> bool:
        """True when outcomes go into a sliding window (rate or slow-call mode)."""
        return self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """What a state-change hook receives: which breaker moved, from where to where, why."""

    name: str
    old: CircuitState
    new: CircuitState
    reason: str
    at: float  # the breaker's clock (monotonic seconds)


TransitionHook = Callable[[BreakerTransition], None]


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state for reports, health checks and exporters (read, never hot)."""

    name: str
    state: CircuitState
    consecutive_failures: int
    failure_rate: float | None  # over the window, None when not in rate mode or too few calls
    slow_call_rate: float | None
    window_calls: int
    retry_after: float  # seconds until an OPEN breaker admits a trial call, else 0
    forced_open: bool
    transitions: dict[str, int]  # {"CLOSED->OPEN": 2, ...}
    backend: str  # "memory", "redis", ...
    mode: str = "normal"  # the breaker_mode: "normal", "metrics_only" or "disabled"
    # metrics_only: calls the breaker would have rejected (they ran); else 0
    would_reject: int = 0
    # seconds the current open period lasts (when CLOSED or HALF_OPEN: the next one);
    # None when the backend does not say
    open_seconds: float | None = None
    reopens: int = 0  # re-opens since the breaker last closed (they grow open_seconds)

    def as_dict(self) -> dict[str, object]:
        """The snapshot as JSON: ``get_error_report()["circuit_breakers"][name]``."""
        return {
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "failure_rate": self.failure_rate,
            "slow_call_rate": self.slow_call_rate,
            "window_calls": self.window_calls,
            "retry_after": round(self.retry_after, 6),
            "forced_open": self.forced_open,
            "transitions": dict(self.transitions),
            "backend": self.backend,
            "mode": self.mode,
            "would_reject": self.would_reject,
            "open_seconds": None if self.open_seconds is None else round(self.open_seconds, 6),
            "reopens": self.reopens,
        }


@runtime_checkable
class CircuitBreakerBackend(Protocol):
    """One operation's circuit breaker, wherever its state lives.

    After ``acquire()`` admits an attempt, exactly one of ``record_success(duration)``,
    ``record_failure(duration)`` or ``release()`` follows. ``release`` ends an attempt
    without an outcome that tells about the dependency (cancelled or interrupted, or an
    error that does not count, such as ``ValidationError``, ``ConfigError``,
    ``BulkheadFull``, ``RateLimitExceeded`` or ``OperationCancelled``), and gives back a
    half-open trial slot. ``duration`` is the attempt's seconds whenever
    ``tracks_duration`` is true (slow-call mode); otherwise it may be ``0.0``. When
    ``blocking`` is true (the breaker does I/O), async pipelines await the ``a*`` twins
    instead. A refusal raises ``CircuitOpenError`` whose ``retry_after`` is greater than
    0. Every state change goes to the ``on_transition`` hook the factory was given. What a
    shared breaker does while its store is unreachable is its own policy (the Redis
    breaker's ``OutagePolicy``: this process's own state by default).
    """

    name: str
    settings: BreakerSettings
    tracks_duration: bool  # the pipeline passes real durations only when true
    blocking: bool  # true when the methods do I/O: async pipelines use the a* methods

    @property
    def state(self) -> CircuitState:
        """The state the next call will see."""

    def acquire(self) -> None:
        """Admit one call or raise ``CircuitOpenError`` carrying ``retry_after``."""

    def record_success(self, duration: float) -> None:
        """The admitted attempt succeeded (``duration``: its seconds, or ``0.0``)."""

    def record_failure(self, duration: float) -> None:
        """The admitted attempt failed with an error that counts against the breaker."""

    def release(self) -> None:
        """The admitted call ended without a countable outcome (cancelled, ignored error)."""

    async def aacquire(self) -> None:
        """``acquire`` for async pipelines; awaited when ``blocking`` is true."""

    async def arecord_success(self, duration: float) -> None:
        """``record_success`` for async pipelines; awaited when ``blocking`` is true."""

    async def arecord_failure(self, duration: float) -> None:
        """``record_failure`` for async pipelines; awaited when ``blocking`` is true."""

    async def arelease(self) -> None:
        """``release`` for async pipelines; awaited when ``blocking`` is true."""

    def reset(self) -> None:
        """Back to CLOSED with empty counters (also clears a forced open)."""

    def force_open(self) -> None:
        """Reject every call until ``reset()`` (maintenance, a known-bad dependency)."""

    def snapshot(self) -> BreakerSnapshot:
        """The breaker's state and counts now, for reports, health checks and exporters."""


class LimitCheck(Protocol):
    """One operation's rate-limit check, as the admission step runs it before a call.

    ``check()`` returns ``0.0`` when the call is allowed (and counted), else the seconds
    until it would be; ``acheck()`` is the same for async pipelines when ``blocking`` (it
    does I/O). When ``acquires_breaker`` is true the check is a breaker's combined one: an
    allowed call also holds a breaker permit (a refusal by the breaker raises
    ``CircuitOpenError``), and a refusal by either spends nothing of the other.
    """

    acquires_breaker: bool
    blocking: bool

    def check(self) -> float: ...

    async def acheck(self) -> float: ...


class BreakerFactory(Protocol):
    """Makes the breaker of one operation; called once per operation name.

    The breaker calls ``on_transition(BreakerTransition(name, old, new, reason, at))`` on
    every state change it makes or sees (the handler logs it and calls its transition
    hooks); it counts its transitions itself, for ``snapshot().transitions``.
    """

    def __call__(
        self,
        name: str,
        settings: BreakerSettings,
        *,
        clock: Clock,
        on_transition: TransitionHook,
    ) -> CircuitBreakerBackend: ...


@runtime_checkable
class RateLimiterBackend(Protocol):
    """A GCRA limiter keyed by operation (or client); memory by default, Redis when shared.

    ``rate`` is its ``RateLimit``: one or more windows, each a GCRA limit; a call is allowed
    only when every window allows it, and then counts in all of them (atomically: a refused
    call spends nothing). The error-handling pipeline calls ``try_acquire(operation_name)``
    once per call, before the first attempt, and raises
    ``RateLimitExceeded(operation_name, retry_after)`` when it answers more than 0.
    """

    rate: RateLimit
    blocking: bool  # true when the methods do I/O: async pipelines use atry_acquire

    def try_acquire(self, key: str, cost: int = 1) -> float:
        """``0.0`` when the call is allowed (and counted), else seconds until it would be."""

    async def atry_acquire(self, key: str, cost: int = 1) -> float:
        """``try_acquire`` for async pipelines; awaited when ``blocking`` is true."""


@runtime_checkable
class QuotaLimiter(RateLimiterBackend, Protocol):
    """A limiter that also answers with a ``Quota``: what is left of each window (the
    middleware's ``RateLimit`` headers) and permits reserved ahead (``rate_limit_wait``).

    ``acquire_quota(key, cost, max_wait)``: when the call is allowed now, or would be
    within ``max_wait`` seconds, it is counted now and ``Quota.delay`` says how long the
    caller waits before making it (reservations are served in the order they were made);
    otherwise nothing is counted and ``Quota.retry_after`` is greater than 0. Both
    built-in limiters implement it; a limiter without it still works everywhere but the
    headers and the wait (which then polls ``try_acquire``).
    """

    def acquire_quota(self, key: str, cost: int = 1, max_wait: float = 0.0) -> Quota:
        """The decision for ``key`` and what is left of each window after it."""

    async def aacquire_quota(self, key: str, cost: int = 1, max_wait: float = 0.0) -> Quota:
        """``acquire_quota`` for async pipelines; awaited when ``blocking`` is true."""


class RateLimiterFactory(Protocol):
    """Makes the limiter for one limit; called once per operation with a rate limit."""

    def __call__(self, rate: RateLimit, *, clock: Clock) -> RateLimiterBackend: ...


class RetryBudgetBackend(Protocol):
    """An operation's retry budget (``retry_budget``): retries (and hedged attempts) at
    most a fraction of its calls over a sliding window, above a floor per second.

    ``record_call()`` counts a call (its first attempt) for a budget used on its own:
    the pipeline never calls it, the budgets it makes read the operation's own call
    counters when asked (``_retry_budget``); ``try_spend()`` asks for one retry or hedged
    attempt and answers whether the budget allows it (a ``True`` spends it). In memory,
    or shared by every process through a store (``blocking``: the a* twins do the I/O
    for an async pipeline)."""

    blocking: bool

    def record_call(self) -> None: ...

    def try_spend(self) -> bool: ...

    async def arecord_call(self) -> None: ...

    async def atry_spend(self) -> bool: ...
