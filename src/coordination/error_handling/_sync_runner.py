"""``SyncRunner``: a plan's retry loop driven for plain functions.

It does what ``Plan.steps`` asks: calls the operation (on the operation's timeout workers
when it has a timeout or hedges), sleeps (waking early when the caller's ``Cancellation`` is
cancelled) and takes a bulkhead slot for a retry; the decisions are the plan's. When the
plan has nothing to do before a call, the breaker's own ``guard`` takes the call, and the
loop starts only after a failure. While spans are on, every call takes ``traced``
(``_spans``): the span around the whole pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .. import _tracing
from .._errors import BulkheadFull, CircuitOpenError, OperationTimeout, RateLimitExceeded
from ._bulkhead import Bulkhead
from ._cancellation import _current
from ._plan import GIVE_UP, SLEEP, Plan, Refused, RetryState, Stopped, advance
from ._runner import Runner, call_span_type

if TYPE_CHECKING:
    pass
from ._workers import Abandoned

__all__ = ["SyncRunner"]


class SyncRunner(Runner):
    """Runs calls of plain functions through ``plan``."""

    __slots__ = ("timeout",)

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self.timeout = plan.timeout

    def rebind(self, plan: Plan) -> None:
        super().rebind(plan)
        self.timeout = plan.timeout

    def wrap(
        self, func: Callable[..., Any], *, refusals_returned: bool = False
    ) -> Callable[..., Any]:
        """``func`` behind the plan: the breaker's guard when it can take the calls (it
        raises a refusal from its own frame, or returns it as ``[RAISE, error]`` when
        ``refusals_returned``: see ``CircuitBreaker.guard``), else the whole pipeline."""
        from_start = self.plan.from_start  # a time budget: the guard reads the clock first
        method = "guard_from_start" if from_start else "guard"
        self.func, self.shape = func, self.wrapped_shape(self.plan, method)
        guard = self.breaker_guard(method)
        if guard is not None:
            handovers = self.handovers(self.otherwise, self.attempts, self.on_result)
            if from_start:
                del handovers["failed"]
                handovers["failed_since"] = self.failed_since
            if refusals_returned:
                handovers["refusals_returned"] = True
            wrapped: Callable[..., Any] = guard(func, refused=self.refused, **handovers)
            self.watch_tracing()
            return wrapped
        run = self.run

        def call(*args: Any, **kwargs: Any) -> Any:
            return run(func, args, kwargs)

        def switch(on: bool) -> None:  # spans on or off: the cell above, rebound
            nonlocal run
            run = self.traced if on else self.run

        self.path_switch = switch
        self.watch_tracing()
        return call

    def otherwise(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """A call the guard hands over (not CLOSED, or diverted): traced or not."""
        if self.tracing:
            return self.traced(func, args, kwargs)
        return self.run(func, args, kwargs)

    def traced(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """One call through the whole pipeline inside its span."""
        if self.redirect is not None:  # a reload's new wrapper traces the call itself
            return self.redirect(*args, **kwargs)
        tracer = _tracing.current_tracer()
        if tracer is None:  # the provider went away: the runners are told, this call plain
            _tracing.refresh()
            return self.run(func, args, kwargs)
        call = call_span_type()(tracer, self.plan)
        try:
            result = self.run(call.counted(func), args, kwargs)
        except BaseException as exc:
            call.close(exc)
            raise
        call.close(None)
        return result

    def refused(self, exc: CircuitOpenError, args: Any, kwargs: Any) -> Any:
        """The open breaker's refusal, answered by the plan in force (a reload's too)."""
        return self.plan.refusal(exc, args, kwargs)

    def run(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """One call through the whole pipeline."""
        if self.redirect is not None:  # a reload wrapped the function anew
            return self.redirect(*args, **kwargs)
        admission = self.plan.admission
        if admission is None:
            return self.attempts(func, args, kwargs)
        try:
            entry = admission.admit()
        except (RateLimitExceeded, BulkheadFull, CircuitOpenError) as exc:
            return self.plan.not_admitted(exc, args, kwargs)
        state = self.plan.new_state(_current.get())
        state.slot = admission.bulkhead
        state.holds_slot = admission.bulkhead is not None
        try:
            result = self.attempts(func, args, kwargs, None, state, admission.acquires_breaker)
        except BaseException as exc:  # how the call ended: an adaptive limit's sample
            admission.leave(entry, state, exc)
            raise
        if entry is not None:
            admission.leave(entry, state, None)
        elif state.holds_slot:  # a bulkhead's slot, given back here: one call fewer
            admission.bulkhead.leave()  # type: ignore[union-attr]
        return result

    def failed_since(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        exc: Exception,
        started: float | None = None,
    ) -> Any:
        """The guard's first attempt, begun at ``started``, raised ``exc``: retry."""
        state = self.plan.new_state(_current.get())
        state.started = started
        return self.attempts(func, args, kwargs, exc, state)

    def on_result(self, func: Callable[..., Any], args: Any, kwargs: Any, result: Any) -> Any:
        """The guard's first attempt returned ``result``: retry if it asks for one."""
        state = self.plan.result_state(result, _current.get)
        if state is None:
            return result
        return self.attempts(func, args, kwargs, None, state)

    def attempts(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        pending: Exception | None = None,
        state: RetryState | None = None,
        acquired: bool = False,
    ) -> Any:
        """The retry loop: do what the plan's steps ask until they end, then conclude.
        ``pending``: the error of a first attempt the guard made (its ``failed``);
        ``state``: where the call already is; ``acquired``: the admission holds the
        first attempt's breaker permit."""
        plan = self.plan
        if state is None:
            state = plan.new_state(_current.get())
        steps = plan.steps(  # the steps make the attempts: no resume per attempt
            state,
            acquired=acquired,
            pending=pending,
            call=(func, args, kwargs),
            call_once=(None if self.timeout is None and plan.hedging is None else self._call_once),
        )
        failure: Exception | None = None
        while (command := advance(steps, None, failure)) >= 0:
            failure = None
            if command == SLEEP:
                self._sleep(state)
            else:  # ENTER: a slot for a retry (the steps call a sync breaker themselves)
                try:
                    cast(Bulkhead, state.slot).enter()
                except BulkheadFull as exc:
                    failure = exc
        ending = -1 - command
        if ending == GIVE_UP:  # here, not in conclude: one frame fewer for the error to unwind
            return plan.give_up(cast(Exception, state.error), state.attempt, args, kwargs)
        return plan.conclude(state, ending, args, kwargs)

    def _sleep(self, state: RetryState) -> None:
        sleep = self.plan.runtime.sleep
        try:
            if state.cancellation is None:
                sleep(state.wait)
            else:
                state.cancellation.sleep(state.wait, sleep)
        except BaseException:
            self.breaker.release()
            raise

    def _call_once(
        self, func: Callable[..., Any], args: Any, kwargs: Any, state: RetryState
    ) -> Any:
        """One attempt with a timeout or hedged (``_hedging``: a race of attempts)."""
        hedging = self.plan.hedging
        if hedging is None:
            return self._timed_call(func, args, kwargs, state)
        return hedging.run(
            func, args, kwargs, state, None if self.timeout is None else self._timed_call
        )

    def _timed_call(
        self, func: Callable[..., Any], args: Any, kwargs: Any, state: RetryState
    ) -> Any:
        """One attempt with a timeout, on the operation's own worker threads.

        A thread cannot be cancelled: the caller stops waiting at the deadline and the
        attempt's late result is discarded. Until it really ends, the abandoned attempt
        keeps its worker and the call's bulkhead slot (released by the worker)."""
        timeout = cast(float, self.timeout)
        plan = self.plan
        pool = plan.attempt_pool()
        bulkhead = state.slot
        cancellation = state.cancellation
        on_end = bulkhead.leave if bulkhead is not None and state.holds_slot else None
        try:
            attempt = pool.start(func, args, kwargs)
        except BulkheadFull as exc:  # every worker is busy: refused before it started
            raise Refused(exc) from None
        try:
            return pool.finish(attempt, timeout, on_end, cancellation)
        except Abandoned:
            state.holds_slot = False  # handed to the running attempt, released at its end
            if cancellation is not None and cancellation.cancelled:
                raise Stopped from None
            raise OperationTimeout(plan.op.name, timeout) from None
