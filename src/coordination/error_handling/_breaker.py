"""The in-memory circuit breaker: consecutive failures, or a resilience4j-style window.

Why the closed-state success path takes no lock: it reads ``_state`` (one attribute load)
in ``acquire`` (and in the callables ``guard`` / ``aguard`` make) and, in
consecutive-failure mode, stores ``0`` into ``_consecutive`` in ``record_success``.
Under the GIL a single attribute load or store is atomic, so neither
can tear. The only race is a success's store landing between a concurrent failure's
read and write of ``_consecutive`` (which happens under the lock); then one failure is
forgotten, which is what "consecutive" means when calls overlap anyway. Every transition,
every failure and every window update happens under ``_lock``; the lock is never held
while the protected call runs, nor while a transition hook runs. Exact call counts are
the handler's job (``itertools.count``, whose ``next`` is atomic).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .._errors import CircuitOpenError
from .._time import Clock, monotonic
from ._backends import (
    RAISE,
    BreakerSettings,
    BreakerSnapshot,
    BreakerTransition,
    CircuitState,
)

__all__ = ["CircuitBreaker", "memory_breaker_factory", "same_kind"]

# What a pipeline hands ``guard`` / ``aguard``: (func, args, kwargs[, exc or result]) -> value
Handover = Callable[..., Any]

_new = BaseException.__new__
_NEVER = math.inf
CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


def same_kind(old: BreakerSettings, new: BreakerSettings) -> bool:
    """Whether a breaker made with ``old`` can take ``new`` keeping its state: the same
    mode and window, and durations tracked in both or neither."""
    return (
        old.mode == new.mode
        and old.uses_window == new.uses_window
        and old.window_type == new.window_type
        and old.window_size == new.window_size
        and (old.slow_call_duration is None) == (new.slow_call_duration is None)
    )


# what a diverted guard compares the state with: never the state, so every call takes the
# pipeline's path (see ``guard``'s ``on_divert``)
_DIVERTED = object()


class _Window:
    """Outcomes of the last ``size`` calls (count) or ``size`` seconds (time), as sums."""

    __slots__ = ("_calls", "_failures", "_last", "_slow", "by_time", "calls", "failures", "slow")

    def __init__(self, size: int, *, by_time: bool) -> None:
        self.by_time = by_time
        self._calls = [0] * size  # per slot: a call (count mode) or a second's calls (time)
        self._failures = [0] * size
        self._slow = [0] * size
        self._last = 0  # count mode: next slot; time mode: the last second recorded
        self.calls = self.failures = self.slow = 0

    def add(self, failed: bool, slow: bool, now: float) -> None:
        size = len(self._calls)
        if self.by_time:
            second = int(now)
            # clear the seconds skipped since the last call (at most the whole window)
            for stale in range(max(self._last + 1, second - size + 1), second + 1):
                self._clear(stale % size)
            self._last = max(self._last, second)
            slot = second % size
        else:
            slot = self._last
            self._last = (slot + 1) % size
            self._clear(slot)
        self._calls[slot] += 1
        self._failures[slot] += failed
        self._slow[slot] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def expire(self, now: float) -> None:
        """Time mode: forget seconds that fell out of the window before reading the sums."""
        if self.by_time and int(now) > self._last:
            size = len(self._calls)
            second = int(now)
            for stale in range(max(self._last + 1, second - size + 1), second + 1):
                self._clear(stale % size)
            self._last = second

    def _clear(self, slot: int) -> None:
        self.calls -= self._calls[slot]
        self.failures -= self._failures[slot]
        self.slow -= self._slow[slot]
        self._calls[slot] = self._failures[slot] = self._slow[slot] = 0

    def reset(self) -> None:
        for slot in range(len(self._calls)):
            self._clear(slot)


class CircuitBreaker:
    """One operation's breaker, in process memory (the default backend).

    >>> breaker = CircuitBreaker("payments", BreakerSettings(failure_threshold=2))
    >>> breaker.record_failure(0.0); breaker.record_failure(0.0); breaker.state
    <CircuitState.OPEN: 'OPEN'>
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_consecutive",
        "_forced",
        "_half_open_since",
        "_lock",
        "_on_transition",
        "_open_for",
        "_open_until",
        "_reopens",
        "_state",
        "_timed",
        "_timer_due",
        "_transitions",
        "_trial_successes",
        "_trials",
        "_window",
        "blocking",
        "name",
        "settings",
        "tracks_duration",
    )

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Clock = monotonic,
        on_transition: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings = settings or BreakerSettings()
        self.tracks_duration = settings.slow_call_duration is not None
        self.blocking = False
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        # when the open period ends (written before _state turns OPEN: read lock-free)
        self._open_until = 0.0
        self._open_for = settings.open_time(0)  # the current (or next) open period's length
        self._reopens = 0  # HALF_OPEN -> OPEN since the last close (grows _open_for)
        self._trials = 0  # trial calls admitted and still running, while HALF_OPEN
        self._trial_successes = 0
        self._half_open_since = _NEVER  # when the first trial of this half-open period came
        self._forced = False
        # On the real clock a process-wide timer reports OPEN -> HALF_OPEN when the open
        # period ends (``_breaker_timer``); on an injected clock a read or a call does.
        self._timed = clock is monotonic
        self._timer_due = _NEVER  # the end of an open period the timer will look at
        self._transitions: dict[str, int] = {}
        self._window = (
            _Window(settings.window_size, by_time=settings.window_type == "time")
            if settings.uses_window
            else None
        )

    @property
    def state(self) -> CircuitState:
        """What the next call will see. An open period that has ended is HALF_OPEN, and
        trials past ``half_open_max_wait`` are the re-opened breaker they are: reading
        makes that transition (reported once, to ``on_transition``) if no call or timer
        has made it yet."""
        state = self._state
        if state is CLOSED or (
            state is OPEN and (self._forced or self._open_until > self._clock())
        ):
            return state
        moved: list[BreakerTransition] = []
        try:
            with self._lock:
                self._settle_locked(self._clock(), moved)
                state = self._state
        finally:
            self._notify_all(moved)
        return state

    # --- the per-call protocol ----------------------------------------------------------

    def acquire(self) -> None:
        state = self._state
        if state is CLOSED:  # the hot path: one attribute read, no lock
            return
        if state is OPEN and not self._forced:
            # lock-free rejection: _open_until is written before _state turns OPEN
            remaining = self._open_until - self._clock()
            if remaining > 0:
                raise CircuitOpenError(self.name, remaining)
        moved: list[BreakerTransition] = []
        try:
            with self._lock:
                self._acquire_locked(moved)
        finally:
            self._notify_all(moved)

    def _acquire_locked(self, moved: list[BreakerTransition]) -> None:
        if self._state is CLOSED:
            return
        if self._forced:
            raise CircuitOpenError(self.name, self.settings.open_time(0))
        now = self._clock()
        self._settle_locked(now, moved)
        if self._state is OPEN:
            raise CircuitOpenError(self.name, self._open_until - now)
        if self._trials_full():  # every trial slot is taken: back when they must have ended
            raise CircuitOpenError(
                self.name, self._half_open_since + self.settings.trial_seconds - now
            )
        if self._half_open_since == _NEVER:
            self._half_open_since = now  # the first trial starts the half-open wait
        self._trials += 1

    def _settle_locked(self, now: float, moved: list[BreakerTransition]) -> None:
        """Make the transitions time has brought: an open period over → HALF_OPEN; trials
        not concluded within ``half_open_max_wait`` → OPEN as of that deadline (and, when
        that open period is over too, HALF_OPEN again)."""
        while not self._forced:
            state = self._state
            if state is OPEN and now >= self._open_until:
                moved.append(self._move(HALF_OPEN, "open timeout elapsed; admitting trial calls"))
                self._trials = self._trial_successes = 0
                self._half_open_since = _NEVER
            elif state is HALF_OPEN and now >= self._half_open_since + self.settings.trial_seconds:
                deadline = self._half_open_since + self.settings.trial_seconds
                seconds = self.settings.trial_seconds
                moved.append(self._open(f"trial calls not concluded within {seconds:g}s", deadline))
            else:
                return

    def _trials_full(self) -> bool:
        return self._trials + self._trial_successes >= self.settings.half_open_calls

    def rejects_for(self) -> float:
        """Seconds an OPEN breaker will still reject (lock-free), else 0.0: then call
        ``acquire()``, which also handles forced-open and half-open."""
        if self._state is OPEN and not self._forced:
            return self._open_until - self._clock()
        return 0.0

    def guard(
        self,
        func: Callable[..., Any],
        *,
        successes: Iterator[int],
        failed: Handover,
        otherwise: Handover,
        refused: Callable[[CircuitOpenError, tuple[Any, ...], dict[str, Any]], Any],
        on_result: Handover | None = None,
        refusals_returned: bool = False,
        on_divert: Callable[[Callable[[bool], None]], None] | None = None,
    ) -> Callable[..., Any]:
        """``func`` behind this breaker's lock-free closed path, for a pipeline with nothing
        to do before a call (no rate limit, bulkhead or timeout, no durations to measure).

        While CLOSED: the call, its success recorded (one atomic store in consecutive
        mode), then ``next(successes)`` and the result; or, when given, ``on_result(func,
        args, kwargs, result)``, which then tells this breaker the outcome (a result may
        count as a failure: ``trip_if_result``), and nothing is recorded here. A call that
        raised goes to ``failed(func, args, kwargs, exc)``, which must tell this breaker.
        While OPEN the call is refused at once: ``refused(CircuitOpenError, args,
        kwargs)`` counts it and answers (a fallback's value, or
        ``RAISE``: the error is raised here, or with ``refusals_returned`` returned as
        ``[RAISE, error]``, for a caller that raises ``error`` from its own frame). Else
        (half-open, forced open, an open period over) ``otherwise(func, args, kwargs)``:
        the full path, through ``acquire``. ``on_divert`` is given a switch that sends
        every call to that path as if the breaker were not CLOSED (a reload changed the
        pipeline's shape): the closed check compares with a cell the switch rebinds, so
        it costs the closed path nothing.
        """
        # every variable of this closure is copied at each call: only what a call needs
        record_success = None if self._window is None else self.record_success
        clock = self._clock
        closed: object = CLOSED

        def divert(on: bool) -> None:
            nonlocal closed
            closed = _DIVERTED if on else CLOSED

        if on_divert is not None:
            on_divert(divert)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._state is not closed:
                if self._state is OPEN and not self._forced and closed is CLOSED:
                    # lock-free: _open_until is written before _state turns OPEN
                    remaining = self._open_until - clock()
                    if remaining > 0:
                        refusal = _new(CircuitOpenError, self.name, remaining)
                        refusal.operation = self.name
                        refusal.retry_after = remaining
                        answer = refused(refusal, args, kwargs)
                        if answer is not RAISE:
                            return answer
                        returned = [RAISE, refusal]
                        if refusals_returned:
                            return returned
                        # raised from the list: no cycle error -> traceback -> this frame
                        # -> error (cheaper than try/finally: del)
                        del refusal
                        raise returned.pop()
                return otherwise(func, args, kwargs)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                return failed(func, args, kwargs, exc)
            if on_result is not None:  # it tells this breaker the outcome itself
                return on_result(func, args, kwargs, result)
            if record_success is None:
                self._consecutive = 0  # an atomic store; see the module docstring
            else:
                record_success(0.0)
            next(successes)
            return result

        return guarded

    def guard_from_start(
        self,
        func: Callable[..., Any],
        *,
        failed_since: Handover,
        **handovers: Any,
    ) -> Callable[..., Any]:
        """``guard`` that reads the clock before a CLOSED call, for a pipeline whose time
        budget counts from the start of the call: a first attempt that raised goes to
        ``failed_since(func, args, kwargs, exc, started)`` (``started`` left out when the
        breaker closed between two reads). Not CLOSED: ``guard``'s path."""
        on_divert = handovers.pop("on_divert", None)
        switches: list[Callable[[bool], None]] = []
        guarded = self.guard(func, failed=failed_since, on_divert=switches.append, **handovers)
        successes: Iterator[int] = handovers["successes"]
        on_result: Handover | None = handovers.get("on_result")
        record_success = None if self._window is None else self.record_success
        clock = self._clock
        closed: object = CLOSED

        def divert(on: bool) -> None:
            nonlocal closed
            closed = _DIVERTED if on else CLOSED
            switches[0](on)

        if on_divert is not None:
            on_divert(divert)

        def from_start(*args: Any, **kwargs: Any) -> Any:
            if self._state is not closed:
                return guarded(*args, **kwargs)
            started = clock()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                return failed_since(func, args, kwargs, exc, started)
            if on_result is not None:  # it tells this breaker the outcome itself
                return on_result(func, args, kwargs, result)
            if record_success is None:
                self._consecutive = 0  # an atomic store; see the module docstring
            else:
                record_success(0.0)
            next(successes)
            return result

        return from_start

    def aguard(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        successes: Iterator[int],
        failed: Callable[..., Awaitable[Any]],
        otherwise: Callable[..., Awaitable[Any]],
        bypass: Callable[[], object],
        on_result: Callable[..., Awaitable[Any]] | None = None,
        on_divert: Callable[[Callable[[bool], None]], None] | None = None,
    ) -> Callable[..., Awaitable[Any]]:
        """``guard`` for a coroutine function: while CLOSED and ``bypass()`` is None, the
        awaited call and its success recorded; anything else (not CLOSED, a failure, a
        result to look at) is awaited from the pipeline's ``otherwise`` / ``failed`` /
        ``on_result``, as in ``guard`` (``on_divert`` too)."""
        record_success = self.record_success
        closed: object = CLOSED

        def divert(on: bool) -> None:
            nonlocal closed
            closed = _DIVERTED if on else CLOSED

        if on_divert is not None:
            on_divert(divert)

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._state is not closed or bypass() is not None:
                return await otherwise(func, args, kwargs)
            try:
                value = await func(*args, **kwargs)
            except Exception as exc:
                return await failed(func, args, kwargs, exc)
            if on_result is not None:  # it tells this breaker the outcome itself
                return await on_result(func, args, kwargs, value)
            record_success(0.0)
            next(successes)
            return value

        return guarded

    def aguard_from_start(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        successes: Iterator[int],
        failed_since: Callable[..., Awaitable[Any]],
        otherwise: Callable[..., Awaitable[Any]],
        bypass: Callable[[], object],
        on_result: Callable[..., Awaitable[Any]] | None = None,
        on_divert: Callable[[Callable[[bool], None]], None] | None = None,
    ) -> Callable[..., Awaitable[Any]]:
        """``aguard`` that reads the clock before a CLOSED call (see ``guard_from_start``):
        a first attempt that raised goes to ``failed_since(func, args, kwargs, exc,
        started)``."""
        record_success = self.record_success
        clock = self._clock
        closed: object = CLOSED

        def divert(on: bool) -> None:
            nonlocal closed
            closed = _DIVERTED if on else CLOSED

        if on_divert is not None:
            on_divert(divert)

        async def from_start(*args: Any, **kwargs: Any) -> Any:
            if self._state is not closed or bypass() is not None:
                return await otherwise(func, args, kwargs)
            started = clock()
            try:
                value = await func(*args, **kwargs)
            except Exception as exc:
                return await failed_since(func, args, kwargs, exc, started)
            if on_result is not None:  # it tells this breaker the outcome itself
                return await on_result(func, args, kwargs, value)
            record_success(0.0)
            next(successes)
            return value

        return from_start

    def record_success(self, duration: float) -> None:
        if self._state is CLOSED and self._window is None:
            self._consecutive = 0  # an atomic store; see the module docstring
            return
        moved: list[BreakerTransition] | None = None
        with self._lock:
            if self._state is CLOSED:  # the window's closed path: no list, one call
                self._consecutive = 0
                opened = self._add_to_window(False, duration)
            else:
                opened, moved = None, []
                self._success_locked(duration, moved)
        if opened is not None:
            self._notify(opened)
        elif moved:
            self._notify_all(moved)

    def record_failure(self, duration: float) -> None:
        moved: list[BreakerTransition] | None = None
        with self._lock:
            if self._state is CLOSED:  # the common case, inline
                self._consecutive += 1
                opened = self._add_to_window(True, duration)
                if opened is None and self._consecutive >= self.settings.failure_threshold:
                    opened = self._open(f"{self._consecutive} consecutive failures")
            else:
                opened, moved = None, []
                self._failure_locked(duration, moved)
        if opened is not None:
            self._notify(opened)
        elif moved:
            self._notify_all(moved)

    def release(self) -> None:
        if self._state is HALF_OPEN:
            with self._lock:
                if self._state is HALF_OPEN and self._trials > 0:
                    self._trials -= 1

    async def aacquire(self) -> None:
        self.acquire()

    async def arecord_success(self, duration: float) -> None:
        self.record_success(duration)

    async def arecord_failure(self, duration: float) -> None:
        self.record_failure(duration)

    async def arelease(self) -> None:
        self.release()

    # --- control and inspection ---------------------------------------------------------

    def retune(self, settings: BreakerSettings) -> bool:
        """Take ``settings`` in place, keeping the state and counts, when they are of this
        breaker's kind (the same window, durations tracked or not); else False and nothing
        changes (a reload then makes a new breaker). The next decision reads them."""
        if not same_kind(self.settings, settings):
            return False
        with self._lock:
            self.settings = settings
            if self._state is CLOSED:  # the next open period's length, as reset makes it
                self._open_for = settings.open_time(self._reopens)
        return True

    def reset(self) -> None:
        with self._lock:
            self._forced = False
            self._consecutive = self._trials = self._trial_successes = self._reopens = 0
            self._open_for = self.settings.open_time(0)
            self._half_open_since = _NEVER
            if self._window is not None:
                self._window.reset()
            moved = self._move(CLOSED, "reset") if self._state is not CLOSED else None
        self._notify(moved)

    def force_open(self) -> None:
        with self._lock:
            self._forced = True
            self._open_until = self._clock() + self.settings.open_time(0)
            moved = self._move(OPEN, "forced open") if self._state is not OPEN else None
        self._notify(moved)

    def snapshot(self) -> BreakerSnapshot:
        moved: list[BreakerTransition] = []
        try:
            with self._lock:
                now = self._clock()
                self._settle_locked(now, moved)
                window = self._window
                failure_rate = slow_rate = None
                calls = 0
                if window is not None:
                    window.expire(now)
                    calls = window.calls
                    if calls >= self.settings.minimum_calls:
                        failure_rate = window.failures / calls
                        slow_rate = window.slow / calls
                state = self._state
                if state is not OPEN:
                    retry_after = 0.0
                elif self._forced:
                    retry_after = self.settings.open_time(0)
                else:
                    retry_after = self._open_until - now
                return BreakerSnapshot(
                    name=self.name,
                    state=state,
                    consecutive_failures=self._consecutive,
                    failure_rate=failure_rate,
                    slow_call_rate=slow_rate if self.tracks_duration else None,
                    window_calls=calls,
                    retry_after=retry_after,
                    forced_open=self._forced,
                    transitions=dict(self._transitions),
                    backend="memory",
                    mode=self.settings.mode,
                    open_seconds=self._open_for if state is OPEN else self._next_open_for(),
                    reopens=self._reopens,
                )
        finally:
            self._notify_all(moved)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"

    # --- transitions (always under the lock) --------------------------------------------

    def _next_open_for(self) -> float:
        """How long the breaker would stay open if it opened now."""
        if self._state is HALF_OPEN:
            return self.settings.open_time(self._reopens + 1)
        return self.settings.open_time(0)

    def _success_locked(self, duration: float, moved: list[BreakerTransition]) -> None:
        """A success while not CLOSED (CLOSED is ``record_success``'s own path)."""
        self._settle_locked(self._clock(), moved)  # a trial past its deadline is late
        if self._state is HALF_OPEN and self._trials > 0:
            self._trials -= 1
            self._trial_successes += 1
            if self._trial_successes >= self.settings.half_open_calls:
                self._consecutive = self._trials = self._trial_successes = self._reopens = 0
                self._open_for = self.settings.open_time(0)
                self._half_open_since = _NEVER
                if self._window is not None:
                    self._window.reset()
                moved.append(self._move(CLOSED, "trial calls succeeded"))
        # else: a late success of a call admitted before the breaker opened

    def _failure_locked(self, duration: float, moved: list[BreakerTransition]) -> None:
        """A failure while not CLOSED (CLOSED is ``record_failure``'s own path)."""
        self._settle_locked(self._clock(), moved)
        if self._state is HALF_OPEN and self._trials > 0:
            moved.append(self._open("a trial call failed"))
        # else: already open; a late failure does not restart the open period

    def _add_to_window(self, failed: bool, duration: float) -> BreakerTransition | None:
        window = self._window
        if window is None:
            return None
        settings = self.settings
        slow = settings.slow_call_duration is not None and duration >= settings.slow_call_duration
        window.add(failed, slow, self._clock())
        if window.calls < settings.minimum_calls:
            return None
        rate = settings.failure_rate_threshold
        if rate is not None and window.failures >= rate * window.calls:
            rate_text = f"{window.failures / window.calls:.0%}"
            return self._open(f"failure rate {rate_text} over the window")
        slow_rate = settings.slow_call_rate_threshold
        if slow_rate is not None and window.slow >= slow_rate * window.calls:
            return self._open(f"slow-call rate {window.slow / window.calls:.0%} over the window")
        return None

    def _open(self, reason: str, at: float | None = None) -> BreakerTransition:
        """To OPEN (as of ``at``, default now); from HALF_OPEN it is a re-open, and the
        open period grows by ``open_backoff_multiplier``."""
        if self._state is HALF_OPEN:
            self._reopens += 1
            self._open_for = self.settings.open_time(self._reopens)
        else:
            self._reopens = 0
            self._open_for = self.settings.open_time(0)
        self._open_until = (self._clock() if at is None else at) + self._open_for
        self._trials = self._trial_successes = 0
        self._half_open_since = _NEVER
        return self._move(OPEN, reason)

    def _move(self, new: CircuitState, reason: str) -> BreakerTransition:
        old = self._state
        self._state = new
        key = f"{old.value}->{new.value}"
        self._transitions[key] = self._transitions.get(key, 0) + 1
        return BreakerTransition(self.name, old, new, reason, self._clock())

    def _notify(self, moved: BreakerTransition | None) -> None:
        if moved is None:
            return
        if self._timed and moved.new is OPEN and not self._forced:
            self._schedule()
        if self._on_transition is not None:
            self._on_transition(moved)

    def _notify_all(self, moved: list[BreakerTransition]) -> None:
        for transition in moved:
            self._notify(transition)

    # --- the timer's side (real clock only) -----------------------------------------------

    def _schedule(self) -> None:
        """Ask the process-wide timer to look at this breaker when its open period ends."""
        due = self._open_until
        if due < self._timer_due:  # one pending look per breaker: the heap stays bounded
            self._timer_due = due
            from ._breaker_timer import open_timer

            open_timer().schedule(due, self)

    def _open_period_over(self, due: float) -> None:
        """The timer's call, on its thread, at ``due``: report OPEN -> HALF_OPEN now."""
        moved: list[BreakerTransition] = []
        try:
            with self._lock:
                if self._timer_due == due:
                    self._timer_due = _NEVER
                self._settle_locked(self._clock(), moved)
        finally:
            self._notify_all(moved)
        if self._state is OPEN and not self._forced:  # re-opened meanwhile: look again then
            self._schedule()


def memory_breaker_factory(
    name: str,
    settings: BreakerSettings,
    *,
    clock: Clock,
    on_transition: Callable[[BreakerTransition], None],
) -> CircuitBreaker:
    """The default ``BreakerFactory``: an in-memory ``CircuitBreaker``."""
    return CircuitBreaker(name, settings, clock=clock, on_transition=on_transition)
