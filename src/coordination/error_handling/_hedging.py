"""Hedging (``hedge_after``, ``max_hedged_attempts``): another attempt when the first is slow.

Polly's hedging strategy, for idempotent reads: when an attempt has not answered after
``hedge_after`` seconds, another one starts beside it, up to ``max_hedged_attempts`` of
them (each ``hedge_after`` after the one before); the first success answers the call and
the others are dropped. One hedged *race* takes the place of one attempt in the plan's
retry loop (``call_once``): its outcome is the winner's value, or, when every attempt
failed, the first attempt's error, which the loop then retries like any other.

- **Sync**: the attempts run on the operation's own bounded worker pool (``_workers``);
  a thread cannot be stopped, so the losers run on to their end, their results discarded,
  each holding its worker until then (so hung losers are bounded by the pool's size).
- **Async**: the first attempt runs in the caller's own task (a call answered before
  ``hedge_after`` costs a timer, no task), each hedge in a task of its own; the losers are
  cancelled (the first through an ``asyncio.timeout`` scope a winning hedge expires) and
  awaited before the call returns, so nothing of the call is left running.
- **Breaker and retry budget**: each hedged attempt takes a breaker permit of its own
  (an open breaker, or a half-open one with no trial left, means no hedge) and spends one
  retry of the budget (``op.retry_budget.try_spend()``; refused: no more hedges for this
  call). Permits are settled when the race ends: the loop records the race's outcome on
  the first attempt's permit, and here each other failed attempt is counted and recorded
  as the breaker's rules say, and the permits of attempts dropped unfinished are released
  (they neither failed nor succeeded: the race stopped waiting for them).
- **With a timeout**: the race as a whole is bounded by it, counted from the first
  attempt's start (a hedge gets what is left of it); with a ``Cancellation`` scope, the
  race stops when the scope does.
- **Percentiles** (``"p95"``, ``"p99"``): the plan keeps a ``LatencySketch`` of the first
  attempts' durations, only while hedging is on. A first attempt still running when the
  race ends (a hedge won) is counted at its time so far: a lower bound of its latency.
  Below the hedge point every sample is exact and above it every slow attempt still
  counts as one at least that slow, so the percentile cannot drift down because the slow
  attempts were hedged. Until ``samples_needed`` (``max(20, 2 / (1 - q))``: 40 for p95,
  200 for p99) durations are known, calls are not hedged (they run as plain attempts,
  timed); the sketch keeps two generations of ``window`` samples each, so it follows the
  recent latencies; the percentile is read again every ``REFRESH`` samples, and never
  below ``FLOOR`` seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from .._errors import BulkheadFull, CircuitOpenError, OperationTimeout
from .._sketch import LatencySketch
from .._tracing import current_call
from ._outcomes import FAILURE, NEITHER
from ._plan import Refused, Stopped

if TYPE_CHECKING:
    import asyncio

    from ._plan import Plan, RetryState
    from ._workers import Attempt

__all__ = ["FLOOR", "MIN_SAMPLES", "REFRESH", "WINDOW", "Hedging", "samples_needed"]

MIN_SAMPLES = 20  # durations a percentile needs at least before the first hedge
WINDOW = 1000  # samples per generation of the sketch (at least 10 × samples_needed)
REFRESH = 16  # the percentile is read again after this many new samples
FLOOR = 0.001  # seconds: a percentile of ~0 would hedge every call at once

# One failed attempt of a race: (its index, its error, its seconds so far)
_Failed = tuple[int, BaseException, float]
TimedCall = Callable[[Callable[..., Any], Any, Any, "RetryState"], Any]


def samples_needed(quantile: float) -> int:
    """Durations to know before the ``quantile`` (0..1) is used: enough for its tail to
    hold a couple of values, and at least ``MIN_SAMPLES``."""
    return max(MIN_SAMPLES, math.ceil(2 / (1 - quantile)))


class Hedging:
    """One plan's hedging: its delay (fixed, or its percentile of the first attempts'
    durations) and the races of the sync and async runners."""

    __slots__ = (
        "_current",
        "_delay",
        "_lock",
        "_previous",
        "_since",
        "max_hedged",
        "needed",
        "percentile",
        "plan",
        "quantile",
        "window",
    )

    def __init__(self, plan: Plan, after: float | str, max_hedged: int) -> None:
        self.plan = plan
        self.max_hedged = max_hedged
        self._lock = threading.Lock()
        self._since = 0
        self._previous: LatencySketch | None = None
        self._current = LatencySketch()
        if isinstance(after, str):  # "p95": checked by the schema (_settings.read_hedge_after)
            self.percentile: str | None = after
            self.quantile = float(after[1:]) / 100
            self.needed = samples_needed(self.quantile)
            self.window = max(WINDOW, 10 * self.needed)
            self._delay: float | None = None  # no hedge before the percentile is known
        else:
            self.percentile = None
            self.quantile = 0.0
            self.needed = 0
            self.window = 0
            self._delay = float(after)

    @property
    def delay(self) -> float | None:
        """Seconds before a hedge; ``None`` while a percentile lacks samples."""
        return self._delay

    @property
    def samples(self) -> int:
        """First attempts' durations in the sketch (both generations)."""
        with self._lock:
            previous = self._previous
            return self._current.count + (0 if previous is None else previous.count)

    def observe(self, seconds: float) -> None:
        """A first attempt's duration (or its lower bound): into the sketch, when the
        delay is a percentile (a lock held for a few additions, never across a call)."""
        if self.percentile is None:
            return
        with self._lock:
            current = self._current
            current.add(seconds if seconds > 0 else 0.0)
            self._since += 1
            if self._since < REFRESH and self._delay is not None:
                return
            self._since = 0
            previous = self._previous
            if current.count >= self.window:  # a new generation: forget the oldest
                self._previous, self._current = current, LatencySketch()
            if previous is None:
                merged, total = current, current.count
            else:
                merged = previous.copy()
                merged.merge(current)
                total = merged.count
            if total >= self.needed:
                self._delay = max(FLOOR, merged.quantile(self.quantile))

    # --- sync: attempts on the operation's workers ---------------------------------------

    def run(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        state: RetryState,
        timed_call: TimedCall | None,
    ) -> Any:
        """One attempt of the plan's loop, hedged (``timed_call``: the runner's attempt
        with a timeout, for a call not hedged while the percentile is not known)."""
        delay = self._delay
        if delay is None:  # a percentile still learning: a plain attempt, timed
            began = time.monotonic()
            result = (
                func(*args, **kwargs)
                if timed_call is None
                else timed_call(func, args, kwargs, state)
            )
            self.observe(time.monotonic() - began)
            return result
        return self._race(func, args, kwargs, state, delay)

    def _race(
        self, func: Callable[..., Any], args: Any, kwargs: Any, state: RetryState, delay: float
    ) -> Any:
        plan = self.plan
        pool = plan.attempt_pool()
        timeout = plan.timeout
        cancellation = state.cancellation
        wake = threading.Event()  # set by whichever attempt ends (and by the scope)
        began = time.monotonic()
        try:
            first = pool.start(func, args, kwargs, wake)
        except BulkheadFull as exc:  # every worker is busy: refused before it started
            raise Refused(exc) from None
        attempts: list[Attempt] = [first]
        starts = [began]
        ended: set[int] = set()
        failed: list[_Failed] = []
        winner = -1
        raised = False  # the race raises the first attempt's error (every attempt failed)
        left = self.max_hedged
        next_hedge = began + delay
        deadline = math.inf if timeout is None else began + timeout
        if cancellation is not None:
            cancellation.watch(wake)
        try:
            while True:
                wake.clear()  # before looking: an end after the look sets it again
                now = time.monotonic()
                for index, attempt in enumerate(attempts):
                    if index in ended or not attempt.ended:
                        continue
                    ended.add(index)
                    if attempt.error is None:
                        if winner < 0:
                            winner = index
                        continue
                    failed.append((index, attempt.error, now - starts[index]))
                if winner >= 0:
                    break
                if len(ended) == len(attempts):  # every attempt failed: the first's error
                    raised = True
                    first.outcome()
                if cancellation is not None and cancellation.cancelled:
                    raise Stopped
                if now >= deadline:
                    raise OperationTimeout(plan.op.name, timeout or 0.0)
                if left and now >= next_hedge:
                    hedge = self._hedge(func, args, kwargs, wake)
                    if hedge is None:
                        left = 0  # refused (breaker, budget or workers): no more hedges
                    else:
                        attempts.append(hedge)
                        starts.append(now)
                        left -= 1
                        next_hedge = now + delay
                    continue
                until = min(deadline, next_hedge if left else math.inf)
                if cancellation is not None:
                    remaining = cancellation.remaining()
                    if remaining is not None:
                        until = min(until, now + remaining)
                wake.wait(None if until == math.inf else max(0.0, until - now))
        finally:
            if cancellation is not None:
                cancellation.unwatch(wake)
            end = time.monotonic()
            self._finish(winner, 0 in ended, end - began)
            self._settle(len(attempts) - 1, failed, raised)
        return attempts[winner].result

    def _hedge(
        self, func: Callable[..., Any], args: Any, kwargs: Any, wake: threading.Event
    ) -> Attempt | None:
        """A hedged attempt started on a worker, with its breaker permit and a retry of
        the budget; ``None`` when one of the three refuses."""
        breaker = self.plan.breaker
        try:
            breaker.acquire()
        except CircuitOpenError:
            return None
        budget = self.plan.op.retry_budget
        if budget is not None:
            try:
                allowed = budget.try_spend()
            except Exception:
                allowed = self._budget_failed()
            if not allowed:
                breaker.release()
                return None
        try:
            attempt = self.plan.attempt_pool().start(func, args, kwargs, wake)
        except BulkheadFull:
            breaker.release()
            return None
        except BaseException:
            breaker.release()
            raise
        next(self.plan.op.hedged_attempts)
        traced = current_call(self.plan.op)
        if traced is not None:
            traced.hedge()
        return attempt

    def _budget_failed(self) -> bool:
        """A budget that cannot answer (its store is down): logged, and no hedge."""
        self.plan.runtime.logger.exception(
            "operation %r: the retry budget could not be asked for a hedged attempt; none is made",
            self.plan.op.name,
            extra=self.plan.log_fields(),
        )
        return False

    def _finish(self, winner: int, first_ended: bool, seconds: float) -> None:
        """The race is over: count a hedge's win; the first attempt's duration (or, still
        running, its lower bound) into the sketch, unless it failed."""
        if winner > 0:
            next(self.plan.op.hedge_wins)
        if winner == 0 or not first_ended:
            self.observe(seconds)

    def _verdicts(self, extras: int, failed: list[_Failed], raised: bool) -> list[int]:
        """The breaker outcome of each permit besides the first attempt's: each failed
        attempt's verdict (counted like any failed attempt), except the error the race
        raises (the loop records it); the rest released."""
        plan = self.plan
        verdicts: list[int] = []
        for index, error, _ in failed:
            if raised and index == 0:
                continue
            if isinstance(error, Exception):
                verdicts.append(plan.counted_failure(error))
            else:
                verdicts.append(NEITHER)
        verdicts += [NEITHER] * (extras - len(verdicts))
        return verdicts

    def _settle(self, extras: int, failed: list[_Failed], raised: bool) -> None:
        if not extras:
            return
        breaker = self.plan.breaker
        durations = [seconds for index, _, seconds in failed if not (raised and index == 0)]
        for position, verdict in enumerate(self._verdicts(extras, failed, raised)):
            seconds = durations[position] if position < len(durations) else 0.0
            if verdict == FAILURE:
                breaker.record_failure(seconds)
            elif verdict == NEITHER:
                breaker.release()
            else:  # the dependency's answer (trip_on does not name it)
                breaker.record_success(seconds)

    # --- async: tasks, the losers cancelled and awaited ----------------------------------

    async def arace(
        self, func: Callable[..., Awaitable[Any]], args: Any, kwargs: Any, state: RetryState
    ) -> Any:
        """One attempt of the async plan's loop, hedged; bounded from outside (the
        runner's timeout and scope cancel this coroutine, which cancels its attempts)."""
        delay = self._delay
        if delay is None:  # a percentile still learning: a plain attempt, timed
            began = time.monotonic()
            result = await func(*args, **kwargs)
            self.observe(time.monotonic() - began)
            return result
        return await _AsyncRace(self, func, args, kwargs, delay).run()

    async def _arelease(self) -> None:
        breaker = self.plan.breaker
        if breaker.blocking:
            await breaker.arelease()
        else:
            breaker.release()

    async def _asettle(self, extras: int, failed: list[_Failed], raised: bool) -> None:
        breaker = self.plan.breaker
        if not extras:
            return
        if not breaker.blocking:
            self._settle(extras, failed, raised)
            return
        durations = [seconds for index, _, seconds in failed if not (raised and index == 0)]
        for position, verdict in enumerate(self._verdicts(extras, failed, raised)):
            seconds = durations[position] if position < len(durations) else 0.0
            if verdict == FAILURE:
                await breaker.arecord_failure(seconds)
            elif verdict == NEITHER:
                await breaker.arelease()
            else:
                await breaker.arecord_success(seconds)


