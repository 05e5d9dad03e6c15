"""``RedisCircuitBreaker``: one operation's breaker, shared by every process using the Redis.

Cost per protected call: one round trip (the acquire script) when the call succeeds
while the breaker is closed with no failures counted, the common case. A failure, or a
success that ends a failure streak or a trial, adds the one round trip that reports it,
at once, so every other process sees the change on its next call.

What an acquire learned (state, failure count, generation) is kept in a context variable
until the call's outcome is reported, so concurrent threads and asyncio tasks sharing this
object each report against the state their own call was admitted under.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, cast

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
from ._scripts import BREAKER_ACQUIRE, BREAKER_RECORD, LIMITED_ACQUIRE

if TYPE_CHECKING:
    from ._backend import RedisBackend
    from ._rate_limit import RedisRateLimiter

__all__ = ["RedisCircuitBreaker"]

_STATES = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)
_REASONS = {
    (CircuitState.CLOSED, CircuitState.OPEN): "failure threshold reached",
    (CircuitState.OPEN, CircuitState.HALF_OPEN): "open timeout elapsed",
    (CircuitState.HALF_OPEN, CircuitState.CLOSED): "trial calls succeeded",
    (CircuitState.HALF_OPEN, CircuitState.OPEN): "trial call failed",
}
_REDIS, _LOCAL, _ALLOWED = 0, 1, 2

# (breaker, mode, generation, state code, failures) of the latest acquire in this
# thread or task.
_Ticket = tuple["RedisCircuitBreaker", int, int, int, int]
_ticket: ContextVar[_Ticket | None] = ContextVar("coordination_redis_breaker_ticket", default=None)


class RedisCircuitBreaker:
    """A ``CircuitBreakerBackend`` whose state lives in a Redis hash, changed only by Lua.

    Made by ``RedisBackend.breaker`` (a ``BreakerFactory``); not built directly.
    """

    tracks_duration = False
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
        self._backend = backend
        self._key = owned_key(backend.prefix, name, "breaker")
        self._guard: RedisGuard = backend.breaker_guard
        self._clock = clock
        self._on_transition = on_transition
        self._make_local = local
        self._local: CircuitBreakerBackend | None = None
        self._known = CircuitState.CLOSED
        self._gen = 0
        open_ms = max(1, round(settings.open_seconds * 1000))
        ttl_ms = max(round(backend.key_ttl * 1000), 2 * open_ms)
        trial_ms = max(1, round(settings.trial_seconds * 1000))
        ttl_ms = max(ttl_ms, trial_ms + 2 * open_ms)  # outlives a hung trial and its re-open
        self._acquire_args = (open_ms, settings.half_open_calls, ttl_ms, trial_ms)
        # With the Redis clock the acquire command never changes: pack it once.
        self._acquire_packed: list[bytes] | None = None
        if backend.now_ms() == "":
            self._acquire_packed = backend.pack(
                "EVALSHA", BREAKER_ACQUIRE.sha, 1, self._key, "", *self._acquire_args
            )
        self._limited_packed: tuple[RedisRateLimiter, str, list[bytes]] | None = None
        self._record_args = (settings.failure_threshold, settings.half_open_calls, ttl_ms)
        self._transitions: dict[str, int] = {}

    # --- the protected-call protocol (sync) -------------------------------------------

    def acquire(self) -> None:
        guard = self._guard
        if guard.usable():
            backend = self._backend
            try:
                if self._acquire_packed is not None:
                    reply = BREAKER_ACQUIRE.run_packed(
                        backend.execute_packed, self._acquire_packed, backend.execute
                    )
                else:
                    reply = BREAKER_ACQUIRE(
                        backend.execute, self._key, backend.now_ms(), *self._acquire_args
                    )
            except backend.errors as exc:
                guard.failed(exc)
            else:
                guard.succeeded()
                self._admit(reply)
                return
        self._outage_acquire()

    def record_success(self, duration: float) -> None:
        self._record("1")

    def record_failure(self, duration: float) -> None:
        self._record("0")

    def release(self) -> None:
        self._record("r")

    def _record(self, outcome: str) -> None:
        args = self._report(outcome)
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
            try:
                reply = await BREAKER_ACQUIRE.run_async(
                    self._backend.async_client(),
                    self._key,
                    self._backend.now_ms(),
                    *self._acquire_args,
                )
            except self._backend.errors as exc:
                guard.failed(exc)
            else:
                guard.succeeded()
                self._admit(reply)
                return
        self._outage_acquire()

    async def arecord_success(self, duration: float) -> None:
        await self._arecord("1")

    async def arecord_failure(self, duration: float) -> None:
        await self._arecord("0")

    async def arelease(self) -> None:
        await self._arecord("r")

    async def _arecord(self, outcome: str) -> None:
        args = self._report(outcome)
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
            try:
                reply = self._run_limited(limiter, key)
            except self._backend.errors as exc:
                self._guard.failed(exc)
                limiter.guard.failed(exc)
            else:
                return self._limited(limiter, reply)
        wait = limiter.try_acquire(key)
        if wait == 0.0:
            self.acquire()
        return wait

    async def aacquire_with_limit(self, limiter: RedisRateLimiter, key: str) -> float:
        if self._guard.usable() and limiter.guard.usable():
            try:
                reply = await LIMITED_ACQUIRE.run_async(
                    self._backend.async_client(), *self._limited_args(limiter, key)
                )
            except self._backend.errors as exc:
                self._guard.failed(exc)
                limiter.guard.failed(exc)
            else:
                return self._limited(limiter, reply)
        wait = await limiter.atry_acquire(key)
        if wait == 0.0:
            await self.aacquire()
        return wait

    def _limited_args(self, limiter: RedisRateLimiter, key: str) -> tuple[int | str, ...]:
        limit_key, *limit_args = limiter.script_args(key, 1)  # the limit's last four
        now_ms = self._backend.now_ms()
        return (self._key, limit_key, now_ms, *self._acquire_args, *limit_args)

    def _run_limited(self, limiter: RedisRateLimiter, key: str) -> list[int]:
        backend = self._backend
        packed = self._limited_packed
        if packed is None or packed[0] is not limiter or packed[1] != key:
            args = self._limited_args(limiter, key)
            if backend.now_ms() != "":
                return LIMITED_ACQUIRE(backend.execute, *args)  # type: ignore[no-any-return]
            # With the Redis clock the command is the same every call: pack it once.
            packed = (limiter, key, backend.pack("EVALSHA", LIMITED_ACQUIRE.sha, 2, *args))
            self._limited_packed = packed
        return LIMITED_ACQUIRE.run_packed(  # type: ignore[no-any-return]
            backend.execute_packed, packed[2], backend.execute
        )

    def _limited(self, limiter: RedisRateLimiter, reply: list[int]) -> float:
        if int(reply[0]) == 2:  # refused by the rate limit; the breaker was not asked
            return limiter.answer((0, reply[5]))
        limiter.answer((1, 0))
        self._guard.succeeded()
        self._admit(reply[:5])
        return 0.0

    # --- shared bookkeeping ----------------------------------------------------------------

    def _report(self, outcome: str) -> tuple[int | str, ...] | None:
        """The record script's arguments, or None when Redis need not hear of it (the call
        ran on local state, or a success changed nothing)."""
        mode, gen, state, failures = self._take_ticket()
        if mode == _LOCAL:
            self._local_outcome(outcome)
            return None
        if mode == _ALLOWED or _nothing_to_report(outcome, state, failures):
            return None
        return (self._backend.now_ms(), outcome, gen, *self._record_args)

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

    def _local_outcome(self, outcome: str) -> None:
        local = self.local
        if outcome == "1":
            local.record_success(0.0)
        elif outcome == "0":
            local.record_failure(0.0)
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
        self._backend.client.delete(self._key)
        if self._local is not None:
            self._local.reset()
        self._observe(CircuitState.CLOSED)

    def force_open(self) -> None:
        now = self._backend.current_ms()
        self._backend.client.hset(self._key, mapping={"s": 1, "x": 1, "o": now, "g": self._gen + 1})
        self._backend.client.persist(self._key)  # forced open lasts until reset()
        self._observe(CircuitState.OPEN)

    def snapshot(self) -> BreakerSnapshot:
        try:
            fields, now = self._read()
        except self._backend.errors as exc:
            self._guard.failed(exc)
            if self._guard.policy is OutagePolicy.LOCAL:
                return _as_redis_fallback(self.local.snapshot())
            fields, now = {}, 0
        state = _STATES[fields.get("s", 0)]
        forced = fields.get("x", 0) == 1
        open_ms, _, _, trial_ms = self._acquire_args
        opened = fields.get("o", 0)
        if state is CircuitState.HALF_OPEN:  # half_open_max_wait, full or not
            overdue = fields.get("h", 0) + trial_ms
            if now >= overdue:  # trials past their deadline: re-opened on the next acquire
                state, opened = CircuitState.OPEN, overdue
        wait = 0.0
        if state is CircuitState.OPEN:
            wait = max(0, opened + open_ms - now) / 1000
            if wait == 0 and not forced:
                state = CircuitState.HALF_OPEN
        return BreakerSnapshot(
            name=self.name,
            state=state,
            consecutive_failures=fields.get("f", 0),
            failure_rate=None,
            slow_call_rate=None,
            window_calls=0,
            retry_after=wait,
            forced_open=forced,
            transitions=dict(self._transitions),
            backend="redis" if not self._guard.down else "redis (unavailable)",
        )


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


def _nothing_to_report(outcome: str, state: int, failures: int) -> bool:
    """A success, or a release, under a closed breaker with no failures changes nothing."""
    return outcome != "0" and state == 0 and failures == 0


def _as_redis_fallback(snapshot: BreakerSnapshot) -> BreakerSnapshot:
    from dataclasses import replace

    return replace(snapshot, backend="redis (unavailable: local fallback)")
