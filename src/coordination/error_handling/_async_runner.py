"""``AsyncRunner``: a plan's retry loop driven for coroutine functions.

The same steps and decisions as ``SyncRunner`` (they are the plan's); only the doing
differs: ``asyncio`` sleeps, the bulkhead's ``aenter``, real cancellation at a timeout or
at the caller's ``Cancellation`` deadline (so the first attempt too is bounded by a
scope) and of a hedged race's losers (``_hedging``), and, for a breaker or limiter that
does I/O (``blocking``), the awaited ``a*`` methods, so no event loop waits on a socket.
While spans are on, every call takes ``traced`` (``_spans``), as in ``SyncRunner``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from .. import _tracing
from .._errors import BulkheadFull, CircuitOpenError, OperationTimeout, RateLimitExceeded
from ._backends import RetryBudgetBackend
from ._bulkhead import Bulkhead
from ._cancellation import current_cancellation
from ._plan import (
    ACQUIRE,
    CALL,
    DONE,
    ENTER,
    FAILED,
    FAILURE,
    FAILURE_ACQUIRE,
    FAILURE_SPEND_ACQUIRE,
    RELEASE,
    SLEEP,
    SPEND,
    SUCCESS,
    Plan,
    RetryState,
    Steps,
    Stopped,
    advance,
)
from ._runner import Runner, call_span_type

if TYPE_CHECKING:
    pass

__all__ = ["AsyncRunner"]


class AsyncRunner(Runner):
    """Runs calls of coroutine functions through ``plan``."""

    GUARD_PREFIX = "a"
    __slots__ = ("io",)

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self.io = _does_io(plan)

    def rebind(self, plan: Plan) -> None:
        super().rebind(plan)
        self.io = _does_io(plan)  # a reload may have added or removed a shared budget

    def wrap(self, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``func`` behind the plan: the breaker's ``aguard`` when it can take the calls
        (inside a ``Cancellation`` scope it hands them on: a scope bounds the first
        attempt too), else the whole pipeline."""
        from_start = self.plan.from_start  # a time budget: the guard reads the clock first
        method = "aguard_from_start" if from_start else "aguard"
        self.func, self.shape = func, self.wrapped_shape(self.plan, method)
        aguard = self.breaker_guard(method)
        if aguard is None:
            run = self.run

            async def call(*args: Any, **kwargs: Any) -> Any:
                return await run(func, args, kwargs)

            def switch(on: bool) -> None:  # spans on or off: the cell above, rebound
                nonlocal run
                run = self.traced if on else self.run

            self.path_switch = switch
            self.watch_tracing()
            return call
        handovers = self.handovers(self.otherwise, self.failed, self.on_result)
        if from_start:
            del handovers["failed"]
            handovers["failed_since"] = self.failed_since
        wrapped: Callable[..., Awaitable[Any]] = aguard(
            func, bypass=current_cancellation, **handovers
        )
        self.watch_tracing()
        return wrapped

    async def otherwise(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """A call the guard hands over (not CLOSED, diverted, in a scope): traced or not."""
        if self.tracing:
            return await self.traced(func, args, kwargs)
        return await self.run(func, args, kwargs)

    async def traced(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """One call through the whole pipeline inside its span."""
        if self.redirect is not None:  # a reload's new wrapper traces the call itself
            return await self.redirect(*args, **kwargs)
        tracer = _tracing.current_tracer()
        if tracer is None:  # the provider went away: the runners are told, this call plain
            _tracing.refresh()
            return await self.run(func, args, kwargs)
        call = call_span_type()(tracer, self.plan)
        try:
            result = await self.run(call.acounted(func), args, kwargs)
        except BaseException as exc:
            call.close(exc)
            raise
        call.close(None)
        return result

    async def run(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """One call through the whole pipeline."""
        if self.redirect is not None:  # a reload wrapped the function anew
            return await self.redirect(*args, **kwargs)
        plan = self.plan
        state = plan.new_state(current_cancellation())
        admission = plan.admission
        acquired = False
        entry = None
        if admission is not None:
            try:
                entry = await admission.aadmit()
            except (RateLimitExceeded, BulkheadFull, CircuitOpenError) as exc:
                refusal = plan.not_admitted(exc, args, kwargs)
                return await refusal if inspect.isawaitable(refusal) else refusal
            acquired = admission.acquires_breaker
            state.slot = admission.bulkhead
            state.holds_slot = admission.bulkhead is not None
        try:
            steps = plan.steps(state, io=self.io, bounded_first=True, acquired=acquired)
            result = await self.drive(steps, state, func, args, kwargs)
        except BaseException as exc:  # how the call ended: an adaptive limit's sample
            if admission is not None:
                admission.leave(entry, state, exc)
            raise
        if admission is not None:
            admission.leave(entry, state, None)
        return result

    async def failed(self, func: Callable[..., Any], args: Any, kwargs: Any, exc: Exception) -> Any:
        """The guard's first attempt raised ``exc``: on to the retry loop."""
        state = self.plan.new_state(current_cancellation())
        steps = self.plan.steps(state, io=self.io, bounded_first=True, pending=exc)
        return await self.drive(steps, state, func, args, kwargs)

    async def failed_since(
        self, func: Callable[..., Any], args: Any, kwargs: Any, exc: Exception, started: float
    ) -> Any:
        """The guard's first attempt, begun at ``started``, raised ``exc``: retry."""
        state = self.plan.new_state(current_cancellation())
        state.started = started
        steps = self.plan.steps(state, io=self.io, bounded_first=True, pending=exc)
        return await self.drive(steps, state, func, args, kwargs)

    async def on_result(self, func: Callable[..., Any], args: Any, kwargs: Any, result: Any) -> Any:
        """The guard's first attempt returned ``result``: retry if it asks for one."""
        plan = self.plan
        budget = plan.budget
        awaited = budget is not None and budget.blocking
        state = plan.result_state(result, current_cancellation, spend=not awaited)
        if state is None:
            return result
        if awaited and plan.budget_refuses(await budget.atry_spend()):  # type: ignore[union-attr]
            next(plan.op.successes)
            return result
        steps = self.plan.steps(state, io=self.io, bounded_first=True)
        return await self.drive(steps, state, func, args, kwargs)

    async def drive(
        self, steps: Steps, state: RetryState, func: Any, args: Any, kwargs: Any
    ) -> Any:
        """Do what ``steps`` asks, awaiting, until it ends; then the plan concludes."""
        value: Any = None
        failure: Exception | None = None
        hedging = self.plan.hedging
        plain = state.cancellation is None and self.plan.timeout is None and hedging is None
        while (command := advance(steps, value, failure)) >= 0:
            value = failure = None
            try:
                if command == CALL:
                    if plain:
                        value = await func(*args, **kwargs)
                    elif hedging is None:
                        value = await self._attempt(func, args, kwargs, state)
                    else:  # a race of attempts, bounded as one (_hedging)
                        race = (func, args, kwargs, state)
                        value = await self._attempt(hedging.arace, race, {}, state)
                elif command == SLEEP:
                    await self.plan.runtime.async_sleep(state.wait)
                else:
                    value = await self._other(command, state)
            except Exception as exc:
                if command == SLEEP:
                    await self._release()
                    raise
                if command == CALL:  # a failed attempt: left for the steps in state.error
                    state.error, value = exc, FAILED
                else:  # thrown into the steps: an open breaker, a full bulkhead, ...
                    failure = exc
            except BaseException:  # cancelled: give the permit back, not the dependency's fault
                if command in (CALL, SLEEP):
                    await self._release()
                raise
        ending = -1 - command
        outcome = self.plan.conclude(state, ending, args, kwargs)
        if ending != DONE and inspect.isawaitable(outcome):  # an async fallback
            return await outcome
        return outcome

    async def _other(self, command: int, state: RetryState) -> Any:
        breaker = self.breaker
        if command == ACQUIRE:
            await breaker.aacquire()
        elif command == SUCCESS:
            await breaker.arecord_success(state.duration)
        elif command == FAILURE:
            await breaker.arecord_failure(state.duration)
        elif command == RELEASE:
            await breaker.arelease()
        elif command == FAILURE_ACQUIRE:
            retry: Any = getattr(breaker, "arecord_failure_and_acquire", None)  # see _backends
            await retry(state.duration)
        elif command == ENTER:
            await cast(Bulkhead, state.slot).aenter()
        elif command == SPEND:  # the retry budget's answer goes back to the steps
            return await cast(RetryBudgetBackend, self.plan.budget).atry_spend()
        elif command == FAILURE_SPEND_ACQUIRE:  # the same with the failure and the acquire
            joint: Any = getattr(breaker, "arecord_failure_spend_and_acquire", None)
            return await joint(state.duration, self.plan.budget)
        return None

    async def _release(self) -> None:
        if self.io:
            await self.breaker.arelease()
        else:
            self.breaker.release()

    async def _attempt(
        self, func: Callable[..., Any], args: Any, kwargs: Any, state: RetryState
    ) -> Any:
        """The attempt, cancelled at the nearer of its timeout and the scope's deadline."""
        cancellation = state.cancellation
        timeout = self.plan.timeout
        left = None if cancellation is None else cancellation.remaining()
        if left is not None and (timeout is None or left < timeout):
            return await self._bounded(func(*args, **kwargs), left, scope_ended=True)
        if timeout is None:
            return await func(*args, **kwargs)
        return await self._bounded(func(*args, **kwargs), timeout, scope_ended=False)

    async def _bounded(
        self, awaitable: Awaitable[Any], seconds: float, *, scope_ended: bool
    ) -> Any:
        """``awaitable`` cancelled after ``seconds``: then ``Stopped`` (the scope's deadline,
        not the dependency) or ``OperationTimeout``."""
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if not scope.expired():
                raise  # a TimeoutError of the operation's own
            if scope_ended:
                raise Stopped from None
            raise OperationTimeout(self.plan.op.name, seconds) from None


def _does_io(plan: Plan) -> bool:
    """The plan's breaker or retry budget does I/O: the steps yield to await its a* methods."""
    budget = plan.budget
    return plan.breaker.blocking or (budget is not None and budget.blocking)