class _AsyncRace:
    """One async hedged race. The first attempt is awaited in the caller's own task, in an
    ``asyncio.timeout`` scope that a winning hedge expires (the stdlib's cancel and
    uncancel, so a cancellation from outside is never mistaken for ours): a call answered
    before ``hedge_after`` makes no task at all, only a timer. Hedges are tasks the timer
    starts; the losers are cancelled and awaited before the race returns. Once the first
    attempt has failed no new hedge starts; those running may still answer."""

    __slots__ = (
        "args",
        "delay",
        "failed",
        "first_running",
        "func",
        "hedges",
        "hedging",
        "kwargs",
        "left",
        "loop",
        "permits",
        "results",
        "scope",
        "timer",
        "winner",
    )

    def __init__(
        self,
        hedging: Hedging,
        func: Callable[..., Awaitable[Any]],
        args: Any,
        kwargs: Any,
        delay: float,
    ) -> None:
        self.hedging = hedging
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.delay = delay
        self.left = hedging.max_hedged
        self.first_running = True
        self.winner = -1
        self.permits = 0  # hedges that took a breaker permit
        self.failed: list[_Failed] = []
        self.hedges: list[asyncio.Task[None]] = []
        self.results: dict[int, Any] = {}
        self.scope: asyncio.Timeout | None = None
        self.timer: asyncio.TimerHandle | None = None

    async def run(self) -> Any:
        import asyncio

        loop = self.loop = asyncio.get_running_loop()
        began = time.monotonic()
        self.timer = loop.call_later(self.delay, self._launch)
        first_error: Exception | None = None
        first_ended = raised = False
        result: Any = None
        try:
            try:
                async with asyncio.timeout(None) as scope:  # expired by a winning hedge
                    self.scope = scope
                    try:
                        result = await self.func(*self.args, **self.kwargs)
                        first_ended = True
                    except Exception as exc:  # failed: the running hedges may still answer
                        first_error, first_ended = exc, True
                        self.failed.append((0, exc, time.monotonic() - began))
                    finally:
                        self.first_running = False
            except TimeoutError:
                if not scope.expired() or self.winner < 0:
                    raise  # not ours (the attempt's own errors are caught above)
            if self.winner < 0 and first_error is None:
                self.winner = 0
                return result
            if self.winner < 0:  # the first failed: wait for the running hedges, if any
                self.timer.cancel()
                running = [task for task in self.hedges if not task.done()]
                while self.winner < 0 and running:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    running = [task for task in running if not task.done()]
                if self.winner < 0:
                    raised = True
                    raise cast(Exception, first_error)
            return self.results[self.winner]
        finally:
            if self.hedges or self.failed:
                await self._end(began, first_ended, raised)
            else:  # answered before any hedge (the usual call): nothing to await
                self.timer.cancel()
                self.hedging._finish(self.winner, first_ended, time.monotonic() - began)

    async def _end(self, began: float, first_ended: bool, raised: bool) -> None:
        """Cancel the timer and the running hedges and await them; count; settle."""
        import asyncio

        cast("asyncio.TimerHandle", self.timer).cancel()
        running = [task for task in self.hedges if not task.done()]
        for task in running:
            task.cancel()
        if running:  # awaited: none of the call's attempts outlives it
            await asyncio.wait(running)
        for task in self.hedges:
            if not task.cancelled():
                task.exception()  # retrieved (an attempt's own errors are caught inside)
        hedging = self.hedging
        hedging._finish(self.winner, first_ended, time.monotonic() - began)
        await hedging._asettle(self.permits, self.failed, raised)

    def _launch(self) -> None:
        """The timer: start the next hedge while the first attempt still runs."""
        if self.left <= 0 or not self.first_running:
            return
        self.left -= 1
        self.hedges.append(self.loop.create_task(self._hedge(len(self.hedges) + 1)))
        if self.left > 0:
            self.timer = self.loop.call_later(self.delay, self._launch)

    async def _hedge(self, index: int) -> None:
        """One hedged attempt: its permit, a retry of the budget, the call. The first
        success wins (and, while the first attempt runs, expires its scope)."""
        hedging = self.hedging
        plan = hedging.plan
        breaker = plan.breaker
        try:
            if breaker.blocking:
                await breaker.aacquire()
            else:
                breaker.acquire()
        except CircuitOpenError:
            self.left = 0
            return
        # Counted at once: a hedge cancelled while it asks the budget (a Redis round trip)
        # still has its permit released by ``_end``, as one that neither failed nor succeeded.
        self.permits += 1
        budget = plan.op.retry_budget
        if budget is not None:
            try:
                allowed = await budget.atry_spend() if budget.blocking else budget.try_spend()
            except Exception:
                allowed = hedging._budget_failed()
            if not allowed:
                self.left = 0
                self.permits -= 1
                await hedging._arelease()
                return
        next(plan.op.hedged_attempts)
        traced = current_call(plan.op)
        if traced is not None:
            traced.hedge()
        began = time.monotonic()
        try:
            result = await self.func(*self.args, **self.kwargs)
        except Exception as exc:
            self.failed.append((index, exc, time.monotonic() - began))
            return
        if self.winner < 0:
            self.winner = index
            self.results[index] = result
            if self.first_running:
                cast("asyncio.Timeout", self.scope).reschedule(self.loop.time())
