"""``RedisCircuitBreaker``: one operation's breaker, shared by every process using the Redis.

Cost per protected call: one round trip (the acquire script) when the call succeeds
while the breaker is closed, the common case. In consecutive-failure mode a failure, or a
success that ends a failure streak or a trial, adds the one round trip that reports it, at
once, so every other process sees the change on its next call. A failed attempt that is
retried is reported by the next attempt's acquire (``record_failure_and_acquire``: one
script, one round trip for both).

With a sliding window (``failure_rate_threshold`` / ``slow_call_rate_threshold``, count or
time based) every outcome counts, so a closed-state success is not sent on its own: this
process keeps its closed successes (a count, and how many were slow) and the next script
it runs for the breaker (the next acquire, or the next failure's report) adds them to the
window first, in the same round trip. A success is therefore counted in the window by the
next call of the same process; a window that crosses its threshold through a success
(``minimum_calls`` reached, a slow call) opens the breaker at that next call, which is
refused, and the open period runs from it.

What an acquire learned (state, failure count, generation) is kept in a context variable
until the call's outcome is reported, so concurrent threads and asyncio tasks sharing this
object each report against the state their own call was admitted under.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from ..._errors import CircuitOpenError, StoreError
from ..._time import Clock
from ...error_handling._backends import (
    BreakerSettings,
    BreakerSnapshot,
    BreakerTransition,
    CircuitBreakerBackend,
    CircuitState,
    LimitCheck,
    RateLimiterBackend,
    TransitionHook,
)
from ._connection import OutagePolicy, RedisGuard, owned_key
from ._scripts import (
    BREAKER_ACQUIRE,
    BREAKER_RECORD,
    BREAKER_RETRY,
    BREAKER_RETRY_BUDGETED,
    LIMITED_ACQUIRE,
)

if TYPE_CHECKING:
    from ._backend import RedisBackend
    from ._rate_limit import RedisRateLimiter
    from ._retry_budget import RedisRetryBudget

__all__ = ["RedisCircuitBreaker"]

_STATES = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)
_REASONS = {
    (CircuitState.CLOSED, CircuitState.OPEN): "failure threshold reached",
    (CircuitState.OPEN, CircuitState.HALF_OPEN): "open timeout elapsed",
    (CircuitState.HALF_OPEN, CircuitState.CLOSED): "trial calls succeeded",
    (CircuitState.HALF_OPEN, CircuitState.OPEN): "trial call failed",
}
_WINDOW_MODES = {"count": 1, "time": 2}
_PACKED_KEEP = 32  # packed acquire commands kept (one per carry seen; a handful in practice)
_REDIS, _LOCAL, _ALLOWED = 0, 1, 2

# (breaker, mode, generation, state code, failures) of the latest acquire in this
# thread or task.
_Ticket = tuple["RedisCircuitBreaker", int, int, int, int]
_ticket: ContextVar[_Ticket | None] = ContextVar("coordination_redis_breaker_ticket", default=None)


class RedisCircuitBreaker:
    """A ``CircuitBreakerBackend`` whose state lives in a Redis hash, changed only by Lua.

    Made by ``RedisBackend.breaker`` (a ``BreakerFactory``); not built directly.
    """

    blocking = True

    def __init__(
        self,
        backend: RedisBackend,
        name: str,
        settings: BreakerSettings,
        *,
        clock: Clock,
        on_transition: TransitionHook,
        local: Callable[[], CircuitBreakerBackend],
    ) -> None:
        self.name = name
        self.settings = settings
        self.tracks_duration = settings.slow_call_duration is not None
        self._slow = settings.slow_call_duration
        self._backend = backend
        self._key = owned_key(backend.prefix, name, "breaker")
        self._guard: RedisGuard = backend.breaker_guard
        self._clock = clock
        self._on_transition = on_transition
        self._make_local = local
        self._local: CircuitBreakerBackend | None = None
        self._known = CircuitState.CLOSED
        self._gen = 0
        self._open_ms = max(1, round(settings.open_seconds * 1000))
        self._trial_ms = max(1, round(settings.trial_seconds * 1000))
        self._window = _WINDOW_MODES[settings.window_type] if settings.uses_window else 0
        self._cfg = _config(settings, self._open_ms, self._trial_ms, backend.key_ttl, self._window)
        # Window mode: closed-state successes not yet told (generation, fast, slow), carried
        # by the next script this process runs for the breaker. The lock guards only these
        # three numbers, never a call or a round trip.
        self._carry_lock = threading.Lock()
        self._carry = (0, 0, 0)
        # With the Redis clock the acquire command depends only on the carry: pack it once
        # per carry.
        self._redis_clock = backend.now_ms() == ""
        self._acquire_packed: dict[str, list[bytes]] = {}
        self._limited_packed: tuple[RedisRateLimiter, str, list[bytes]] | None = None
        self._transitions: dict[str, int] = {}

    # --- the protected-call protocol (sync) -------------------------------------------

    def acquire(self) -> None:
        guard = self._guard
        if guard.usable():
            backend = self._backend
            carry = self._take_carry() if self._window else ""
            try:
                if self._redis_clock:
                    packed = self._acquire_packed.get(carry)
                    if packed is None:
                        packed = self._pack_acquire(carry)
                    reply = BREAKER_ACQUIRE.run_packed(
                        backend.execute_packed, packed, backend.execute
                    )
                else:
                    reply = BREAKER_ACQUIRE(
                        backend.execute, self._key, backend.now_ms(), self._cfg, carry
                    )
            except backend.errors as exc:
                guard.failed(exc)
            else:
                guard.succeeded()
                self._admit(reply)
                return
        self._outage_acquire()

    def _pack_acquire(self, carry: str) -> list[bytes]:
        if len(self._acquire_packed) >= _PACKED_KEEP:
            self._acquire_packed.clear()
        packed = self._backend.pack(
            "EVALSHA", BREAKER_ACQUIRE.sha, 1, self._key, "", self._cfg, carry
        )
        self._acquire_packed[carry] = packed
        return packed

    def record_success(self, duration: float) -> None:
        self._record("1", duration)

    def record_failure(self, duration: float) -> None:
        self._record("0", duration)

    def release(self) -> None:
        self._record("r", 0.0)

    def record_failure_and_acquire(self, duration: float) -> None:
        """``record_failure(duration)`` then ``acquire()`` for the retry, in one round trip:
        the failure is recorded whatever the answer; ``CircuitOpenError`` when the breaker
        (perhaps opened by this very failure) refuses the next attempt."""
        args = self._report("0", duration)
        if args is None:  # the failure went to the local breaker (or nowhere): acquire alone
            self.acquire()
            return
        guard = self._guard
        backend = self._backend
        try:
            reply = BREAKER_RETRY(backend.execute, self._key, *_retry_args(args))
        except backend.errors as exc:
            guard.failed(exc)  # the failure is lost; the next attempt follows the outage policy
            self._outage_acquire()
        else:
            guard.succeeded()
            self._admit(reply)

    def record_failure_spend_and_acquire(self, duration: float, budget: object) -> bool:
        """``record_failure_and_acquire`` with the retry asked of ``budget`` in the same
        round trip when it is a budget on this breaker's Redis: ``False`` when the budget
        refused the retry (the failure is recorded, nothing is admitted), ``True`` when
        the next attempt is admitted, ``CircuitOpenError`` when the breaker refuses it."""
        joint = self._joint(budget)
        if joint is None:  # not one store, or not now: one step each
            return self._apart(duration, budget, reported=False)
        args = self._report("0", duration)
        if args is None:  # the failure went to the local breaker (or nowhere)
            return self._apart(duration, budget, reported=True)
        backend = self._backend
        try:
            reply = BREAKER_RETRY_BUDGETED(
                backend.execute,
                self._key,
                joint.key,
                *_retry_args(args),
                *joint.budget_args(joint.push()),
            )
        except backend.errors as exc:
            self._guard.failed(exc)  # the failure is lost; both follow the outage policy
            allowed = joint.outage()
            if allowed:
                self._outage_acquire()
            return allowed
        self._guard.succeeded()
        joint.answered()
        if int(reply[0]) < 0:
            return False
        self._admit(reply)
        return True

    async def arecord_failure_spend_and_acquire(self, duration: float, budget: object) -> bool:
        """``record_failure_spend_and_acquire`` for async pipelines."""
        joint = self._joint(budget)
        if joint is None:
            return await self._aapart(duration, budget, reported=False)
        args = self._report("0", duration)
        if args is None:
            return await self._aapart(duration, budget, reported=True)
        backend = self._backend
        try:
            reply = await BREAKER_RETRY_BUDGETED.run_async(
                backend.async_client(),
                self._key,
                joint.key,
                *_retry_args(args),
                *joint.budget_args(joint.push()),
            )
        except backend.errors as exc:
            self._guard.failed(exc)
            allowed = joint.outage()
            if allowed:
                self._outage_acquire()
            return allowed
        self._guard.succeeded()
        joint.answered()
        if int(reply[0]) < 0:
            return False
        self._admit(reply)
        return True

    def _joint(self, budget: object) -> RedisRetryBudget | None:
        """``budget`` when one script can ask it with this breaker (the same Redis, which
        answers: a budget in its outage asks its own policy)."""
        from ._retry_budget import RedisRetryBudget

        if (
            isinstance(budget, RedisRetryBudget)
            and budget.backend is self._backend
            and not budget.guard.down
            and not self._guard.down
        ):
            return budget
        return None

    def _apart(self, duration: float, budget: Any, reported: bool) -> bool:
        """The budget, then the breaker, one step each. ``reported``: the failure was
        already taken by the local breaker (Redis is down or the call ran locally)."""
        allowed: bool = budget.try_spend()
        if reported:
            if allowed:
                self.acquire()
        elif allowed:
            self.record_failure_and_acquire(duration)
        else:
            self.record_failure(duration)
        return allowed

    async def _aapart(self, duration: float, budget: Any, reported: bool) -> bool:
        allowed: bool = await budget.atry_spend() if budget.blocking else budget.try_spend()
        if reported:
            if allowed:
                await self.aacquire()
        elif allowed:
            await self.arecord_failure_and_acquire(duration)
        else:
            await self.arecord_failure(duration)
        return allowed

    def _record(self, outcome: str, duration: float) -> None:
        args = self._report(outcome, duration)
        if args is None:
            return
        try:
            reply = BREAKER_RECORD(self._backend.execute, self._key, *args)
        except self._backend.errors as exc:
            self._guard.failed(exc)  # the outcome is lost; the call itself is unaffected
        else:
            self._recorded(reply)

    # --- the same, for async pipelines --------------------------------------------------

    async def aacquire(self) -> None:
        guard = self._guard
        if guard.usable():
            carry = self._take_carry()
            try:
                reply = await BREAKER_ACQUIRE.run_async(
                    self._backend.async_client(),
                    self._key,
                    self._backend.now_ms(),
                    self._cfg,
                    carry,
                )
            except self._backend.errors as exc:
                guard.failed(exc)
            else:
                guard.succeeded()
                self._admit(reply)
                return
        self._outage_acquire()

    async def arecord_success(self, duration: float) -> None:
        await self._arecord("1", duration)

    async def arecord_failure(self, duration: float) -> None:
        await self._arecord("0", duration)

    async def arelease(self) -> None:
        await self._arecord("r", 0.0)

    async def arecord_failure_and_acquire(self, duration: float) -> None:
        """``record_failure_and_acquire`` for async pipelines."""
        args = self._report("0", duration)
        if args is None:
            await self.aacquire()
            return
        try:
            reply = await BREAKER_RETRY.run_async(
                self._backend.async_client(), self._key, *_retry_args(args)
            )
        except self._backend.errors as exc:
            self._guard.failed(exc)
            self._outage_acquire()
        else:
            self._guard.succeeded()
            self._admit(reply)

    async def _arecord(self, outcome: str, duration: float) -> None:
        args = self._report(outcome, duration)
        if args is None:
            return
        try:
            reply = await BREAKER_RECORD.run_async(self._backend.async_client(), self._key, *args)
        except self._backend.errors as exc:
            self._guard.failed(exc)
        else:
            self._recorded(reply)

    # --- the rate limit and the breaker in one round trip (a combined LimitCheck) -------

    def combines_with(self, limiter: object) -> bool:
        """True for a Redis limiter on this breaker's own backend (so the same server)."""
        from ._rate_limit import RedisRateLimiter

        return isinstance(limiter, RedisRateLimiter) and limiter.backend is self._backend

    def limit_check(self, limiter: RateLimiterBackend, key: str) -> LimitCheck | None:
        """The pipeline's admission asks: ``limiter``'s check for ``key`` taken together with
        this breaker's acquire (``acquire_with_limit``), or None when they cannot combine."""
        if not self.combines_with(limiter):
            return None
        return _CombinedCheck(self, cast("RedisRateLimiter", limiter), key)

    def acquire_with_limit(self, limiter: RedisRateLimiter, key: str) -> float:
        """``limiter.try_acquire(key)`` then ``acquire()`` as one script (``LIMITED_ACQUIRE``):
        the limit's wait (0.0: admitted by both), or ``CircuitOpenError``. A refusal by
        either spends nothing of the other. While Redis is unavailable, the two separate
        calls, each with its outage policy."""
        if self._guard.usable() and limiter.guard.usable():
            carry = self._take_carry()
            try:
                reply = self._run_limited(limiter, key, carry)
            except self._backend.errors as exc:
                self._guard.failed(exc)
                limiter.guard.failed(exc)
            else:
                return self._limited(limiter, reply, carry)
        wait = limiter.try_acquire(key)
        if wait == 0.0:
            self.acquire()
        return wait

    async def aacquire_with_limit(self, limiter: RedisRateLimiter, key: str) -> float:
        if self._guard.usable() and limiter.guard.usable():
            carry = self._take_carry()
            try:
                reply = await LIMITED_ACQUIRE.run_async(
                    self._backend.async_client(), *self._limited_args(limiter, key, carry)
                )
            except self._backend.errors as exc:
                self._guard.failed(exc)
                limiter.guard.failed(exc)
            else:
                return self._limited(limiter, reply, carry)
        wait = await limiter.atry_acquire(key)
        if wait == 0.0:
            await self.aacquire()
        return wait

    def _limited_args(
        self, limiter: RedisRateLimiter, key: str, carry: str
    ) -> tuple[int | str, ...]:
        limit_key, *limit_args = limiter.script_args(key, 1)  # the limit's last four
        return (self._key, limit_key, self._backend.now_ms(), self._cfg, carry, *limit_args)

    def _run_limited(self, limiter: RedisRateLimiter, key: str, carry: str) -> list[int]:
        backend = self._backend
        packed = self._limited_packed
        if carry or packed is None or packed[0] is not limiter or packed[1] != key:
            args = self._limited_args(limiter, key, carry)
            if carry or backend.now_ms() != "":
                return LIMITED_ACQUIRE(backend.execute, *args)  # type: ignore[no-any-return]
            # With the Redis clock and nothing carried the command is the same every call:
            # pack it once.
            packed = (limiter, key, backend.pack("EVALSHA", LIMITED_ACQUIRE.sha, 2, *args))
            self._limited_packed = packed
        return LIMITED_ACQUIRE.run_packed(  # type: ignore[no-any-return]
            backend.execute_packed, packed[2], backend.execute
        )

    def _limited(self, limiter: RedisRateLimiter, reply: list[int], carry: str) -> float:
        if int(reply[0]) == 2:  # refused by the rate limit; the breaker was not asked
            self._restore_carry(carry)
            return limiter.answer((0, reply[5]))
        limiter.answer((1, 0))
        self._guard.succeeded()
        self._admit(reply[:5])
        return 0.0

    # --- shared bookkeeping ----------------------------------------------------------------

    def _report(self, outcome: str, duration: float) -> tuple[int | str, ...] | None:
        """The record script's arguments, or None when Redis need not hear of it now (the
        call ran on local state, a success changed nothing, or a closed-state success
        waits in the carry for this process's next script)."""
        mode, gen, state, failures = self._take_ticket()
        if mode == _LOCAL:
            self._local_outcome(outcome, duration)
            return None
        if mode == _ALLOWED:
            return None
        if not self._window:
            if outcome != "0" and state == 0 and failures == 0:
                return None  # a success or release, closed with no failures: nothing changes
            slow = 0
        else:
            slow = int(self._slow is not None and duration >= self._slow)
            if state == 0 and outcome != "0":
                if outcome == "1":
                    self._add_carry(gen, slow)
                return None  # a release under a closed breaker changes nothing
        return (self._backend.now_ms(), self._cfg, self._take_carry(), outcome, gen, slow)

    # --- window mode: closed successes carried by the next script -----------------------

    def _add_carry(self, gen: int, slow: int) -> None:
        with self._carry_lock:
            carried, fast, slow_count = self._carry
            if carried != gen:  # the breaker moved on: the older ones would be ignored
                fast = slow_count = 0
            self._carry = (gen, fast + 1 - slow, slow_count + slow)

    def _take_carry(self) -> str:
        """The carried successes as the scripts' argument ("" when none), now cleared."""
        if not self._window:
            return ""
        with self._carry_lock:
            gen, fast, slow = self._carry
            if fast == slow == 0:
                return ""
            self._carry = (gen, 0, 0)
        return f"{gen} {fast} {slow}"

    def _restore_carry(self, carry: str) -> None:
        """Give back a carry the script did not use (a rate-limit refusal)."""
        if not carry:
            return
        gen, fast, slow = (int(x) for x in carry.split())
        with self._carry_lock:
            current, more_fast, more_slow = self._carry
            if current == gen:
                fast, slow = fast + more_fast, slow + more_slow
            elif more_fast or more_slow:
                return  # newer successes took the carry's place
            self._carry = (gen, fast, slow)

    def _admit(self, reply: list[int]) -> None:
        allowed, state, failures, wait_ms, gen = (int(x) for x in reply)
        if self._local is not None:  # Redis is back: the next outage starts afresh
            self._local = None
        self._gen = gen
        self._observe(_STATES[state])
        if not allowed:
            raise CircuitOpenError(self.name, wait_ms / 1000)
        _ticket.set((self, _REDIS, gen, state, failures))

    def _recorded(self, reply: list[int]) -> None:
        state, _failures, gen, _opened = (int(x) for x in reply)
        self._gen = gen
        self._observe(_STATES[state])

    def _take_ticket(self) -> tuple[int, int, int, int]:
        ticket = _ticket.get()
        if ticket is None or ticket[0] is not self:
            # A nested protected call replaced this call's ticket: report against the
            # latest generation this process has seen, and never skip the report (unless
            # Redis is known to be down: then the outage policy decides, as at acquire).
            if not self._guard.down:
                return (_REDIS, self._gen, -1, -1)
            local = self._guard.policy is OutagePolicy.LOCAL
            return (_LOCAL if local else _ALLOWED, 0, 0, 0)
        _ticket.set(None)
        return ticket[1:]

    def _observe(self, state: CircuitState) -> None:
        old = self._known
        if state is old:
            return
        self._known = state
        label = f"{old.value}->{state.value}"
        self._transitions[label] = self._transitions.get(label, 0) + 1
        reason = _REASONS.get((old, state), "changed by another process")
        self._on_transition(BreakerTransition(self.name, old, state, reason, self._clock()))

    # --- outage policy -------------------------------------------------------------------

    def _outage_acquire(self) -> None:
        policy = self._guard.policy
        if policy is OutagePolicy.RAISE:
            raise StoreError(
                f"circuit breaker {self.name!r}: Redis is unavailable ({self._guard.last_error})"
            )
        if policy is OutagePolicy.ALLOW:
            _ticket.set((self, _ALLOWED, 0, 0, 0))
            return
        self.local.acquire()
        _ticket.set((self, _LOCAL, 0, 0, 0))

    def _local_outcome(self, outcome: str, duration: float) -> None:
        local = self.local
        if outcome == "1":
            local.record_success(duration)
        elif outcome == "0":
            local.record_failure(duration)
        else:
            local.release()

    @property
    def local(self) -> CircuitBreakerBackend:
        """The in-process breaker used while Redis is unavailable (made on first need)."""
        if self._local is None:
            self._local = self._make_local()
        return self._local

    # --- management and reports (each one round trip) ------------------------------------

    def _read(self) -> tuple[dict[str, int], int]:
        """The breaker's hash and the scripts' clock (ms), in one round trip."""
        raw, now = self._backend.read_hash(self._key)  # one node, on a Redis Cluster too
        return {k.decode(): int(float(v)) for k, v in raw.items()}, now

    @property
    def state(self) -> CircuitState:
        """What the next call will see (an elapsed OPEN reads as HALF_OPEN, as in memory)."""
        return self.snapshot().state

    def reset(self) -> None:
        with self._carry_lock:
            self._carry = (0, 0, 0)
        self._backend.client.delete(self._key)
        if self._local is not None:
            self._local.reset()
        self._observe(CircuitState.CLOSED)

    def force_open(self) -> None:
        now = self._backend.current_ms()
        self._backend.client.hset(self._key, mapping={"s": 1, "x": 1, "o": now, "g": self._gen + 1})
        self._backend.client.persist(self._key)  # forced open lasts until reset()
        self._observe(CircuitState.OPEN)

    def _flush_carry(self) -> None:
        """Tell Redis this process's carried successes (before a report reads the window):
        a record script whose outcome belongs to no generation, so only the carry counts."""
        carry = self._take_carry()
        if carry:
            args = (self._backend.now_ms(), self._cfg, carry, "r", -1, 0)
            self._recorded(BREAKER_RECORD(self._backend.execute, self._key, *args))

    def snapshot(self) -> BreakerSnapshot:
        try:
            self._flush_carry()
            fields, now = self._read()
        except self._backend.errors as exc:
            self._guard.failed(exc)
            if self._guard.policy is OutagePolicy.LOCAL:
                return _as_redis_fallback(self.local.snapshot())
            fields, now = {}, 0
        state = _STATES[fields.get("s", 0)]
        forced = fields.get("x", 0) == 1
        settings = self.settings
        opened = fields.get("o", 0)
        open_ms = fields.get("d", self._open_ms)
        reopens = fields.get("n", 0)
        if state is CircuitState.HALF_OPEN:  # half_open_max_wait, full or not
            overdue = fields.get("h", 0) + self._trial_ms
            if now >= overdue:  # trials past their deadline: re-opened on the next acquire
                state, opened, reopens = CircuitState.OPEN, overdue, reopens + 1
                open_ms = _open_for(self._open_ms, settings, reopens)
        wait = 0.0
        if state is CircuitState.OPEN:
            wait = self._open_ms / 1000 if forced else max(0, opened + open_ms - now) / 1000
            if wait == 0 and not forced:
                state = CircuitState.HALF_OPEN
        if state is CircuitState.HALF_OPEN:  # the period a failed trial would open
            open_ms = _open_for(self._open_ms, settings, reopens + 1)
        elif state is CircuitState.CLOSED:
            open_ms, reopens = _open_for(self._open_ms, settings, 0), 0
        calls, failures, slow = self._window_sums(fields, now)
        failure_rate = slow_rate = None
        if self._window and calls >= settings.minimum_calls:
            failure_rate = failures / calls
            slow_rate = slow / calls if self.tracks_duration else None
        return BreakerSnapshot(
            name=self.name,
            state=state,
            consecutive_failures=fields.get("f", 0),
            failure_rate=failure_rate,
            slow_call_rate=slow_rate,
            window_calls=calls,
            retry_after=wait,
            forced_open=forced,
            transitions=dict(self._transitions),
            backend="redis" if not self._guard.down else "redis (unavailable)",
            mode=settings.mode,
            open_seconds=open_ms / 1000,
            reopens=reopens,
        )

    def _window_sums(self, fields: dict[str, int], now_ms: int) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window now: a time window without the
        seconds that have fallen out of it since its last call (as the scripts will)."""
        if not self._window:
            return 0, 0, 0
        calls, failures, slow = fields.get("wc", 0), fields.get("wf", 0), fields.get("ws", 0)
        if self._window == _WINDOW_MODES["time"] and calls > 0:
            size = self.settings.window_size
            second, last = now_ms // 1000, fields.get("wl", 0)
            if second - max(last + 1, second - size + 1) + 1 >= size:
                return 0, 0, 0
            for stale in range(last + 1, second + 1):
                slot = stale % size
                calls -= fields.get(f"c{slot}", 0)
                failures -= fields.get(f"e{slot}", 0)
                slow -= fields.get(f"w{slot}", 0)
        return calls, failures, slow


class _CombinedCheck:
    """A ``LimitCheck`` answered with the breaker's acquire, in one round trip."""

    __slots__ = ("breaker", "key", "limiter")

    acquires_breaker = True
    blocking = True

    def __init__(self, breaker: RedisCircuitBreaker, limiter: RedisRateLimiter, key: str) -> None:
        self.breaker = breaker
        self.limiter = limiter
        self.key = key

    def check(self) -> float:
        return self.breaker.acquire_with_limit(self.limiter, self.key)

    async def acheck(self) -> float:
        return await self.breaker.aacquire_with_limit(self.limiter, self.key)


