"""What the sync and async runners share: the plan, and how a breaker's guard is asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._plan import Plan

__all__ = ["Handover", "Runner"]

Handover = Callable[..., Any]  # (func, args, kwargs[, exc or result]) -> the call's value


class Runner:
    """A plan's driver (``SyncRunner``, ``AsyncRunner``); ``wrap`` a function once.

    A reload (``_reload``) gives a decorated function's runner its new plan with
    ``rebind``: the runner's methods read ``self.plan`` at each call, so retries and
    limits take the new values at the next call. When the new plan would be wrapped
    differently (an admission or a timeout added, another breaker), ``redirect`` is the
    function wrapped anew and the breaker's guard is diverted to ``run``, which hands
    every call to it.
    """

    GUARD_PREFIX = ""  # the breaker's guard methods for this runner: "guard", "aguard"
    __slots__ = ("__weakref__", "breaker", "divert", "func", "plan", "redirect", "shape")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.breaker = plan.breaker
        self.redirect: Callable[..., Any] | None = None
        self.divert: Callable[[bool], None] | None = None  # the guard's switch, if any
        self.func: Callable[..., Any] | None = None  # what wrap() wrapped, for a reload
        self.shape: tuple[object, ...] = ()

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
        self.divert = switch

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
        ``run`` when the breaker is not closed, ``failed`` with a first attempt's error,
        ``on_result`` with its result when the plan looks at results (it then tells the
        breaker the outcome: ``Plan.result_state``)."""
        plan = self.plan
        return {
            "successes": plan.op.successes,
            "failed": failed,
            "otherwise": run,
            "on_result": on_result if plan.looks_at_results else None,
            "on_divert": self._keep_divert,
        }
