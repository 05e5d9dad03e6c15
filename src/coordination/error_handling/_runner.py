"""What the sync and async runners share: the plan, and how a breaker's guard is asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._plan import Plan

__all__ = ["Handover", "Runner"]

Handover = Callable[..., Any]  # (func, args, kwargs[, exc or result]) -> the call's value


class Runner:
    """A plan's driver (``SyncRunner``, ``AsyncRunner``); ``wrap`` a function once."""

    __slots__ = ("breaker", "plan")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.breaker = plan.breaker

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
        }
