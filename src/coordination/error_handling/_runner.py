"""What the sync and async runners share: the plan, how a breaker's guard is asked, and
how a wrapper is switched to its traced path (``_tracing.watch_calls``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _tracing
from ._plan import Plan

if TYPE_CHECKING:
    from ._spans import CallSpan

__all__ = ["Handover", "Runner", "call_span_type"]

Handover = Callable[..., Any]  # (func, args, kwargs[, exc or result]) -> the call's value
# a reload's divert and tracing's switch both set the guard's cell from two flags: taken
# together, so neither undoes the other (only cells are rebound under it)
_SWITCHING = threading.Lock()


def _reset_switching_in_child() -> None:
    # A parent's thread switching at the fork left the child's copy held: the child's
    # first switch (its provider set after a gunicorn fork) hung for ever. The fork is
    # made holding it (no switch halfway), the child gets a new one.
    global _SWITCHING
    _SWITCHING = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=lambda: _SWITCHING.acquire(),
        after_in_parent=lambda: _SWITCHING.release(),
        after_in_child=_reset_switching_in_child,
    )


class Runner:
    """A plan's driver (``SyncRunner``, ``AsyncRunner``); ``wrap`` a function once.

    A reload (``_reload``) gives a decorated function's runner its new plan with
    ``rebind``: the runner's methods read ``self.plan`` at each call, so retries and
    limits take the new values at the next call. When the new plan would be wrapped
    differently (an admission or a timeout added, another breaker), ``redirect`` is the
    function wrapped anew and the breaker's guard is diverted to ``run``, which hands
    every call to it.

    While ``_tracing`` says spans are on (``trace_calls``), every call takes the runner's
    ``traced`` path: the guard is diverted (its switch, as for a reload) and the plain
    wrapper's cell is rebound to ``traced``. Off, the wrappers are as they were composed:
    the call path reads nothing to know that tracing is off.
    """

    GUARD_PREFIX = ""  # the breaker's guard methods for this runner: "guard", "aguard"
    __slots__ = (
        "__weakref__",
        "breaker",
        "divert",
        "func",
        "guard_switch",
        "path_switch",
        "plan",
        "redirect",
        "reloaded",
        "shape",
        "tracing",
    )

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.breaker = plan.breaker
        self.redirect: Callable[..., Any] | None = None
        self.divert: Callable[[bool], None] | None = None  # the guard's switch, if any
        self.func: Callable[..., Any] | None = None  # what wrap() wrapped, for a reload
        self.shape: tuple[object, ...] = ()
        self.tracing = False  # every call takes ``traced`` (told by _tracing)
        self.reloaded = False  # the guard is diverted for a reload's ``redirect``
        self.guard_switch: Callable[[bool], None] | None = None  # the breaker guard's
        self.path_switch: Callable[[bool], None] | None = None  # the plain wrapper's

    def trace_calls(self, on: bool) -> None:
        """Spans turned on or off (``_tracing``): the wrapper's calls go to ``traced``, or
        back to the path composed for them."""
        with _SWITCHING:
            self.tracing = on
            if self.guard_switch is not None:
                self.guard_switch(on or self.reloaded)
            if self.path_switch is not None:
                self.path_switch(on)

    def watch_tracing(self) -> None:
        """After ``wrap``: told from now on when spans turn on or off, and on now if they are."""
        if _tracing.watch_calls(self):
            self.trace_calls(True)

    def rebind(self, plan: Plan) -> None:
        """Take ``plan`` from the next call on (a reload)."""
        self.plan = plan
        self.breaker = plan.breaker

    def wrapped_shape(self, plan: Plan, method: str) -> tuple[object, ...]:
        """What decides how ``wrap`` wraps a function for ``plan``: a plan of the same
        shape can be swapped in under the same wrapper."""
        breaker = plan.breaker
        return (
            breaker,
            plan.direct,
            plan.from_start,
            plan.looks_at_results,
            plan.timeout is None,
            breaker.tracks_duration,
            breaker.blocking,
            getattr(breaker, method, None) is not None,
        )

    def _keep_divert(self, switch: Callable[[bool], None]) -> None:
        self.guard_switch = switch
        self.divert = self._divert

    def _divert(self, on: bool) -> None:
        """A reload's switch (``_reload``): the guard stays diverted while traced."""
        with _SWITCHING:
            self.reloaded = on
            if self.guard_switch is not None:
                self.guard_switch(on or self.tracing)

    def breaker_guard(self, method: str) -> Callable[..., Any] | None:
        """The breaker's ``guard`` / ``aguard`` when it offers one (optional: see
        ``_backends``) and it may take this plan's calls: nothing to do before a call, no
        duration to measure, no I/O to await."""
        guard: Callable[..., Any] | None = getattr(self.breaker, method, None)
        breaker = self.breaker
        if not self.plan.direct or breaker.tracks_duration or breaker.blocking:
            return None
        return guard

    def handovers(self, run: Handover, failed: Handover, on_result: Handover) -> dict[str, Any]:
        """What the guard hands back to this runner (every call but a first success):
        ``run`` when the breaker is not closed (or the guard is diverted), ``failed``
        with a first attempt's error, ``on_result`` with its result when the plan looks
        at results (it then tells the breaker the outcome: ``Plan.result_state``)."""
        plan = self.plan
        return {
            "successes": plan.op.successes,
            "failed": failed,
            "otherwise": run,
            "on_result": on_result if plan.looks_at_results else None,
            "on_divert": self._keep_divert,
        }


def call_span_type() -> type[CallSpan]:
    """``_spans.CallSpan``, loaded with the first traced call (an import statement in
    ``traced`` would cost a lookup at each call)."""
    global _CallSpan
    if _CallSpan is None:
        from ._spans import CallSpan

        _CallSpan = CallSpan
    return _CallSpan


_CallSpan: type[CallSpan] | None = None
