"""The adaptive concurrency limiter: a bulkhead whose limit follows the dependency's latency.

``adaptive_concurrency=True`` gives an operation an ``AdaptiveLimiter`` instead of a fixed
``Bulkhead``; it has the bulkhead's interface (``enter`` / ``aenter`` / ``leave``, waiting
up to ``bulkhead_wait``, ``BulkheadFull`` beyond it) and tells its ``LimitAlgorithm``
(``concurrency_algorithm``) each call's sample as Netflix's concurrency-limits does: when
it started, how long it took, how many calls were in flight when it started, and whether
it was *dropped* (it ended with a timeout or an overload answer: ``OperationTimeout``,
``TimeoutError``, ``BulkheadFull``, ``CircuitOpenError``, ``RateLimitExceeded``, or any
error carrying a ``Retry-After`` hint). A call that failed otherwise (the dependency's
answer, a cancelled caller) is *ignored*: its slot is released and the limit does not
move, since a quick failure says nothing about queueing. Calls the limiter itself refuses
are never samples (that would drive the limit down by its own rejections).

**Groups and severities.** Operations with one ``concurrency_group`` share one limiter (a
registry on the handler, ``AdaptiveLimiters``, bounded by ``max_operation_names``). Each
operation holds a ``LimiterSlot``: the limiter and the operation's severity (its
``error_severity``; a reload may change it, or move the operation to another group). A shared
limit sheds lower severities first by *reserved headroom*: while a call of a higher
severity has asked for a slot within the last ``ACTIVE_SECONDS``, a severity may fill only
its share of the limit (``SHARES``: LOW 50 %, MEDIUM 70 %, HIGH 85 %, CRITICAL all of it),
so the rest stays free for the more important calls; with no higher severity about, any
severity may use the whole limit (nothing is wasted on an absent class). Waiting calls
(``bulkhead_wait``) are granted freed slots highest severity first, in arrival order
within a severity, and only within their severity's share. Concurrency-limits'
partitioned limiter gives each partition a guaranteed share and lets it borrow beyond it;
this is the converse (a ceiling per severity below the others'), which needs no partition
sizes to tune and keeps CRITICAL's access to the whole limit. When the higher severities
alone fill the limit, the lower ones get nothing: that is what shedding them first means.
A call refused below the limit (its share was full) tells the next sample that the limit
is wanted (its in-flight count is reported as the limit): the algorithms hold the limit
still while it is not in use (concurrency-limits' "app-limited" rule), and a share left
empty by the shedding must not read as a quiet dependency, or the limit would never grow
past twice what the higher severities use.

**Reloads.** A live reload (``_reload``) retunes a limiter in place (``retune``): new
bounds, the limit clamped into them, a new ``bulkhead_wait`` for the calls that ask from
then on; a new algorithm (or new bounds for the same one) starts from the limit as it is.
Its in-flight count and its waiters are the limiter's own and are kept: a call releases the
limiter it entered, whatever a reload did meanwhile (a moved operation's calls in flight
release its old group's limiter; the runners keep the slot a call entered on its
``RetryState``). ``AdaptiveLimiters.prepare_reload`` makes everything a reload needs and
checks it, touching nothing; its ``apply`` cannot fail.

>>> from coordination.error_handling._limit_algorithms import AIMD
>>> limiter = AdaptiveLimiter("orders-db", AIMD(1, 10, 4))
>>> slot = limiter.slot("LOW")
>>> entry = slot.enter()
>>> limiter.in_flight, limiter.limit
(1, 4)
>>> limiter.finish(entry, None, release=True)
>>> limiter.in_flight
0
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

from .. import _time
from .._bounded import BoundedNames
from .._concurrency_snapshot import ConcurrencySnapshot
from .._errors import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    OperationTimeout,
    RateLimitExceeded,
)
from .._logging import log_extra
from ._bulkhead import Waiter
from ._limit_algorithms import LimitAlgorithm, algorithm_for
from ._retry import retry_after_seconds
from ._severity import ErrorSeverity

if TYPE_CHECKING:
    import asyncio

    from ._bulkhead import Bulkhead
    from ._options import Options

__all__ = [
    "ACTIVE_SECONDS",
    "SHARES",
    "AdaptiveLimiter",
    "AdaptiveLimiters",
    "ConcurrencySnapshot",
    "Entry",
    "LimitSettings",
    "LimiterSlot",
    "LimitsReload",
    "check_limit_settings",
    "is_dropped",
    "limit_settings",
]

# Severities by rank: the index is what the limiter compares.
_SEVERITIES = tuple(s.value for s in ErrorSeverity)  # LOW, MEDIUM, HIGH, CRITICAL
_RANK = {name: rank for rank, name in enumerate(_SEVERITIES)}
_TOP = len(_SEVERITIES) - 1
# The share of the limit each severity may fill while a higher severity is active.
SHARES: Mapping[str, float] = MappingProxyType(
    {"LOW": 0.5, "MEDIUM": 0.7, "HIGH": 0.85, "CRITICAL": 1.0}
)
_SHARE_BY_RANK = tuple(SHARES[name] for name in _SEVERITIES)
# A severity is active while one of its calls asked for a slot this recently (seconds).
ACTIVE_SECONDS = 1.0
_NEVER = -math.inf
_DROPS = (OperationTimeout, TimeoutError, BulkheadFull, CircuitOpenError, RateLimitExceeded)


def is_dropped(error: BaseException) -> bool:
    """True when ``error`` says the dependency is overloaded: a timeout, a refusal, or an
    error carrying a ``Retry-After`` hint (an HTTP 429/503 answer)."""
    if isinstance(error, _DROPS):
        return True
    return isinstance(error, Exception) and retry_after_seconds(error) is not None


class _LimitSource(Protocol):  # Options, or a CoordinationConfig (the middleware's)
    @property
    def concurrency_algorithm(self) -> str: ...
    @property
    def min_concurrency(self) -> int: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def bulkhead_wait(self) -> float: ...


class LimitSettings(NamedTuple):
    """What an adaptive limit is made of: its algorithm, bounds and ``bulkhead_wait``."""

    algorithm: str
    minimum: int
    maximum: int
    wait: float


def limit_settings(source: _LimitSource) -> LimitSettings:
    """The limit settings of per-call ``Options`` or of a configuration."""
    return LimitSettings(
        source.concurrency_algorithm,
        source.min_concurrency,
        source.max_concurrency,
        source.bulkhead_wait,
    )


def check_limit_settings(settings: LimitSettings, where: str) -> None:
    """A ``ConfigError`` naming the setting when ``settings`` make no limit (``where``:
    whose they are, for the message)."""
    if settings.minimum > settings.maximum:
        raise ConfigError(
            f"invalid min_concurrency = {settings.minimum} for {where}: above "
            f"max_concurrency = {settings.maximum}",
            field="min_concurrency",
            value=settings.minimum,
        )
    algorithm_for(settings.algorithm, settings.minimum, settings.maximum)


def rank_of(severity: str | ErrorSeverity) -> int:
    """The rank the limiter compares for ``severity`` (LOW 0 .. CRITICAL 3)."""
    return _RANK[severity.value if isinstance(severity, ErrorSeverity) else severity]


class Entry:
    """One admitted call: when it started and the calls in flight then (its sample's)."""

    __slots__ = ("in_flight", "started")

    def __init__(self, started: float, in_flight: int) -> None:
        self.started = started
        self.in_flight = in_flight


class _Waiter(Waiter):
    """A bulkhead's waiter, handed the ``Entry`` of the slot it is granted."""

    __slots__ = ("entry",)

    def __init__(
        self,
        event: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        super().__init__(event, loop, future)
        self.entry: Entry | None = None


_NO_GRANTS: list[_Waiter] = []  # never appended to: _grants' answer when nobody waits


class AdaptiveLimiter:
    """A concurrency limit moved by ``algorithm``; calls enter through a ``slot(severity)``.

    ``wait``: seconds a call may wait for a slot (``bulkhead_wait``); ``clock``: the
    handler's. Thread-safe; one lock, never held across a call or a wait.
    """

    __slots__ = (
        "__weakref__",  # a set's reloader follows the middleware's limit while it lives
        "_algorithm",
        "_highest",
        "_in_flight",
        "_limit",
        "_lock",
        "_seen",
        "_shed",
        "_waiters",
        "_waiting",
        "_wanted",
        "algorithm_name",
        "clock",
        "maximum",
        "minimum",
        "name",
        "wait",
    )

    def __init__(
        self,
        name: str,
        algorithm: LimitAlgorithm,
        wait: float = 0.0,
        clock: _time.Clock = _time.monotonic,
        *,
        algorithm_name: str | None = None,
        minimum: int = 1,
        maximum: int = 200,
    ) -> None:
        self.name = name
        self.wait = wait
        self.clock = clock
        self.algorithm_name = algorithm_name or type(algorithm).__name__.lower()
        self.minimum = minimum
        self.maximum = maximum
        self._algorithm = algorithm
        self._limit = algorithm.limit
        self._in_flight = 0
        self._lock = threading.Lock()
        self._seen = [_NEVER] * len(_SEVERITIES)  # when each severity last asked
        self._highest = -1  # the highest severity ever seen (one alone: no shares to mind)
        self._shed = [0] * len(_SEVERITIES)  # refused, by severity (under the lock)
        self._wanted = False  # a call was refused below the limit since the last sample
        self._waiters: tuple[deque[_Waiter], ...] = tuple(deque() for _ in _SEVERITIES)
        self._waiting = 0  # in every queue (a plain count: the common case has none)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def settings(self) -> LimitSettings:
        return LimitSettings(self.algorithm_name, self.minimum, self.maximum, self.wait)

    def slot(self, severity: str | ErrorSeverity) -> LimiterSlot:
        """What an operation of ``severity`` holds: this limiter's bulkhead interface."""
        return LimiterSlot(self, rank_of(severity))

    def retune(self, settings: LimitSettings) -> None:
        """Take ``settings`` in place (checked beforehand: ``check_limit_settings``): the
        limit clamped into the new bounds; a new algorithm, or the same one with new
        bounds, started from that limit (the latency it had learnt starts again); the new
        wait for calls that ask from now. The calls in flight and the waiters stay: a
        limit shrunk below the calls in flight admits nobody until they are under it; a
        grown one grants its waiters at once."""
        with self._lock:
            if settings == self.settings:
                return
            algorithm, minimum, maximum, wait = settings
            if (algorithm, minimum, maximum) != (self.algorithm_name, self.minimum, self.maximum):
                start = min(maximum, max(minimum, self._limit))
                self._algorithm = algorithm_for(algorithm, minimum, maximum, initial=start)
                self._limit = self._algorithm.limit
                self.algorithm_name, self.minimum, self.maximum = algorithm, minimum, maximum
            self.wait = wait
            grants = self._grants(self.clock())
        if grants:
            self._wake_all(grants)

    def cap(self, rank: int, now: float) -> int:
        """The in-flight calls a call of severity ``rank`` may join: the whole limit,
        unless a higher severity is active (then its share, at least one)."""
        limit = self._limit
        if rank < self._highest:
            seen = self._seen
            for higher in range(rank + 1, len(seen)):
                if now - seen[higher] < ACTIVE_SECONDS:
                    return max(1, math.floor(limit * _SHARE_BY_RANK[rank]))
        return limit

    def _queued_ahead(self, rank: int) -> bool:
        if not self._waiting:
            return False
        return any(self._waiters[r] for r in range(rank, len(self._waiters)))

    def _join(self, rank: int, make_waiter: Callable[[], _Waiter]) -> Entry | _Waiter:
        now = self.clock()
        with self._lock:
            self._seen[rank] = now
            if rank > self._highest:
                self._highest = rank
            if self._in_flight < self.cap(rank, now) and not self._queued_ahead(rank):
                self._in_flight += 1
                return Entry(now, self._in_flight)
            if self.wait <= 0:
                self._refused(rank)
                raise BulkheadFull(self.name, self._limit)
            waiter = make_waiter()
            self._waiters[rank].append(waiter)
            self._waiting += 1
            return waiter

    def _refused(self, rank: int) -> None:
        """Under the lock: count a refusal; one below the limit (a severity's share was
        full) means the limit is wanted, though fewer calls are in flight than it allows."""
        self._shed[rank] += 1
        if self._in_flight < self._limit:
            self._wanted = True

    def _settle(self, rank: int, waiter: _Waiter) -> Entry:
        with self._lock:
            if waiter.granted:
                return cast(Entry, waiter.entry)
            self._waiters[rank].remove(waiter)
            self._waiting -= 1
            self._refused(rank)
            limit = self._limit
            grants = self._grants(self.clock())  # a waiter behind this one may fit now
        if grants:
            self._wake_all(grants)
        raise BulkheadFull(self.name, limit)

    def enter(self, rank: int = _TOP) -> Entry:
        """A slot for a call of severity ``rank`` (waiting up to ``wait``), or ``BulkheadFull``."""
        joined = self._join(rank, lambda: _Waiter(event=threading.Event()))
        if type(joined) is Entry:
            return joined
        waiter = cast(_Waiter, joined)
        try:
            cast(threading.Event, waiter.event).wait(self.wait)
        except BaseException:  # KeyboardInterrupt in the wait: leave the queue, or the slot
            self._abandon(rank, waiter)
            raise
        return self._settle(rank, waiter)

    def _abandon(self, rank: int, waiter: _Waiter) -> None:
        """A waiter that stops waiting (interrupted, cancelled): out of its queue, or, when
        a slot was granted it meanwhile, that slot passed on (else it would leak)."""
        with self._lock:
            granted = waiter.granted
            if not granted:
                self._waiters[rank].remove(waiter)
                self._waiting -= 1
        if granted:
            self.leave()

    async def aenter(self, rank: int = _TOP) -> Entry:
        import asyncio  # loaded by the async runner already: a lookup, not an import

        loop = asyncio.get_running_loop()
        joined = self._join(rank, lambda: _Waiter(loop=loop, future=loop.create_future()))
        if type(joined) is Entry:
            return joined
        waiter = cast(_Waiter, joined)
        future = cast("asyncio.Future[None]", waiter.future)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.wait)
        except TimeoutError:
            pass
        except BaseException:  # cancelled: a slot handed to us meanwhile is passed on
            self._abandon(rank, waiter)
            raise
        return self._settle(rank, waiter)

    def leave(self) -> None:
        """Release a slot without a sample (an abandoned attempt's, handed back at its end)."""
        with self._lock:
            self._in_flight -= 1
            grants = self._grants(self.clock())
        if grants:
            self._wake_all(grants)

    def finish(self, entry: Entry, error: BaseException | None, *, release: bool) -> None:
        """The call of ``entry`` ended with ``error`` (None: it succeeded): its sample, and
        its slot released when it still holds it (``release``)."""
        dropped = error is not None and is_dropped(error)
        self.end(entry, sampled=error is None or dropped, dropped=dropped, release=release)

    def end(self, entry: Entry, *, sampled: bool, dropped: bool, release: bool) -> None:
        """``finish`` with the outcome already read: a sample (``sampled``, ``dropped``) or
        none, and the slot released (``release``); the middleware reads status codes."""
        now = self.clock()
        with self._lock:
            if sampled:
                in_flight = entry.in_flight
                if self._wanted:  # not app-limited: the limit itself turned calls away
                    in_flight, self._wanted = max(in_flight, self._limit), False
                self._limit = self._algorithm.on_sample(
                    entry.started, now - entry.started, in_flight, dropped
                )
            if release:
                self._in_flight -= 1
            grants = self._grants(now)
        if grants:
            self._wake_all(grants)

    def _grants(self, now: float) -> list[_Waiter]:
        """Under the lock: the waiters that fit now, highest severity first; granted."""
        if not self._waiting:
            return _NO_GRANTS
        granted: list[_Waiter] = []
        for rank in range(_TOP, -1, -1):
            queue = self._waiters[rank]
            while queue and self._in_flight < self.cap(rank, now):
                waiter = queue.popleft()
                self._waiting -= 1
                self._in_flight += 1
                waiter.entry = Entry(now, self._in_flight)
                waiter.granted = True
                granted.append(waiter)
        return granted

    def _wake_all(self, waiters: list[_Waiter]) -> None:  # outside the lock
        for waiter in waiters:
            if not waiter.wake():  # its loop has closed; the waiter is gone, pass it on
                self.leave()

    def snapshot(self) -> ConcurrencySnapshot:
        with self._lock:
            shed = dict(zip(_SEVERITIES, self._shed, strict=True))
            waiting = self._waiting
            limit, in_flight = self._limit, self._in_flight
        return ConcurrencySnapshot(
            self.name,
            self.algorithm_name,
            limit,
            self.minimum,
            self.maximum,
            in_flight,
            waiting,
            MappingProxyType(shed),
        )


class LimiterSlot:
    """An operation's way into an ``AdaptiveLimiter``: the bulkhead's interface, with the
    operation's severity (``enter`` / ``aenter`` answer the call's ``Entry``)."""

    __slots__ = ("limiter", "rank")

    def __init__(self, limiter: AdaptiveLimiter, rank: int) -> None:
        self.limiter = limiter
        self.rank = rank

    @property
    def max_concurrent(self) -> int:  # what a bulkhead reports: the limit now
        return self.limiter.limit

    @property
    def in_flight(self) -> int:
        return self.limiter.in_flight

    def enter(self) -> Entry:
        return self.limiter.enter(self.rank)

    async def aenter(self) -> Entry:
        return await self.limiter.aenter(self.rank)

    def leave(self) -> None:
        self.limiter.leave()

    def finish(self, entry: Entry, error: BaseException | None, *, release: bool) -> None:
        self.limiter.finish(entry, error, release=release)


class AdaptiveLimiters:
    """The handler's adaptive limiters: one per ``concurrency_group``, else one per
    operation; at most ``max_names`` groups (later ones share the overflow group)."""

    __slots__ = ("_clock", "_limiters", "_lock", "_logger", "_names")

    def __init__(self, max_names: int, clock: _time.Clock, logger: logging.Logger) -> None:
        self._clock = clock
        self._logger = logger
        self._names = BoundedNames(max_names, logger=logger)
        self._limiters: dict[str, AdaptiveLimiter] = {}
        self._lock = threading.Lock()

    def slot_for(self, operation: str, options: Options) -> LimiterSlot:
        """The slot of ``operation`` (with ``options``) in its group's limiter, made by the
        first operation of the group (a later one asking for other settings is warned)."""
        settings = limit_settings(options)
        if settings.minimum > settings.maximum:
            check_limit_settings(settings, f"operation {operation!r}")
        group = self._names.admit(options.concurrency_group or operation)
        with self._lock:
            limiter = self._limiters.get(group)
            if limiter is None:
                limiter = self._limiters[group] = self._made(group, settings)
                return limiter.slot(options.severity)
        if limiter.settings != settings:
            self._warn_other_settings(limiter, operation)
        return limiter.slot(options.severity)

    def _made(self, group: str, settings: LimitSettings) -> AdaptiveLimiter:
        algorithm = algorithm_for(settings.algorithm, settings.minimum, settings.maximum)
        return AdaptiveLimiter(
            group,
            algorithm,
            settings.wait,
            self._clock,
            algorithm_name=settings.algorithm,
            minimum=settings.minimum,
            maximum=settings.maximum,
        )

    def _warn_other_settings(self, limiter: AdaptiveLimiter, operation: str) -> None:
        self._logger.warning(
            "concurrency group %r has its limit (%s, %d..%d, wait %ss) from its first "
            "operation; operation %r asks for other settings, which are ignored",
            limiter.name,
            limiter.algorithm_name,
            limiter.minimum,
            limiter.maximum,
            limiter.wait,
            operation,
            extra=log_extra(operation, concurrency_group=limiter.name),
        )

    def prepare_reload(
        self, operations: Iterable[tuple[str, Options, Bulkhead | LimiterSlot | None]]
    ) -> LimitsReload:
        """What a reload does to the limiters, made and checked, nothing changed yet.

        ``operations``: each live adaptive operation's name, new options and bulkhead now,
        in the order they were made. A group's limit takes the settings of its first
        operation (as when it was made); an operation that stays in its group keeps its
        slot (its severity set by ``apply``), one that moves gets a new slot (in a group
        made here when it is new). Raises ``ConfigError`` when settings do not check."""
        known = len(self._names)
        new: dict[str, AdaptiveLimiter] = {}
        settings_of: dict[str, LimitSettings] = {}
        slots: dict[str, LimiterSlot] = {}
        ranks: list[tuple[LimiterSlot, int]] = []
        warnings: list[tuple[str, str]] = []
        with self._lock:
            existing = dict(self._limiters)
        for operation, options, current in operations:
            settings = limit_settings(options)
            check_limit_settings(settings, f"operation {operation!r}")
            group = options.concurrency_group or operation
            if group not in existing and group not in new:
                if known >= self._names.limit and group not in self._names.names():
                    group = self._names.overflow
                else:
                    known += 1
            limiter = existing.get(group) or new.get(group)
            if limiter is None:
                limiter = new[group] = self._made(group, settings)
            if group not in settings_of:
                settings_of[group] = settings
            elif settings_of[group] != settings:
                warnings.append((group, operation))
            rank = rank_of(options.severity)
            if isinstance(current, LimiterSlot) and current.limiter is limiter:
                slots[operation] = current
                ranks.append((current, rank))
            else:
                slots[operation] = LimiterSlot(limiter, rank)
        retunes = [(existing[group], s) for group, s in settings_of.items() if group in existing]
        return LimitsReload(self, new, retunes, ranks, slots, warnings)

    def _install(self, new: Mapping[str, AdaptiveLimiter]) -> None:
        with self._lock:
            for group, limiter in new.items():
                self._names.admit(group)
                self._limiters.setdefault(group, limiter)

    def snapshots(self) -> Mapping[str, ConcurrencySnapshot]:
        with self._lock:
            limiters = list(self._limiters.values())
        return MappingProxyType({limiter.name: limiter.snapshot() for limiter in limiters})


class LimitsReload:
    """A reload of the limiters, prepared (``AdaptiveLimiters.prepare_reload``): ``slot``
    answers each adaptive operation's slot; ``apply()`` cannot fail."""

    __slots__ = ("_limiters", "_new", "_ranks", "_retunes", "_slots", "_warnings")

    def __init__(
        self,
        limiters: AdaptiveLimiters,
        new: Mapping[str, AdaptiveLimiter],
        retunes: list[tuple[AdaptiveLimiter, LimitSettings]],
        ranks: list[tuple[LimiterSlot, int]],
        slots: Mapping[str, LimiterSlot],
        warnings: list[tuple[str, str]],
    ) -> None:
        self._limiters = limiters
        self._new = new
        self._retunes = retunes
        self._ranks = ranks
        self._slots = slots
        self._warnings = warnings

    def slot(self, operation: str) -> LimiterSlot | None:
        """The slot the adaptive ``operation`` has after the reload (None: not adaptive)."""
        return self._slots.get(operation)

    def apply(self) -> None:
        """The new groups registered, the others retuned in place, severities set."""
        self._limiters._install(self._new)
        for limiter, settings in self._retunes:
            limiter.retune(settings)
        for slot, rank in self._ranks:
            slot.rank = rank  # read when a call asks: the next call has the new severity
        by_name = {**self._limiters._limiters}
        for group, operation in self._warnings:
            warned = by_name.get(group)
            if warned is not None:
                self._limiters._warn_other_settings(warned, operation)