def _config(
    settings: BreakerSettings, open_ms: int, trial_ms: int, key_ttl: float, window: int
) -> str:
    """The scripts' ``cfg`` argument: every setting they read, in their order (-1: unset)."""

    def given(value: float | None) -> str:
        return "-1" if value is None else repr(float(value))

    max_open = settings.max_open_seconds
    values = (
        open_ms,
        settings.half_open_calls,
        max(1, round(key_ttl * 1000)),
        trial_ms,
        settings.failure_threshold,
        window,
        settings.window_size,
        settings.minimum_calls,
        given(settings.failure_rate_threshold),
        given(settings.slow_call_rate_threshold),
        repr(float(settings.open_backoff_multiplier)),
        -1 if max_open is None else max(1, round(max_open * 1000)),
    )
    return " ".join(str(value) for value in values)


def _open_for(open_ms: int, settings: BreakerSettings, reopens: int) -> int:
    """The open period after ``reopens`` re-opens, in ms, as the scripts compute it."""
    period = open_ms
    multiplier = settings.open_backoff_multiplier
    if reopens > 0 and multiplier > 1:
        try:
            period = math.floor(open_ms * multiplier**reopens + 0.5)
        except OverflowError:  # the scripts get inf, then the caps below
            period = 2**47
    if settings.max_open_seconds is not None:
        period = min(period, max(1, round(settings.max_open_seconds * 1000)))
    return min(period, 2**47)


def _retry_args(record_args: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """BREAKER_RETRY's arguments from a failure's BREAKER_RECORD ones (no outcome)."""
    now, cfg, carry, _outcome, gen, slow = record_args
    return (now, cfg, carry, gen, slow)


def _as_redis_fallback(snapshot: BreakerSnapshot) -> BreakerSnapshot:
    from dataclasses import replace

    return replace(snapshot, backend="redis (unavailable: local fallback)")
