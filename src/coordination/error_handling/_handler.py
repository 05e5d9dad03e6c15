"""``CoordinationErrorHandler``: one pipeline per operation.

>>> handler = CoordinationErrorHandler({"base_delay": 0})
>>> handler.execute_with_error_handling(len, args=("abc",), error_severity="LOW")
3
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from types import MethodType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .. import _time
from .._bounded import BoundedNames
from .._callables import SyncCallCheck
from .._config import CoordinationConfig, resolve_config
from .._logging import component_logger, log_extra
from .._rate import RateLimit
from .._shared_state import shared_state_for
from ._backends import (
    RAISE,
    BreakerFactory,
    BreakerSettings,
    BreakerTransition,
    CircuitBreakerBackend,
    CircuitState,
    RateLimiterFactory,
)
from ._breaker import memory_breaker_factory
from ._bulkhead import Bulkhead
from ._configured import check_operations, over_configured
from ._options import Options, resolve_options
from ._plan import OperationState, Plan
from ._ratelimit import memory_rate_limiter_factory
from ._reload_log import ReloadLog, ReloadSnapshot
from ._report import ErrorLog, ErrorRecord, build_report, health_of, operation_stats, to_record
from ._runtime import Runtime
from ._severity import ErrorSeverity
from ._snapshot import (
    MAX_TRANSITIONS,
    HandlerSnapshot,
    OperationErrorSnapshot,
    handler_snapshot,
    operation_snapshot,
)
from ._sync_runner import SyncRunner
from ._workers import AttemptPool, default_workers
from ._wrap import name_of, wrap_function

if TYPE_CHECKING:  # imported with the first async call (it loads asyncio)
    from ._adaptive import AdaptiveLimiters, LimiterSlot  # with the first adaptive operation
    from ._async_runner import AsyncRunner
    from ._retry_budget import BudgetSettings, RetryBudgetFactory
    from ._runner import Runner

__all__ = ["CoordinationErrorHandler"]

P = ParamSpec("P")
R = TypeVar("R")
_CALLS = SyncCallCheck()  # which operations must go through aexecute_with_error_handling
_MAX_PLANS = 4096  # cached shapes of execute_with_error_handling calls


class _Calls:
    """One shape of ``execute_with_error_handling`` calls (operation name and options):
    its plan, its runners (made on first use), and the first operation called with it,
    wrapped once like a decorated function (``last``: one tuple, replaced atomically)."""

    __slots__ = ("_async", "_sync", "alast", "last", "plan")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._sync: SyncRunner | None = None
        self._async: AsyncRunner | None = None
        self.last: tuple[Any, Any] = (None, None)
        self.alast: tuple[Any, Any] = (None, None)

    def sync(self) -> SyncRunner:
        runner = self._sync
        if runner is None:
            runner = self._sync = SyncRunner(self.plan)
        return runner

    def async_(self) -> AsyncRunner:
        runner = self._async
        if runner is None:
            from ._async_runner import AsyncRunner

            runner = self._async = AsyncRunner(self.plan)
        return runner


class CoordinationErrorHandler:
    """Retry, circuit breaker, timeout, bulkhead, fallback and rate limit, per operation.

    Each operation name gets its own breaker (one failing dependency does not open the
    others), made by ``breaker_factory``, and, when it has a ``rate_limit``, its own
    limiter, made by ``rate_limiter_factory``, and, when it has a ``retry_budget``, its
    budget, made by ``retry_budget_factory``. A factory left ``None`` is the backend of
    ``config.redis_url`` when that is set (found by the URL's scheme), else the in-memory
    one: ``CircuitBreaker`` (its closed-state success path takes no lock),
    ``InMemoryRateLimiter`` (GCRA) and ``RetryBudget``. ``on_transition`` hooks see
    every breaker state change; ``on_alert`` sees every CRITICAL failure.

    A sync call with a ``timeout`` runs each attempt on the operation's own bounded pool of
    daemon threads (``timeout_workers``, else ``max_concurrent``, else
    ``min(32, CPUs + 4)``); when every worker is busy past ``bulkhead_wait`` the attempt is
    refused with ``BulkheadFull``. Inside a ``Cancellation`` scope a call ends with
    ``OperationCancelled`` before its next attempt once the scope is cancelled or its
    deadline would pass (a backoff wait wakes early; a timed sync attempt stops being
    waited for).
    """

    def __init__(
        self,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        *,
        debug: bool = False,
        clock: _time.Clock | None = None,
        sleep: _time.Sleep | None = None,
        async_sleep: _time.AsyncSleep | None = None,
        breaker_factory: BreakerFactory | None = None,
        rate_limiter_factory: RateLimiterFactory | None = None,
        retry_budget_factory: RetryBudgetFactory | None = None,
        on_transition: Callable[[BreakerTransition], None] | None = None,
        on_alert: Callable[[ErrorRecord], None] | None = None,
        max_recent_errors: int = 100,
    ) -> None:
        self.config = config = resolve_config(config)
        check_operations(config)
        self._logger = component_logger("error_handling", debug=debug or config.debug)
        self._clock = clock or _time.monotonic
        self._sleep = sleep or _time.sleep
        self._async_sleep = async_sleep or _time.async_sleep
        shared = shared_state_for(config)  # redis_url's backend, found by its scheme
        if shared is not None:
            breaker_factory = breaker_factory or shared.breaker
            rate_limiter_factory = rate_limiter_factory or shared.rate_limiter
        self._breaker_factory: BreakerFactory = breaker_factory or memory_breaker_factory
        self._rate_limiter_factory = rate_limiter_factory
        # a shared store's retry budgets (an optional part of a provider's SharedState)
        # (None: the in-memory one, loaded with the first operation that has a budget)
        self._retry_budget_factory: RetryBudgetFactory | None = retry_budget_factory or getattr(
            shared, "retry_budget", None
        )
        self._names = BoundedNames(config.max_operation_names, logger=self._logger)
        self._lock = threading.Lock()
        self._operations: dict[str, OperationState] = {}
        # adaptive_concurrency: one limiter per concurrency_group (else per operation),
        # made with the first adaptive operation
        self._limiters: AdaptiveLimiters | None = None
        # for reloads (_reload): the options each operation was made with, the overrides
        # of its first plan, and every decorated function's runner (weakly: it lives as
        # long as the function), with its operation name and overrides
        self._made_with: dict[str, Options] = {}
        self._first_overrides: dict[str, Mapping[str, Any]] = {}
        self._runners: weakref.WeakKeyDictionary[Runner, tuple[str, Mapping[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )
        self._reload_lock = threading.Lock()
        self.reload_log = ReloadLog()
        self._calls: dict[Any, _Calls] = {}
        # (operation, operation_name, max_retries, error_severity) -> the first operation
        # of each call shape, wrapped: at most one entry per entry of _calls
        self._wrapped: dict[Any, Callable[..., Any]] = {}
        self._log = ErrorLog(max_recent_errors)
        # what every plan is given instead of this handler
        services = (self._attempt_pool, self._record_final_error)
        self._runtime = Runtime(
            self._clock, self._sleep, self._async_sleep, self._logger, self._log, *services
        )
        self._transition_hooks: list[Callable[[BreakerTransition], None]] = []
        # The last state changes of every breaker, for the status page's time axis: one
        # bounded deque per handler (a flapping breaker pushes out older ones, never grows
        # it), appended on the transition path, which is already off the hot path.
        self._transitions: deque[BreakerTransition] = deque(maxlen=MAX_TRANSITIONS)
        if on_transition is not None:
            self._transition_hooks.append(on_transition)
        self._alert_hooks: list[Callable[[ErrorRecord], None]] = []
        if on_alert is not None:
            self._alert_hooks.append(on_alert)

    # --- calling through the handler ------------------------------------------------------

    def execute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        max_retries: int | None = None,
        error_severity: str | ErrorSeverity | None = None,
        operation_name: str | None = None,
        **overrides: Any,
    ) -> Any:
        """Call ``operation(*args, **kwargs)`` through the operation's pipeline."""
        common = not overrides
        if common:  # the usual per-request shape: one lookup, then the wrapped call
            try:
                wrapped = self._wrapped.get(
                    (operation, operation_name, max_retries, error_severity)
                )
            except Exception:  # an unhashable value (or a failing __hash__): the long way
                wrapped = None
            if wrapped is not None:
                result = wrapped(*args, **kwargs) if kwargs else wrapped(*args)
                if type(result) is list and result and result[0] is RAISE:
                    # the open breaker's refusal, raised from this frame; popped, so no
                    # cycle error -> traceback -> this frame -> result -> error
                    raise result.pop()
                return result
        if not callable(operation):
            raise TypeError(f"operation must be callable, not {type(operation).__name__}")
        if _CALLS.returns_awaitable(operation):
            raise TypeError(
                f"{name_of(operation)} is a coroutine function: "
                "use aexecute_with_error_handling (or await handle_errors(...)-decorated code)"
            )
        calls = self._calls_for(operation, max_retries, error_severity, operation_name, overrides)
        last, wrapped = calls.last
        if last is None:  # the first operation of this shape: wrapped once, kept
            wrapped = calls.sync().wrap(operation, refusals_returned=True)
            calls.last = (operation, wrapped)
            if common:
                with contextlib.suppress(Exception):  # unhashable: found by name only
                    self._wrapped[operation, operation_name, max_retries, error_severity] = wrapped
        elif not _same(operation, last):
            return calls.sync().otherwise(operation, args, kwargs or {})
        result = wrapped(*args, **kwargs) if kwargs else wrapped(*args)
        if type(result) is list and result and result[0] is RAISE:
            raise result.pop()
        return result

    async def aexecute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        **error_config: Any,
    ) -> Any:
        """The async twin: ``await operation(*args, **kwargs)`` through the pipeline (the
        same keyword options: ``max_retries``, ``error_severity``, ``operation_name``, ...)."""
        if not callable(operation):
            raise TypeError(f"operation must be callable, not {type(operation).__name__}")
        max_retries = error_config.pop("max_retries", None)
        severity = error_config.pop("error_severity", None)
        name = error_config.pop("operation_name", None)
        calls = self._calls_for(operation, max_retries, severity, name, error_config)
        last, wrapped = calls.alast
        if last is None:
            wrapped = calls.async_().wrap(operation)
            calls.alast = (operation, wrapped)
        elif not _same(operation, last):
            return await calls.async_().otherwise(operation, args, kwargs or {})
        return await (wrapped(*args, **kwargs) if kwargs else wrapped(*args))

    def decorate(self, func: Callable[P, R], **error_config: Any) -> Callable[P, R]:
        """``func`` (sync or async) behind its pipeline, composed once; signature kept."""
        wrapped: Callable[P, R] = wrap_function(self, func, error_config)
        return wrapped

    def snapshot(self) -> HandlerSnapshot:
        """Every operation's counts and breaker, and the errors counted and kept, frozen."""
        by_type, by_severity, recent = self._log.copy()
        snapshot = handler_snapshot(
            self._operation_snapshots(),
            by_type,
            by_severity,
            recent,
            None if self._limiters is None else self._limiters.snapshots(),
        )
        return dataclasses.replace(
            snapshot,
            reloads=self.reload_log.snapshot(),
            # deque.copy() is one C call: no append from a breaker's thread lands halfway
            transitions=tuple(self._transitions.copy()),
            taken_at=self._clock(),
        )

    def get_error_report(self) -> dict[str, Any]:
        """The snapshot as a JSON-serialisable dict: ``status`` (``get_health_status()``'s),
        ``total_operations``, ``successful_operations``, ``failed_operations``,
        ``total_retries``, ``rejected_by_circuit_breaker``, ``errors_by_type`` and
        ``errors_by_severity`` (failed attempts), ``recent_errors`` (the last failed calls,
        messages redacted), ``circuit_breakers`` (``{name: {"state": "CLOSED",
        "transitions": {"CLOSED->OPEN": n, ...}, ...}}``), ``operations``
        (``operation_stats()``) and ``timestamp`` (UTC, ISO 8601)."""
        return build_report(self.snapshot())

    def get_health_status(self) -> dict[str, Any]:
        """``{"status", "reason", "open_breakers", "half_open_breakers", "operations"}``:
        UNHEALTHY when a CRITICAL operation's breaker is open or every operation's breaker
        is open; DEGRADED when any breaker is open or half-open; else HEALTHY. Error counts
        alone do not change it. With adaptive concurrency, ``concurrency_limits`` shows
        each limit (``{group: {"limit", "in_flight", "shed", ...}}``); shedding is the
        limit at work, so it does not change the status either."""
        health = health_of(self._operation_snapshots())
        limiters = self._limiters
        limits = None if limiters is None else limiters.snapshots()
        if limits:
            health["concurrency_limits"] = {group: lim.as_dict() for group, lim in limits.items()}
        return health

    def operation_stats(self) -> dict[str, dict[str, Any]]:
        """``{name: {"calls", "successes", "failures", "retries", "rejections", "timeouts",
        "bulkhead_rejections", "rate_limited", "fallbacks", "hook_errors",
        "retry_budget_exhausted", "hedged_attempts", "hedge_wins", "severity",
        "circuit_state"}}``
        (the counters as ``OperationErrorSnapshot`` defines them)."""
        return operation_stats(self._operation_snapshots())

    def reset_circuit_breaker(self, name: str | None = None) -> None:
        """Close one operation's breaker (``name``) or every breaker (``None``)."""
        self.reset(name)

    def reset(self, operation: str | None = None) -> None:
        """Close the breaker of ``operation`` (or of every operation, ``None``) with empty
        counters; this also ends a ``force_open`` and the open-time growth of re-opens."""
        if operation is None:
            for op in list(self._operations.values()):
                op.breaker.reset()
            return
        self.circuit_breaker(operation).reset()

    def force_open(self, operation: str) -> None:
        """Reject every call of ``operation`` until ``reset(operation)`` (maintenance, a
        known-bad dependency). Under ``breaker_mode="metrics_only"`` the calls still run
        and count as ``would_reject``; under ``"disabled"`` there is no breaker to force
        (a warning is logged)."""
        breaker = self.circuit_breaker(operation)
        if breaker.settings.mode == "disabled":
            self._logger.warning(
                "force_open(%r): the operation's breaker is disabled (breaker_mode), "
                "so its calls are not rejected",
                operation,
                extra=log_extra(operation),
            )
        breaker.force_open()

    def circuit_breaker(self, name: str) -> CircuitBreakerBackend:
        """The breaker of operation ``name`` (made with the defaults if not used yet)."""
        return self._operation(name, None).breaker

    def circuit_states(self) -> dict[str, CircuitState]:
        return {name: op.breaker.state for name, op in list(self._operations.items())}

    def add_transition_hook(self, hook: Callable[[BreakerTransition], None]) -> None:
        self._transition_hooks.append(hook)

    def add_alert_hook(self, hook: Callable[[ErrorRecord], None]) -> None:
        self._alert_hooks.append(hook)

    def config_options(self, **overrides: Any) -> Options:
        return resolve_options(self.config, overrides)

    def close(self) -> None:
        """End the idle worker threads of sync timeouts now, and each busy one when its
        attempt returns (they are daemon threads: none keeps the interpreter alive)."""
        for op in list(self._operations.values()):
            pool, op.attempt_pool = op.attempt_pool, None
            if pool is not None:
                pool.close()

    # --- live reload ------------------------------------------------------------------------

    def reconfigure(
        self,
        config: CoordinationConfig,
        *,
        source: str = "code",
        before_apply: Callable[[], None] | None = None,
    ) -> None:
        """Apply ``config`` to the live operations at once (``docs/live-reload.md``):
        breakers keep their state where their kind is unchanged, decorated functions and
        ``execute_with_error_handling`` take the new options at their next call. A
        ``ConfigError`` (an entry or an operation's options that do not check), or any
        error ``before_apply()`` raises once everything is checked (a set reloading its
        rule files), changes nothing; it is logged, counted (``reload_log``) and raised."""
        from ._reload import prepare  # loaded with the first reload, not by every import

        with self._reload_lock:
            try:
                with self._lock:  # no operation is made meanwhile with the old settings
                    prepared = prepare(self, config)
                    if before_apply is not None:
                        before_apply()
                    prepared.apply()
            except Exception as exc:
                self.reload_log.failed(source, exc)
                self._logger.error(
                    "configuration not reloaded from %s: %s",
                    source,
                    exc,
                    extra=log_extra(source=str(source), error_type=type(exc).__name__),
                )
                raise
            self.reload_log.succeeded(source)
            self._logger.info(
                "configuration reloaded from %s", source, extra=log_extra(source=str(source))
            )

    def reload_snapshot(self) -> ReloadSnapshot:
        """The reloads applied and refused, and the last of each."""
        return self.reload_log.snapshot()

    def _track(self, runner: Runner, name: str, overrides: Mapping[str, Any]) -> None:
        """Keep ``runner`` (a decorated function's) for reloads, as long as it lives; a
        plan made just before a reload that missed the runner is brought up to date."""
        with self._reload_lock:
            with self._lock:
                self._runners[runner] = (name, dict(overrides))
            if self.reload_log.snapshot().reloads:
                from ._reload import catch_up  # only after a reload

                catch_up(self, runner, name, overrides)

    def _live_operations(self) -> list[tuple[str, OperationState]]:
        return list(self._operations.items())

    def _tracked_runners(self) -> list[tuple[Runner, tuple[str, Mapping[str, Any]]]]:
        return list(self._runners.items())

    def _existing(self, name: str) -> OperationState:
        return self._operations[self._names.admit(name)]

    def _reconfigured(self, config: CoordinationConfig) -> None:
        """The last step of a reload: the new settings for what is made from now on."""
        self.config = config
        self._calls = {}  # execute_with_error_handling's shapes: planned again
        self._wrapped = {}

    # --- building plans -------------------------------------------------------------------

    def plan(self, name: str, overrides: Mapping[str, Any]) -> Plan:
        """A new plan for operation ``name`` (the decorators keep theirs): ``overrides``
        over the configuration's ``operations[name]`` over its settings."""
        options = resolve_options(self.config, over_configured(self.config, name, overrides))
        return Plan(self._runtime, self._operation(name, options, overrides), options)

    def _calls_for(
        self,
        operation: Callable[..., Any],
        max_retries: int | None,
        severity: str | ErrorSeverity | None,
        operation_name: str | None,
        overrides: dict[str, Any],
    ) -> _Calls:
        """The cached shape of these calls; the key of the common one (no overrides) is
        the tuple ``execute_with_error_handling`` looks up before it gets here."""
        name = operation_name or name_of(operation)
        others = bool(overrides)  # options beyond the common three: keyed by all of them
        key: Any = (name, max_retries, severity)
        if max_retries is not None:
            overrides["max_retries"] = max_retries
        if severity is not None:  # None: the configuration's error_severity
            overrides["error_severity"] = severity
        try:
            if others:
                key = (name, frozenset(overrides.items()))
            calls = self._calls.get(key)
        except TypeError:  # an unhashable override (a list of types): built each time
            return _Calls(self.plan(name, overrides))
        if calls is None:
            calls = _Calls(self.plan(name, overrides))
            if len(self._calls) >= _MAX_PLANS:
                self._calls.clear()
                self._wrapped.clear()
            self._calls[key] = calls
        return calls

    def _operation(
        self, name: str, options: Options | None, overrides: Mapping[str, Any] | None = None
    ) -> OperationState:
        """The state of operation ``name``; the first plan's options fix its breaker,
        bulkhead and rate limit (``None``: just look it up, made with the configuration's
        options for it)."""
        given, name = name, self._names.admit(name)
        op = self._operations.get(name)
        if op is None:
            # resolved outside the lock (it may import the dotted names an entry gives)
            chosen = options or resolve_options(
                self.config, over_configured(self.config, given, {})
            )
            with self._lock:
                op = self._operations.get(name)
                if op is None:
                    op = self._new_operation(name, chosen)
                    self._operations[name] = op
                    self._made_with[name] = chosen
                    self._first_overrides[name] = dict(overrides or {})
                    return op
        if options is not None:
            op.severity = options.severity.value
            self._warn_if_different(op, options)
        return op

    def _make_breaker(self, name: str, settings: BreakerSettings) -> CircuitBreakerBackend:
        if settings.mode == "normal":
            return self._breaker_factory(
                name, settings, clock=self._clock, on_transition=self._on_transition
            )
        # chosen once, here: the normal mode keeps the factory's breaker as it is
        from ._breaker_modes import with_mode

        make = self._breaker_factory
        return with_mode(
            settings,
            name,
            lambda: make(name, settings, clock=self._clock, on_transition=self._on_transition),
            self._clock,
        )

    def _new_operation(
        self,
        name: str,
        options: Options,
        *,
        breaker: CircuitBreakerBackend | None = None,
        counted: OperationState | None = None,
        slot: LimiterSlot | None = None,
    ) -> OperationState:
        """A new operation's state as ``options`` make it (``breaker``: this one, kept;
        ``counted``: the live operation whose call counters its retry budget reads, when a
        reload makes components for it; ``slot``: its adaptive limit's, a reload's)."""
        if breaker is None:
            breaker = self._make_breaker(name, options.breaker)
        op = OperationState(name, breaker, options.severity.value)
        op.pool_workers = _pool_workers(options)
        if options.rate_limit is not None:
            factory = self._rate_limiter_factory or memory_rate_limiter_factory
            op.limiter = factory(options.rate_limit, clock=self._clock)
        if options.adaptive_concurrency:  # in place of max_concurrent's fixed bulkhead
            op.bulkhead = slot or self._adaptive_limiters().slot_for(name, options)
        elif options.max_concurrent is not None:
            op.bulkhead = Bulkhead(name, options.max_concurrent, options.bulkhead_wait)
        budget = _budget_settings(options)
        if budget is not None:  # it reads the operation's own call counters when asked
            from ._retry_budget import calls_of, memory_retry_budget_factory

            make_budget = self._retry_budget_factory or memory_retry_budget_factory
            op.budget_settings = budget
            op.retry_budget = make_budget(
                name, budget, calls=calls_of(counted or op), clock=self._clock
            )
        return op

    def _adaptive_limiters(self) -> AdaptiveLimiters:
        """The registry of adaptive limits (made, under ``_lock``, by the first one)."""
        limiters = self._limiters
        if limiters is None:
            from ._adaptive import AdaptiveLimiters

            limiters = self._limiters = AdaptiveLimiters(
                self.config.max_operation_names, self._clock, self._logger
            )
        return limiters

    def _warn_if_different(self, op: OperationState, options: Options) -> None:
        """Say so when a later plan asks an operation for other breaker/bulkhead/limits."""
        bulkhead = op.bulkhead.max_concurrent if type(op.bulkhead) is Bulkhead else None
        adaptive = op.bulkhead is not None and type(op.bulkhead) is not Bulkhead
        rate = RateLimit.of(op.limiter.rate) if op.limiter is not None else None
        if (
            op.breaker.settings != options.breaker
            or (bulkhead != options.max_concurrent and not adaptive)
            or adaptive != options.adaptive_concurrency
            or rate != options.rate_limit
            or op.budget_settings != _budget_settings(options)
            or (options.timeout_workers is not None and op.pool_workers != _pool_workers(options))
        ):
            self._logger.warning(
                "operation %r already has its circuit breaker, bulkhead, rate limit, retry "
                "budget and timeout workers from its first use; different settings given later are "
                "ignored (give "
                "this use its own operation_name to keep them)",
                op.name,
                extra=log_extra(op.name, severity=op.severity, breaker=op.breaker),
            )

    def _operation_snapshots(self) -> list[OperationErrorSnapshot]:
        return [
            operation_snapshot(op, op.breaker.snapshot()) for op in list(self._operations.values())
        ]

    def _attempt_pool(self, op: OperationState, options: Options) -> AttemptPool:
        """The operation's own timeout workers, made on its first timed sync attempt."""
        with self._lock:
            pool = op.attempt_pool
            if pool is None:
                pool = op.attempt_pool = AttemptPool(
                    op.name, op.pool_workers, options.bulkhead_wait
                )
            return pool

    # --- records and hooks (failure paths only) -------------------------------------------

    def _record_final_error(
        self,
        op: OperationState,
        exc: BaseException,
        severity: ErrorSeverity,
        attempts: int,
        level: int,
        critical: bool,
    ) -> None:
        """Keep a failed call; log it at ``level`` and alert when ``critical`` (both
        precomputed by the plan: enum lookups cost more than the rest of this path)."""
        raw = self._log.add(op.name, exc, severity, attempts)
        if self._logger.isEnabledFor(level):
            record = to_record(raw)
            self._logger.log(
                level,
                "operation %r failed after %d attempt(s) [%s]: %s: %s",
                op.name,
                attempts,
                severity.value,
                record.error_type,
                record.message,
                extra=log_extra(
                    op.name,
                    severity=severity,
                    attempt=attempts,
                    breaker=op.breaker,
                    error_type=record.error_type,
                ),
            )
        if critical and self._alert_hooks:
            record = to_record(raw)
            for hook in list(self._alert_hooks):
                self._call_hook(hook, record, "alert")

    def _on_transition(self, transition: BreakerTransition) -> None:
        self._transitions.append(transition)
        level = logging.WARNING if transition.new is CircuitState.OPEN else logging.INFO
        self._logger.log(
            level,
            "circuit breaker %r: %s -> %s (%s)",
            transition.name,
            transition.old.value,
            transition.new.value,
            transition.reason,
            extra=log_extra(
                transition.name,
                breaker_state=transition.new,
                previous_breaker_state=transition.old,
                reason=transition.reason,
            ),
        )
        for hook in list(self._transition_hooks):
            self._call_hook(hook, transition, "transition")

    def _call_hook(self, hook: Callable[[Any], None], arg: Any, kind: str) -> None:
        try:
            hook(arg)
        except Exception:  # a broken hook must never break the protected call
            operation = getattr(arg, "operation", None) or getattr(arg, "name", None)
            self._logger.exception(
                "%s hook %r failed", kind, hook, extra=log_extra(operation, hook=kind)
            )


def _same(operation: Any, seen: Any) -> bool:
    """``operation`` is the callable ``seen`` (a bound method is made anew at each access,
    equal when its object and function are the same; compared without user code)."""
    return operation is seen or (type(operation) is MethodType and operation == seen)


def _pool_workers(options: Options) -> int:
    """Worker threads for the operation's sync attempts with a timeout: ``timeout_workers``,
    else ``max_concurrent`` (a bulkhead never lets more attempts run) or, with an adaptive
    limit, ``max_concurrency`` (the most it lets run; workers start on demand), else the
    default."""
    if options.timeout_workers:
        return options.timeout_workers
    if options.adaptive_concurrency:
        return options.max_concurrency
    return options.max_concurrent or default_workers()


def _budget_settings(options: Options) -> BudgetSettings | None:
    """The retry budget ``options`` ask for; its module is loaded only when there is one
    (``handle_errors`` alone stays within its import budget, tests/test_import_cost.py)."""
    if options.retry_budget is None:
        return None
    from ._retry_budget import budget_settings

    return budget_settings(options)
