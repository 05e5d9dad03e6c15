"""A dependency that misbehaves on a schedule: errors, added latency, an outage, recovery.

``FaultInjector`` stands in for (or wraps) a downstream call in tests and demos. Its
schedule is a list of ``FaultPhase`` objects, each lasting some seconds of the injector's
clock; within a phase every call waits ``latency`` seconds (plus jitter) and then fails
with probability ``error_rate`` -- or always, during an ``outage``. With a ``seed`` the
sequence of failures is the same on every run, and with an injected clock and sleep a test
walks through the whole schedule without waiting.

>>> faults = FaultInjector([FaultPhase(10, name="ok"), FaultPhase(5, outage=True)], seed=1)
>>> faults.current_phase().name
'ok'
"""

from __future__ import annotations

import functools
import inspect
import math
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

from .. import _time
from .._time import AsyncSleep, Clock, Sleep

__all__ = [
    "FaultInjector",
    "FaultPhase",
    "FaultStats",
    "InjectedError",
    "InjectedOutage",
    "outage_scenario",
]

P = ParamSpec("P")
R = TypeVar("R")


class InjectedError(ConnectionError):
    """A failure made up by a ``FaultInjector``.

    A ``ConnectionError``, so retry policies treat it as the transient failure of a
    dependency that it imitates. ``phase`` names the phase that produced it.
    """

    def __init__(self, message: str, *, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


class InjectedOutage(InjectedError):
    """The dependency is down: every call in an outage phase raises this."""


def _check_number(owner: str, name: str, value: float, *, maximum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}: {name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (maximum is not None and value > maximum):
        bound = f"between 0 and {maximum:g}" if maximum is not None else "finite and at least 0"
        raise ValueError(f"{owner}: {name} must be {bound}, got {value!r}")


@dataclass(frozen=True, slots=True)
class FaultPhase:
    """``duration`` seconds of one kind of behaviour.

    ``error_rate`` is the probability (0..1) that a call fails, ``latency`` the seconds
    added to every call and ``latency_jitter`` up to that many more, uniformly; an
    ``outage`` fails every call. ``name`` appears in errors and statistics.
    """

    duration: float
    error_rate: float = 0.0
    latency: float = 0.0
    latency_jitter: float = 0.0
    outage: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        owner = f"FaultPhase {self.name!r}" if self.name else "FaultPhase"
        _check_number(owner, "duration", self.duration)
        _check_number(owner, "error_rate", self.error_rate, maximum=1.0)
        _check_number(owner, "latency", self.latency)
        _check_number(owner, "latency_jitter", self.latency_jitter)
        if self.duration <= 0:
            raise ValueError(f"{owner}: duration must be greater than 0, got {self.duration!r}")
        if not self.name:
            kind = "outage" if self.outage else "errors" if self.error_rate else "healthy"
            object.__setattr__(self, "name", kind)

    @property
    def failure_rate(self) -> float:
        """The probability that a call fails in this phase (1.0 in an outage)."""
        return 1.0 if self.outage else self.error_rate


@dataclass(slots=True)
class FaultStats:
    """What the injector has done so far, overall and per phase name."""

    calls: int = 0
    errors: int = 0
    outage_errors: int = 0
    added_latency_seconds: float = 0.0
    calls_by_phase: dict[str, int] = field(default_factory=dict)
    errors_by_phase: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "outage_errors": self.outage_errors,
            "added_latency_seconds": self.added_latency_seconds,
            "calls_by_phase": dict(self.calls_by_phase),
            "errors_by_phase": dict(self.errors_by_phase),
        }


@dataclass(frozen=True, slots=True)
class _Decision:
    phase: FaultPhase
    delay: float
    fail: bool


class FaultInjector:
    """A dependency that misbehaves following ``phases``, then stays in the last one.

    Use it as the dependency itself (``faults.call()`` / ``await faults.acall()`` return
    ``result``), around a real function (``faults.call(func, *args)``), or as a decorator
    (``@faults.wrap``, sync or async). ``repeat=True`` cycles through the phases forever.
    The schedule starts when the injector is made; ``restart()`` starts it again.

    Thread-safe: the random draw and the counters are guarded by a lock that is never
    held while sleeping or while the wrapped function runs.
    """

    def __init__(
        self,
        phases: Sequence[FaultPhase],
        *,
        seed: int | None = None,
        repeat: bool = False,
        result: Any = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        async_sleep: AsyncSleep | None = None,
    ) -> None:
        phases = tuple(phases)
        if not phases:
            raise ValueError("FaultInjector needs at least one FaultPhase")
        for index, phase in enumerate(phases):
            if not isinstance(phase, FaultPhase):
                raise TypeError(
                    f"FaultInjector: phases[{index}] must be a FaultPhase, "
                    f"not {type(phase).__name__}"
                )
        self.phases = phases
        self.repeat = repeat
        self.result = result
        self._clock = clock or _time.monotonic
        self._sleep = sleep or _time.sleep
        self._async_sleep = async_sleep or _time.async_sleep
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stats = FaultStats()
        self._cycle = sum(phase.duration for phase in phases)
        self._origin = self._clock()

    # --- the schedule -------------------------------------------------------------------

    @property
    def total_duration(self) -> float:
        """Seconds from the start of the first phase to the end of the last."""
        return self._cycle

    def restart(self) -> None:
        """Start the schedule again from its first phase (statistics are kept)."""
        self._origin = self._clock()

    def elapsed(self) -> float:
        """Seconds since the schedule started."""
        return max(0.0, self._clock() - self._origin)

    def phase_at(self, elapsed: float) -> FaultPhase:
        """The phase in force ``elapsed`` seconds after the start."""
        if self.repeat:
            elapsed %= self._cycle
        for phase in self.phases:
            if elapsed < phase.duration:
                return phase
            elapsed -= phase.duration
        return self.phases[-1]

    def current_phase(self) -> FaultPhase:
        return self.phase_at(self.elapsed())

    # --- calling --------------------------------------------------------------------------

    def _decide(self) -> _Decision:
        phase = self.current_phase()
        with self._lock:
            jitter = self._random.uniform(0.0, phase.latency_jitter) if phase.latency_jitter else 0
            # Draw for every call, even in an outage, so one seed gives the same sequence
            # whatever the phase lengths.
            fail = self._random.random() < phase.failure_rate
            delay = phase.latency + jitter
            stats = self._stats
            stats.calls += 1
            stats.calls_by_phase[phase.name] = stats.calls_by_phase.get(phase.name, 0) + 1
            stats.added_latency_seconds += delay
            if fail:
                stats.errors += 1
                if phase.outage:
                    stats.outage_errors += 1
                stats.errors_by_phase[phase.name] = stats.errors_by_phase.get(phase.name, 0) + 1
        return _Decision(phase, delay, fail)

    @staticmethod
    def _raise(decision: _Decision) -> None:
        phase = decision.phase
        if phase.outage:
            raise InjectedOutage(f"dependency unavailable ({phase.name})", phase=phase.name)
        raise InjectedError(f"injected failure ({phase.name})", phase=phase.name)

    def call(self, func: Callable[..., Any] | None = None, /, *args: Any, **kwargs: Any) -> Any:
        """Misbehave as scheduled, then return ``func(*args, **kwargs)`` (or ``result``)."""
        decision = self._decide()
        if decision.delay > 0:
            self._sleep(decision.delay)
        if decision.fail:
            self._raise(decision)
        return self.result if func is None else func(*args, **kwargs)

    async def acall(
        self, func: Callable[..., Awaitable[Any]] | None = None, /, *args: Any, **kwargs: Any
    ) -> Any:
        """``call`` for asyncio: waits with the async sleep and awaits ``func``."""
        decision = self._decide()
        if decision.delay > 0:
            await self._async_sleep(decision.delay)
        if decision.fail:
            self._raise(decision)
        return self.result if func is None else await func(*args, **kwargs)

    def wrap(self, func: Callable[P, R]) -> Callable[P, R]:
        """A decorator: ``func`` (sync or async) behind this injector, signature kept."""
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(async_func, *args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return cast(R, self.call(func, *args, **kwargs))

        return wrapper

    # --- reading --------------------------------------------------------------------------

    @property
    def stats(self) -> FaultStats:
        """A copy of the counters."""
        with self._lock:
            s = self._stats
            return FaultStats(
                s.calls,
                s.errors,
                s.outage_errors,
                s.added_latency_seconds,
                dict(s.calls_by_phase),
                dict(s.errors_by_phase),
            )

    def __repr__(self) -> str:
        phases = ", ".join(f"{p.name} {p.duration:g}s" for p in self.phases)
        return f"<FaultInjector [{phases}]{' repeating' if self.repeat else ''}>"


def outage_scenario(
    total_seconds: float,
    *,
    error_rate: float = 0.05,
    degraded_error_rate: float = 0.4,
    latency: float = 0.002,
    latency_jitter: float = 0.003,
) -> list[FaultPhase]:
    """The classic story in ``total_seconds``: healthy, degraded, down, recovered.

    Proportions 25 % / 15 % / 25 % / 35 %, so a breaker with a timeout well under a
    quarter of ``total_seconds`` opens in the outage and closes again in the recovery.
    """
    _check_number("outage_scenario", "total_seconds", total_seconds)
    if total_seconds <= 0:
        raise ValueError(
            f"outage_scenario: total_seconds must be greater than 0, not {total_seconds}"
        )
    slow = latency * 4
    return [
        FaultPhase(total_seconds * 0.25, error_rate, latency, latency_jitter, name="healthy"),
        FaultPhase(total_seconds * 0.15, degraded_error_rate, slow, slow, name="degraded"),
        FaultPhase(total_seconds * 0.25, latency=latency, outage=True, name="outage"),
        FaultPhase(total_seconds * 0.35, error_rate, latency, latency_jitter, name="recovered"),
    ]
