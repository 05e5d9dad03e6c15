"""Live reload of a handler: new settings prepared whole, then applied to live operations.

A reload is two phases. ``prepare`` does everything that can fail — the configuration's
``operations:`` entries checked, every live operation's and every decorated function's
options resolved, the components whose options changed made — and touches nothing; a
``ConfigError`` there leaves the handler exactly as it was. ``apply`` then cannot fail:
each operation's components are replaced in place (its counters stay), a breaker keeps its
state where its kind is unchanged (``retune``), every decorated function's runner is given
its new plan (one reference each: the next call reads it), and the handler's caches of
``execute_with_error_handling`` shapes start again.

The mechanism is generic over ``Options`` and ``OperationState``: a component slot of the
operation (anything that is not a counter) is kept when the options that govern it are
unchanged (``_GOVERNS``; a slot not listed there is kept only when no option but the
breaker's changed), else taken from a fresh operation made by the handler as a first use
would make it. So the settings other parts add (a retry budget) reload the way their
operation is built.

Adaptive limits are the exception, since a group's limiter is shared and holds calls in
flight: ``prepare`` asks the handler's ``AdaptiveLimiters`` for a ``LimitsReload`` (every
group's new settings checked, new groups made, not yet registered), an operation staying in
its group keeps its slot and one moving gets a slot of its new group; ``apply`` retunes each
group's limiter in place (its in-flight count and waiters kept, ``_adaptive``) and sets each
kept slot's severity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .._config import CoordinationConfig
from .._counting import ReadableCount
from .._errors import ConfigError
from .._logging import log_extra
from ._backends import CircuitBreakerBackend
from ._breaker import same_kind
from ._configured import check_operations, over_configured
from ._options import Options, resolve_options
from ._plan import OperationState, Plan

if TYPE_CHECKING:
    from ._adaptive import LimitsReload
    from ._handler import CoordinationErrorHandler
    from ._runner import Runner

__all__ = ["PreparedReload", "catch_up", "prepare"]

# Which options make which component of an operation (the others: see the module doc).
_GOVERNS: dict[str, tuple[str, ...]] = {
    "limiter": ("rate_limit",),
    "bulkhead": (
        "max_concurrent",
        "bulkhead_wait",
        "adaptive_concurrency",
        "concurrency_algorithm",
        "min_concurrency",
        "max_concurrency",
        "concurrency_group",
    ),
    "retry_budget": ("retry_budget", "retry_budget_window", "retry_budget_min_per_second"),
    "pool_workers": (
        "timeout_workers",
        "max_concurrent",
        "adaptive_concurrency",
        "max_concurrency",
    ),
    "severity": ("severity",),
}
# Slots a reload never moves: the name, the breaker (decided on its own), the timeout
# workers (closed and made again on first use when their size changes).
_FIXED = frozenset({"name", "breaker", "attempt_pool"})


@dataclass(slots=True)
class _OperationChange:
    op: OperationState
    options: Options
    fresh: OperationState | None  # the components to take (None: the options are unchanged)
    breaker: CircuitBreakerBackend | None  # a new breaker (None: keep, maybe retuned)
    retune: bool
    moved: frozenset[str]  # slots taken from ``fresh``
    new_pool: bool


@dataclass(slots=True)
class PreparedReload:
    """Everything a reload will change, made and checked; ``apply()`` cannot fail."""

    handler: CoordinationErrorHandler
    config: CoordinationConfig
    changes: list[_OperationChange]
    runners: list[tuple[Runner, str, Mapping[str, Any], Options]]
    limits: LimitsReload | None  # the adaptive limits' (None: no operation has one)

    def apply(self) -> None:
        handler = self.handler
        if self.limits is not None:
            self.limits.apply()
        for change in self.changes:
            _apply_operation(handler, change)
        for runner, name, overrides, options in self.runners:
            plan = Plan(handler._runtime, handler._existing(name), options)
            _rebind(runner, plan, overrides)
        handler._reconfigured(self.config)


def prepare(handler: CoordinationErrorHandler, config: CoordinationConfig) -> PreparedReload:
    """The reload of ``handler`` to ``config``, checked and made; raises ``ConfigError``
    (nothing changed) when an entry or an operation's options do not check."""
    check_operations(config)
    resolved: list[tuple[OperationState, Options]] = []
    for name, op in handler._live_operations():
        overrides = handler._first_overrides.get(name, {})
        resolved.append((op, _options_of(config, name, overrides)))
    adaptive = [
        (op.name, options, op.bulkhead) for op, options in resolved if options.adaptive_concurrency
    ]
    limits = handler._adaptive_limiters().prepare_reload(adaptive) if adaptive else None
    changes = [_change_for(handler, op, options, limits) for op, options in resolved]
    runners = []
    for runner, (name, overrides) in handler._tracked_runners():
        options = _options_of(config, name, overrides)
        runners.append((runner, name, overrides, options))
    return PreparedReload(handler, config, changes, runners, limits)


def _options_of(config: CoordinationConfig, name: str, overrides: Mapping[str, Any]) -> Options:
    """A live operation's options under ``config``; a ``ConfigError`` names the operation
    (the new file may clash with what its code gives, and the error must say where)."""
    try:
        return resolve_options(config, over_configured(config, name, overrides))
    except ConfigError as exc:
        raise ConfigError(
            f"{exc} (operation {name!r}, with the options its code gives)",
            field=exc.field,
            value=exc.value,
            source=exc.source,
        ) from None


def catch_up(
    handler: CoordinationErrorHandler, runner: Runner, name: str, overrides: Mapping[str, Any]
) -> None:
    """``runner``'s plan as the handler's configuration now makes it (a function decorated
    while a reload ran was planned with the settings before it)."""
    config = handler.config
    options = resolve_options(config, over_configured(config, name, overrides))
    if options != runner.plan.options:
        _rebind(runner, Plan(handler._runtime, handler._existing(name), options), overrides)


def _change_for(
    handler: CoordinationErrorHandler,
    op: OperationState,
    options: Options,
    limits: LimitsReload | None,
) -> _OperationChange:
    old: Options = handler._made_with[op.name]
    breaker: CircuitBreakerBackend | None = None
    retune = False
    if old.breaker != options.breaker:
        if same_kind(old.breaker, options.breaker) and hasattr(op.breaker, "retune"):
            retune = True
        else:  # another kind of breaker: a new one (a shared one's state is in its store)
            breaker = handler._make_breaker(op.name, options.breaker)
    others_changed = dataclasses.replace(old, breaker=options.breaker) != options
    if not others_changed:
        return _OperationChange(op, options, None, breaker, retune, frozenset(), False)
    # counted=op: a new budget reads the live operation's counters, which stay with it
    adaptive_slot = None if limits is None else limits.slot(op.name)  # op's, when it stays
    fresh = handler._new_operation(
        op.name, options, breaker=breaker or op.breaker, counted=op, slot=adaptive_slot
    )
    moved = set()
    for slot in OperationState.__slots__:
        if slot in _FIXED or isinstance(getattr(op, slot), ReadableCount):
            continue
        governed = _GOVERNS.get(slot)
        if governed is None or any(
            getattr(old, field, None) != getattr(options, field, None) for field in governed
        ):
            moved.add(slot)
    new_pool = op.pool_workers != fresh.pool_workers or old.bulkhead_wait != options.bulkhead_wait
    return _OperationChange(op, options, fresh, breaker, retune, frozenset(moved), new_pool)


def _apply_operation(handler: CoordinationErrorHandler, change: _OperationChange) -> None:
    op = change.op
    if change.breaker is not None:
        op.breaker = change.breaker
        handler._logger.warning(
            "operation %r: a new circuit breaker (its kind changed: mode, window or slow "
            "calls); the old one's state is not carried over",
            op.name,
            extra=log_extra(op.name, severity=op.severity, breaker=op.breaker),
        )
    elif change.retune:
        retune: Callable[[Any], bool] = op.breaker.retune  # type: ignore[attr-defined]
        if not retune(change.options.breaker):  # same_kind said yes: never expected
            op.breaker = handler._make_breaker(op.name, change.options.breaker)
    if change.fresh is not None:
        for slot in change.moved:
            setattr(op, slot, getattr(change.fresh, slot))
        if change.new_pool:
            pool, op.attempt_pool = op.attempt_pool, None
            if pool is not None:
                pool.close()  # busy workers end with their attempts
    handler._made_with[op.name] = change.options


def _rebind(runner: Runner, plan: Plan, overrides: Mapping[str, Any]) -> None:
    """``runner`` answers its next call with ``plan``: swapped in under the same wrapper
    when it has the shape the runner wrapped for, else through a new wrapper."""
    func = runner.func
    method = runner.GUARD_PREFIX + ("guard_from_start" if plan.from_start else "guard")
    same = runner.wrapped_shape(plan, method) == runner.shape
    runner.rebind(plan)
    if same or func is None:
        runner.redirect = None
        if runner.divert is not None:
            runner.divert(False)
        return
    fresh = type(runner)(plan)
    runner.redirect = cast(Any, fresh).wrap(func)  # SyncRunner / AsyncRunner
    if runner.divert is not None:
        runner.divert(True)
