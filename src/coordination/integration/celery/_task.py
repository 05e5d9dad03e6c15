"""coordinated_task and CoordinatedTask: the implementation (see the package's docstring)."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import celery
from celery.exceptions import Reject, Retry
from celery.local import Proxy
from kombu.asynchronous import get_event_loop

from ..._config import CoordinationConfig
from ..._counting import ReadableCount
from ..._defaults import EVENT_DOORS, ComponentSet, forget_door, register_door
from ..._door_spans import task_publish_span, task_span
from ..._errors import (
    BulkheadFull,
    CircuitOpenError,
    EventDeadLettered,
    InvalidEvent,
    RateLimitExceeded,
    ValidationError,
)
from ..._events_snapshot import EventsSnapshot, read_store
from ..._logging import log_extra
from ..._redact import error_text, redact
from ..._time import perf_counter
from ..._tracing import (
    ATTRIBUTE_BREAKER_STATE,
    ATTRIBUTE_SEVERITY,
    DOORS,
    current_tracer,
    exception_event,
    inject_context,
    watch_doors,
)
from ...error_handling._plan import GIVE_UP, Plan, RetryState, advance
from ...error_handling._sync_runner import SyncRunner
from ...performance import CoordinationPerformanceMonitor, track_performance
from .._components import (
    CoordinatedDoor,
    ErrorHandlerLike,
    MonitorLike,
    ValidatorLike,
    prepare_rules,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from .._dead_letters import DeadLetter, LetterStore, ReplayReport

__all__ = ["CoordinatedTask", "InvalidTask", "TaskDeadLettered", "coordinated_task"]

# headers the task's progress travels in from one delivery to the next
FAILURES = "coordination_failures"
REQUEUES = "coordination_requeues"
WAIT = "coordination_wait"
STARTED = "coordination_started"
_OURS = (FAILURES, REQUEUES, WAIT, STARTED)
# the publisher's trace context, where OpenTelemetry's Celery instrumentation puts it (a
# custom header each); a re-send (task.retry) keeps the request's custom headers, so every
# delivery joins the publisher's trace (test_celery_worker_spans.py)
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
ATTRIBUTE_ATTEMPT = "coordination.attempt"  # this delivery's attempt, 1 for the first

DEFAULT_MAX_REQUEUES = 100
DEFAULT_REQUEUE_DELAY = 1.0  # a refusal that names no retry_after (a full bulkhead)
_REFUSALS = (CircuitOpenError, RateLimitExceeded, BulkheadFull)
# Celery's own retry options: the operation's error_config decides retries here
_RETRY_OPTIONS = frozenset(
    {
        "autoretry_for",
        "dont_autoretry_for",
        "max_retries",
        "retry_backoff",
        "retry_backoff_max",
        "retry_jitter",
        "retry_kwargs",
        "default_retry_delay",
    }
)


class TaskDeadLettered(EventDeadLettered):
    """A task was stored as a dead letter instead of run again (Celery marks it FAILURE).

    Its ``args`` are its constructor's, so Celery's result backends rebuild it on the
    caller's side. ``reason``: ``invalid``, ``check_failed``, ``failed`` or
    ``requeue_limit``, then the error.
    """

    def __init__(self, task_name: str, dead_letter_id: str | int, reason: str) -> None:
        super().__init__(task_name, dead_letter_id, reason)
        self.task_name = task_name
        self.args = (task_name, dead_letter_id, reason)

    def __str__(self) -> str:
        return redact(
            f"task {self.task_name!r} was dead-lettered (id {self.dead_letter_id}): {self.reason}"
        )


class InvalidTask(TaskDeadLettered, InvalidEvent):
    """A task's arguments broke its rules: dead-lettered (reason ``invalid``), never run;
    also a ``ValidationError`` carrying ``errors`` and ``rule_set`` (in this process)."""


class _RetryDue(BaseException):
    """The plan decided a retry: it is Celery's to make (raised out of the steps, which
    give the breaker permit back for it, as for an interrupted sleep). A BaseException
    so that neither the steps nor the runner take it for the attempt's failure."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class _Progress:
    """Where one task is between deliveries (read from its message headers)."""

    __slots__ = ("failures", "first", "requeues", "started", "wait")

    def __init__(
        self,
        failures: int = 0,
        requeues: int = 0,
        wait: float | None = None,
        started: float | None = None,
    ) -> None:
        self.failures = failures
        self.requeues = requeues
        self.wait = wait
        self.started = started  # wall-clock time of the first failure
        # no attempt failed before this delivery: it starts the task afresh
        self.first = failures == 0 and wait is None and started is None


_FRESH = _Progress()  # a delivery carrying none of our headers (shared: never written)
_NO_HEADERS: Mapping[str, Any] = {}


def _progress_of(request: Any) -> _Progress:
    """The task's progress from the request's custom headers: Celery keeps them in
    ``request.headers`` (eager runs, some versions) or as attributes of the request (the
    worker's protocol 2); a header in ``request.headers`` comes first. Four lookups, no
    copy; none of ours (a first delivery): ``_FRESH``."""
    headers = getattr(request, "headers", None)
    if headers is None or not isinstance(headers, Mapping):  # (None: Celery's "no custom")
        headers = _NO_HEADERS
    fields = getattr(request, "__dict__", _NO_HEADERS)
    if not headers and (
        FAILURES not in fields
        and REQUEUES not in fields
        and WAIT not in fields
        and STARTED not in fields
    ):
        return _FRESH
    return _Progress(
        _whole(_header(headers, fields, FAILURES)),
        _whole(_header(headers, fields, REQUEUES)),
        _seconds(_header(headers, fields, WAIT)),
        _seconds(_header(headers, fields, STARTED)),
    )


def _header(headers: Mapping[str, Any], fields: Mapping[str, Any], key: str) -> Any:
    return headers[key] if key in headers else fields.get(key)


def _custom_headers(request: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The message's custom headers of ``names`` (and every one in ``request.headers``),
    wherever Celery keeps them (see ``_progress_of``)."""
    headers = getattr(request, "headers", None)
    found = dict(headers) if isinstance(headers, Mapping) else {}
    for key in names:
        if key not in found:
            value = request.__dict__.get(key) if hasattr(request, "__dict__") else None
            if value is not None:
                found[key] = value
    return found


_MAX_COUNT = 10**9  # a count in a header past this is not ours: read as none


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int) and 0 <= value < _MAX_COUNT:  # (a store's column is 64-bit)
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    return 0


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            seconds = float(value)
        except ValueError:
            return None
        if 0 <= seconds < float("inf"):
            return seconds
    return None


class _Attempt(threading.local):
    """The attempt the steps are making in this thread's delivery of a task: its
    ``state`` (None between deliveries) and ``start``, the attempt the delivery began at
    (the task's failed attempts before it)."""

    state: RetryState | None = None
    start = 0


class _RetryGate:
    """The operation's breaker, as this task's plan sees it: the acquire of a retry (an
    attempt after this delivery's first) raises ``_RetryDue`` instead, so the retry is
    counted (and its breaker permit asked) once, by the delivery that makes it."""

    __slots__ = ("_breaker", "_door", "_plan")

    def __init__(self, plan: Plan, door: CoordinatedTask) -> None:
        self._breaker = plan.breaker
        self._door = door
        self._plan = plan

    def acquire(self) -> None:
        attempt = self._door._attempt
        state = attempt.state
        if state is not None and state.attempt > attempt.start:
            if state.details is not None:  # the on_retry hooks hear of it now, with its wait
                self._plan.retried(state)
            raise _RetryDue(state.wait)
        self._breaker.acquire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._breaker, name)


class _TaskRunner(SyncRunner):
    """The operation's sync runner, making one attempt per delivery: the plan's steps
    run from the task's failed attempts so far; the retry they decide is raised as
    ``_RetryDue`` (a Celery retry) instead of slept.

    ``first``: a first delivery's call when the plan has nothing to do before it (no
    admission, timeout or hedging; a breaker whose guard may take the calls; no results
    to look at), composed once as ``SyncRunner.wrap`` does: the breaker's closed path
    around the timed body; a failure, a refusal or a breaker not CLOSED is handed over to
    the steps, which decide the retry (``_RetryDue``) as for any delivery."""

    __slots__ = ("door", "first")

    def __init__(self, plan: Plan, door: CoordinatedTask) -> None:
        # this runner's own plan: its breaker behind the gate, and the breakers' combined
        # "record the failure and acquire the retry's permit" left out (the retry's acquire
        # belongs to the next delivery)
        plan.breaker = cast(Any, _RetryGate(plan, door))
        plan.failure_acquire = None
        plan.failure_spend_acquire = None
        super().__init__(plan)
        self.door = door
        self.first = self._first_path()

    def _first_path(self) -> Callable[..., Any] | None:
        plan = self.plan
        if plan.looks_at_results:  # the steps tell the breaker what a result counts as
            return None
        method = "guard_from_start" if plan.from_start else "guard"
        guard = self.breaker_guard(method)
        if guard is None:
            return None
        handovers: dict[str, Any] = {
            "successes": plan.op.successes,
            "otherwise": self._otherwise,
            "refused": self.refused,
        }
        if plan.from_start:
            handovers["failed_since"] = self._failed_since
        else:
            handovers["failed"] = self._failed
        # not watch_tracing(): the delivery's span is the door's (CoordinatedTask._traced),
        # and a reload plans a new runner (CoordinatedTask._task_runner)
        return cast(Callable[..., Any], guard(self._timed(self.door.func), **handovers))

    def _timed(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` timed into the monitor as ``one_attempt`` times an attempt. The
        library's monitor, timing on the same clock, records through its composed path
        (``track_performance``'s: the same records, the recorder looked up once); another
        through ``record_duration``; nothing to time without a monitor."""
        monitor = self.door._monitor
        if monitor is None:
            return func
        name = self.door.operation_name
        if isinstance(monitor, CoordinationPerformanceMonitor):
            hot = monitor.hot_path(name)
            if hot is not None and hot[1] is perf_counter:
                return track_performance(name, monitor=monitor)(func)
        record_duration = monitor.record_duration

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = perf_counter()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                record_duration(name, perf_counter() - began, False, exc)
                raise
            record_duration(name, perf_counter() - began)  # (success, as the other doors)
            return result

        return timed

    # the guard's hand-overs: given the timed body, they run the task's own (the steps
    # time each attempt themselves); the guard takes first deliveries only, so the steps
    # start from a fresh progress (the re-queues, which they do not read, aside)

    def _otherwise(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        return self.run(self.door.func, args, kwargs)

    def _failed(self, func: Callable[..., Any], args: Any, kwargs: Any, exc: Exception) -> Any:
        return self.attempts(self.door.func, args, kwargs, exc)

    def _failed_since(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        exc: Exception,
        started: float | None = None,
    ) -> Any:
        state = self.plan.new_state(None)
        state.started = started
        return self.attempts(self.door.func, args, kwargs, exc, state)

    def run(
        self, func: Callable[..., Any], args: Any, kwargs: Any, progress: _Progress = _FRESH
    ) -> Any:
        """``SyncRunner.run`` from the task's ``progress``, the admitted call's sample
        being the attempt's own error when the retry is Celery's (not the signal that
        hands it over)."""
        plan = self.plan
        admission = plan.admission
        if admission is None:
            return self.attempts(func, args, kwargs, progress=progress)
        try:
            entry = admission.admit()
        except _REFUSALS as exc:
            return plan.not_admitted(exc, args, kwargs)
        state = plan.new_state(None)
        state.slot = admission.bulkhead
        state.holds_slot = admission.bulkhead is not None
        try:
            result = self.attempts(
                func, args, kwargs, None, state, admission.acquires_breaker, progress
            )
        except _RetryDue:
            admission.leave(entry, state, state.last)
            raise
        except BaseException as exc:  # how the call ended: an adaptive limit's sample
            admission.leave(entry, state, exc)
            raise
        admission.leave(entry, state, None)
        return result

    def attempts(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        pending: Exception | None = None,
        state: RetryState | None = None,
        acquired: bool = False,
        progress: _Progress = _FRESH,
    ) -> Any:
        """The steps from this delivery's first attempt, the task's failed ones so far
        in ``progress``; ``pending``: its error, when the breaker's guard made it
        (``first``)."""
        plan = self.plan
        if state is None:
            state = plan.new_state(None)
        start = state.attempt = progress.failures
        self.door._attempt.start = start
        if progress.wait is not None:
            state.previous = progress.wait
        clock = plan.runtime.clock
        if progress.started is not None:  # the call's start, for the time budget (the
            # first failure's wall-clock time: the only clock another process can share)
            state.started = clock() - max(0.0, time.time() - progress.started)
        self.door._attempt.state = state
        timed_call = None if self.timeout is None and plan.hedging is None else self._call_once
        record = self.door._record

        def one_attempt(func: Callable[..., Any], args: Any, kwargs: Any, st: RetryState) -> Any:
            if st.attempt > start:  # a retry: Celery's to make, after the plan's wait
                raise _RetryDue(st.wait)
            began = perf_counter()
            try:
                result = (
                    func(*args, **kwargs)
                    if timed_call is None
                    else timed_call(func, args, kwargs, st)
                )
            except Exception as exc:
                record(perf_counter() - began, exc)
                raise
            record(perf_counter() - began, None)
            return result

        steps = plan.steps(
            state,
            acquired=acquired,
            pending=pending,
            call=(func, args, kwargs),
            call_once=one_attempt,
        )
        failure: Exception | None = None
        while (command := advance(steps, None, failure)) >= 0:
            failure = None
            # SLEEP (the backoff's wait) or ENTER (a retry's slot): the retry decided is
            # Celery's to make, with that wait as its countdown; the permit goes back
            steps.close()
            self.breaker.release()
            raise _RetryDue(state.wait)
        ending = -1 - command
        if ending == GIVE_UP:
            return plan.give_up(cast(Exception, state.error), state.attempt, args, kwargs)
        return plan.conclude(state, ending, args, kwargs)


class CoordinatedTask(CoordinatedDoor):
    """What ``coordinated_task`` puts around one task: its components, plan, dead letters
    and counts; reachable as ``task.coordination``."""

    def __init__(
        self,
        app: celery.Celery,
        func: Callable[..., Any],
        name: str,
        *,
        bind: bool,
        validation_rules: Any,
        error_config: Mapping[str, Any] | None,
        operation_name: str | None,
        max_requeues: int,
        validator: ValidatorLike | None,
        error_handler: ErrorHandlerLike | None,
        performance_monitor: MonitorLike | None,
        config: CoordinationConfig | Mapping[str, Any] | None,
        coordination: ComponentSet | None,
        debug: bool,
    ) -> None:
        self._set_up(config, validator, error_handler, performance_monitor, debug, coordination)
        if not callable(getattr(self.error_handler, "plan", None)):
            raise TypeError(
                "coordinated_task needs the library's CoordinationErrorHandler (its plan() "
                f"decides each retry), not {type(self.error_handler).__name__}"
            )
        self.app = app
        self.func = func
        self.task_name = name
        self.operation_name = operation_name or name
        self._bind = bind
        self.max_requeues = max_requeues
        self._options = self._with_operation_defaults(error_config) or {}
        cfg = self.config
        self._validate: Callable[[tuple[Any, ...], Mapping[str, Any]], None] | None = None
        if cfg.enable_validation and validation_rules is not None:
            self._validate = self._validator_for(validation_rules)
        self._monitor = self.performance_monitor if cfg.enable_performance_monitoring else None
        self._lock = threading.Lock()
        self._runner: _TaskRunner | None = None
        self._runner_config: object = None
        self._store: LetterStore | None = None
        # its own lock: a store slow to open (a reader's first count, on its thread) holds
        # up no delivery planning its runner
        self._store_lock = threading.Lock()
        self._attempt = _Attempt()  # the steps' attempt on this thread, None between
        self.task: celery.Task | None = None  # set once the task is made
        self.succeeded = ReadableCount()
        self.failed = ReadableCount()  # final failures (then dead-lettered)
        self.retried = ReadableCount()  # re-sent after a failed attempt
        self.requeued = ReadableCount()  # re-sent after a refusal (breaker, limits)
        self.invalid = ReadableCount()
        self.dead_lettered = ReadableCount()
        self._letters = _TaskLetters(self)
        register_door(EVENT_DOORS, self.performance_monitor, self)  # the readers find it
        watch_doors()  # each delivery reads _tracing.DOORS.on, kept true while spans are on

    # --- what runs at each delivery -----------------------------------------------------

    def _validator_for(self, rules: Any) -> Callable[[tuple[Any, ...], Mapping[str, Any]], None]:
        from ...validation._arguments import CallMessages, rule_fields

        rule_set = prepare_rules(self.validator, rules, self.operation_name)
        message = CallMessages(self.func).message
        fields = rule_fields(self.validator, rule_set)
        ensure_valid = self.validator.ensure_valid

        def validate(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
            ensure_valid(message(args, kwargs, fields()), rule_set)

        return validate

    def _task_runner(self) -> _TaskRunner:
        """The operation's runner, planned again after the handler is reloaded."""
        handler: Any = self.error_handler
        runner = self._runner
        if runner is None or self._runner_config is not handler.config:
            with self._lock:
                runner = self._runner
                if runner is None or self._runner_config is not handler.config:
                    plan = handler.plan(self.operation_name, self._options)
                    runner = self._runner = _TaskRunner(plan, self)
                    self._runner_config = handler.config
        return runner

    def _record(self, seconds: float, error: Exception | None) -> None:
        """One run of the body, timed (every delivery that ran it)."""
        if self._monitor is not None:
            self._monitor.record_duration(
                self.operation_name, seconds, success=error is None, error=error
            )

    def run(self, task: celery.Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One delivery of the task (what the worker calls); a late-acked one wakes the
        worker's loop as it ends, so that its ack goes out at once."""
        try:
            # inside its span while the library's spans are on (DOORS.on: an attribute read)
            if DOORS.on:
                tracer = current_tracer()
                if tracer is not None:
                    return self._traced(tracer, task, args, kwargs)
            return self._run(task, args, kwargs)
        finally:
            if task.acks_late:
                _wake_workers_loop()

    def _traced(
        self, tracer: Tracer, task: celery.Task, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``_run`` inside the delivery's CONSUMER span, named by the operation: what a
        protected call's span says (severity, attempt, breaker state, outcome), joined to
        the publisher's trace when the task's headers carry its ``traceparent``. A retry
        or a re-queue is this delivery's outcome, not an error of the task: its exception
        is an event; a dead letter is the task's failure (ERROR, the handler's error)."""
        request = task.request
        headers = _custom_headers(request, _TRACE_HEADERS)
        attributes: dict[str, Any] = {
            "messaging.system": "celery",
            "coordination.celery.task": self.task_name,
            ATTRIBUTE_ATTEMPT: _progress_of(request).failures + 1,
        }
        if isinstance(request.id, str):
            attributes["messaging.message.id"] = request.id
        runner = self._task_runner()
        attributes[ATTRIBUTE_SEVERITY] = runner.plan.options.severity.name
        with task_span(tracer, self.operation_name, headers, attributes) as block:
            try:
                result = self._run(task, args, kwargs)
            except Retry as retry:
                block.settled = retry
                cause = retry.exc
                refused = isinstance(cause, _REFUSALS)
                block.outcome = "requeued" if refused else "retry"
                if isinstance(cause, BaseException):
                    exception_event(block.span, cause)
                raise
            finally:
                breaker = runner.plan.breaker
                if not breaker.blocking:  # a shared breaker's state is a round trip
                    block.span.set_attribute(ATTRIBUTE_BREAKER_STATE, breaker.state.value)
            block.outcome = "success"
            return result

    def _publish_traced(
        self,
        tracer: Tracer,
        publish: Callable[..., Any],
        positional: tuple[Any, ...],
        options: dict[str, Any],
    ) -> Any:
        """``publish`` (Celery's ``apply_async``) inside the PRODUCER span ``"<operation>
        publish"``, the task's headers carrying its context: the worker's delivery span is
        its child, so a request's trace goes on into its tasks. A publish that fails is an
        ERROR span, and its error reaches the caller unchanged."""
        given = options.get("headers")
        headers: dict[str, Any] = dict(given) if given else {}
        with task_publish_span(tracer, self.operation_name, self.task_name) as block:
            inject_context(headers)
            result = publish(*positional, **{**options, "headers": headers})
            task_id = getattr(result, "id", None)
            if isinstance(task_id, str):
                block.span.set_attribute("messaging.message.id", task_id)
            return result

    def _run(self, task: celery.Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request = task.request
        progress = _progress_of(request)
        call_args = (task, *args) if self._bind else args
        if self._validate is not None:
            try:
                self._validate(call_args, kwargs)
            except ValidationError as exc:
                next(self.invalid)
                raise self._dead_letter(request, args, kwargs, exc, "invalid", 0) from exc
            except Exception as exc:  # a call that fits no signature, a broken rule set
                next(self.invalid)
                reason = "invalid" if isinstance(exc, TypeError) else "check_failed"
                raise self._dead_letter(request, args, kwargs, exc, reason, 0) from exc
        runner = self._task_runner()
        try:
            first = runner.first
            if first is not None and progress.first:  # the breaker's closed path
                result = first(*call_args, **kwargs)
            else:
                result = runner.run(self.func, call_args, kwargs, progress)
        except _RetryDue as due:
            state = cast(RetryState, self._attempt.state)
            next(self.retried)
            raise self._resend(task, progress, state, due.wait, state.last, args, kwargs) from None
        except _REFUSALS as exc:  # before this delivery's attempt: nothing ran
            return self._requeue(task, request, progress, args, kwargs, exc)
        except Exception as exc:
            next(self.failed)
            made = self._attempt.state
            attempts = made.attempt if made is not None else progress.failures
            raise self._dead_letter(request, args, kwargs, exc, "failed", attempts) from exc
        finally:
            self._attempt.state = None
        next(self.succeeded)
        return result

    def _resend(
        self,
        task: celery.Task,
        progress: _Progress,
        state: RetryState,
        countdown: float,
        error: BaseException | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Retry:
        started = progress.started if progress.started is not None else time.time()
        headers = {
            FAILURES: state.attempt,
            REQUEUES: progress.requeues,
            WAIT: state.previous,
            STARTED: started,
        }
        return self._retry(task, countdown, error, headers, args, kwargs)

    def _requeue(
        self,
        task: celery.Task,
        request: Any,
        progress: _Progress,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        refusal: Exception,
    ) -> Any:
        if progress.requeues >= self.max_requeues:
            next(self.failed)
            raise self._dead_letter(
                request, args, kwargs, refusal, "requeue_limit", progress.failures
            ) from refusal
        next(self.requeued)
        headers: dict[str, Any] = {
            FAILURES: progress.failures,
            REQUEUES: progress.requeues + 1,
        }
        if progress.wait is not None:
            headers[WAIT] = progress.wait
        if progress.started is not None:
            headers[STARTED] = progress.started
        raise self._retry(task, _retry_after(refusal), refusal, headers, args, kwargs) from None

    def _retry(
        self,
        task: celery.Task,
        countdown: float,
        error: BaseException | None,
        headers: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Retry:
        request = task.request
        given = getattr(request, "headers", None)
        kept = (
            {k: v for k, v in given.items() if k not in _OURS} if isinstance(given, Mapping) else {}
        )
        try:
            return task.retry(
                countdown=countdown,
                exc=error if isinstance(error, Exception) else None,
                headers={**kept, **headers},
                max_retries=None,
            )
        except Reject as exc:
            # The re-send could not be published (the broker went away meanwhile): Celery
            # would drop the message; it is kept as a dead letter instead, for replay().
            cause = exc.reason if isinstance(exc.reason, Exception) else exc
            raise self._dead_letter(
                request, args, kwargs, cause, "resend_failed", _whole(headers.get(FAILURES))
            ) from exc

    # --- dead letters -------------------------------------------------------------------

    @property
    def dead_letters(self) -> LetterStore:
        """The store this task's dead letters go to (opened on first use)."""
        store = self._store
        if store is None:
            with self._store_lock:
                store = self._store
                if store is None:
                    from .._dead_letter_stores import open_dead_letter_store

                    store = open_dead_letter_store(
                        self.config.dead_letter_path, self.config.dead_letter_namespace
                    )
                    store.bind(self._replay_one)
                    self._store = store
        return store

    def _dead_letter(
        self,
        request: Any,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        error: Exception,
        reason: str,
        attempts: int,
    ) -> TaskDeadLettered:
        event = {"args": list(args), "kwargs": dict(kwargs), "task_id": request.id}
        letter_id = self.dead_letters.dead_letter(
            None,
            event,
            self.task_name,
            reason=reason,
            error=error,
            attempts=attempts,
            key=None,
        )
        next(self.dead_lettered)
        message = error_text(error, 500)
        self._logger.warning(
            "task %s[%s] dead-lettered (id %d, %s after %d failed attempt(s)): %s: %s",
            self.task_name,
            request.id,
            letter_id,
            reason,
            attempts,
            type(error).__name__,
            message,
            extra=log_extra(
                self.task_name,
                attempt=attempts,
                task_id=request.id,
                dead_letter_id=letter_id,
                reason=reason,
                error_type=type(error).__name__,
            ),
        )
        if isinstance(error, ValidationError):
            invalid = InvalidTask(self.task_name, letter_id, f"{reason}: {message}")
            invalid.errors = list(error.errors)
            invalid.rule_set = error.rule_set
            return invalid
        return TaskDeadLettered(self.task_name, letter_id, f"{reason}: {message}")

    def _replay_one(self, event: Any, event_type: str) -> Any:
        """Send a dead-lettered task again (a fresh task: retries and re-queues anew)."""
        if not isinstance(event, Mapping) or not isinstance(event.get("args"), list):
            raise ValueError("this dead letter holds no task arguments")
        kwargs = event.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise ValueError("this dead letter's kwargs are not a mapping")
        task = self.task
        if task is not None and event_type == self.task_name:  # (apply_async: eager too)
            return task.apply_async(args=event["args"], kwargs=dict(kwargs))
        return self.app.send_task(event_type, args=event["args"], kwargs=dict(kwargs))

    def list_dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """This task's dead letters, oldest first."""
        return self.dead_letters.list(self.task_name, limit=limit)

    def replay(self, *, limit: int = 1000) -> ReplayReport:
        """Send this task's dead letters again (each leaves the store once it is sent)."""
        return self.dead_letters.replay(self.task_name, limit=limit)

    # --- what it has done ---------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """``{"succeeded", "failed", "retried", "requeued", "invalid", "dead_lettered"}``:
        deliveries of this task in this process, by outcome."""
        return {
            "succeeded": self.succeeded.value(),
            "failed": self.failed.value(),
            "retried": self.retried.value(),
            "requeued": self.requeued.value(),
            "invalid": self.invalid.value(),
            "dead_lettered": self.dead_lettered.value(),
        }

    def status(self) -> dict[str, Any]:
        """The three components' reports, this task's ``stats()`` (``task``) and its dead
        letters (``dead_letters``: ``count``, ``path``)."""
        status = self._components.status()
        status["task"] = {"name": self.task_name, **self.stats()}
        status["dead_letters"] = {
            "count": self.dead_letters.count(self.task_name),
            "path": self.dead_letters.path,
        }
        return status

    def events_snapshot(self) -> EventsSnapshot:
        """This task's dead letters as the metrics and the status page read them (the
        store opened and counted when they read, at most once a second, within two
        seconds; a store that cannot answer shows as unavailable, never raises)."""
        return EventsSnapshot(read_store(self._letters))

    def close(self) -> None:
        forget_door(EVENT_DOORS, self.performance_monitor, self)
        store, self._store = self._store, None
        if store is not None:
            store.close()


class _TaskLetters:
    """One task's dead letters, as the readers count them (``CountedStore``): the
    store's letters of this task's name only, so that tasks sharing a store (one SQLite
    file, one PostgreSQL namespace) are each counted once. The store is opened by the
    first count (on the reader's bounded thread), not here; its kind and namespace are
    known before. Tasks journal nothing: none pending."""

    __slots__ = ("__weakref__", "_door", "kind", "namespace")

    def __init__(self, door: CoordinatedTask) -> None:
        from .._dead_letter_stores import is_database_url

        self._door = door
        location = door.config.dead_letter_path
        shared = isinstance(location, str) and is_database_url(location)
        self.kind = "postgresql" if shared else "sqlite"
        self.namespace = door.config.dead_letter_namespace if shared else "default"

    def count(self) -> int:
        return self._door.dead_letters.count(self._door.task_name)

    def pending_count(self) -> int:
        return 0


def _wake_workers_loop() -> None:
    """As a late-acked coordinated task's delivery ends in a worker's event loop (``-P
    solo``), wake that loop, so that the acknowledgement Celery queues next is sent now.

    Celery queues the ack (``hub.call_soon``) from the loop's own thread, which does not
    wake the loop (kombu 5.7): with ``worker_prefetch_multiplier=1`` the broker then sends
    nothing until the loop's next timer (a stall of up to 10 s between tasks), and with a
    larger one the acks lag behind the tasks run, so a worker killed then runs those tasks
    again. The waker stays readable until the loop polls, which it does only after the
    delivery's ack is queued. Called by the delivery itself (``CoordinatedTask.run``), not
    from a ``task_postrun`` receiver, which every task of the process (the user's plain
    ones too) would pay for. Nothing outside a worker's loop (prefork children, eager
    runs); never raises."""
    try:
        waker = getattr(get_event_loop(), "_waker", None)
        wake = getattr(waker, "wake", None)
        if callable(wake):
            wake()
    except Exception:  # (a kombu without this waker: the ack goes out as Celery sends it)
        return


def _task_instance(task: Any) -> Any:
    """The task behind Celery's proxy (evaluated once: always the same instance)."""
    return task._get_current_object() if isinstance(task, Proxy) else task


def _retry_after(refusal: Exception) -> float:
    seconds = getattr(refusal, "retry_after", None)
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return float(seconds)
    return DEFAULT_REQUEUE_DELAY


def _publishing_base(base: type[celery.Task]) -> type[celery.Task]:
    """``base`` (the app's ``Task`` or the one given) whose ``apply_async`` (and so
    ``delay`` and a signature's ``apply_async``) is traced while the library's spans are
    on. A send that already carries a ``traceparent`` goes as it is: a re-send of a
    delivery (its retry, its re-queue) keeps the publisher's, and OpenTelemetry's own
    Celery instrumentation, when installed, writes its span's context after ours."""

    class PublishingTask(base):  # type: ignore[misc]  # celery has no types
        def apply_async(self, *positional: Any, **options: Any) -> Any:
            if DOORS.on:  # an attribute read while spans are off
                tracer = current_tracer()
                headers = options.get("headers")
                if tracer is not None and (
                    headers is None
                    or (isinstance(headers, Mapping) and "traceparent" not in headers)
                ):
                    door: CoordinatedTask = self.coordination
                    return door._publish_traced(tracer, super().apply_async, positional, options)
            return super().apply_async(*positional, **options)

    PublishingTask.__qualname__ = PublishingTask.__name__ = f"Publishing{base.__name__}"
    return PublishingTask


def coordinated_task(
    app: celery.Celery,
    validation_rules: Any = None,
    error_config: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    *,
    config: CoordinationConfig | Mapping[str, Any] | None = None,
    max_requeues: int = DEFAULT_MAX_REQUEUES,
    validator: ValidatorLike | None = None,
    error_handler: ErrorHandlerLike | None = None,
    performance_monitor: MonitorLike | None = None,
    coordination: ComponentSet | None = None,
    debug: bool = False,
    **task_options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """Make the decorated function a task of ``app`` with the pipeline around it.

    ``validation_rules`` checks the arguments by parameter name (or the single record
    argument); ``error_config`` (``{"max_retries": 3, "base_delay": 2.0}``…) over the
    configuration's ``operations:`` entry decides retries, breaker and limits;
    ``operation_name`` (default: the task's name) names it in the handler and monitor.
    ``max_requeues`` bounds the re-queues of one task on refusals (breaker open, limits).
    Other keyword arguments go to ``app.task`` (``name``, ``queue``, ``bind``…), except
    Celery's own retry options: the operation's options decide retries here. Tasks are
    acknowledged late (``acks_late=True``, ``reject_on_worker_lost=True``) unless told
    otherwise, so a worker killed mid-task loses nothing.
    The task has ``task.coordination`` (``CoordinatedTask``): ``replay()``,
    ``list_dead_letters()``, ``stats()``, ``status()``.
    """
    if not isinstance(app, celery.Celery):
        raise TypeError(f"coordinated_task needs a celery.Celery app, not {type(app).__name__}")
    if operation_name is not None and (not isinstance(operation_name, str) or not operation_name):
        raise ValueError(f"operation_name must be a non-empty string, got {operation_name!r}")
    if error_config is not None and not isinstance(error_config, Mapping):
        raise TypeError(f"error_config must be a mapping, got {type(error_config).__name__}")
    if isinstance(max_requeues, bool) or not isinstance(max_requeues, int) or max_requeues < 0:
        raise ValueError(f"max_requeues must be a whole number >= 0, got {max_requeues!r}")
    clashing = sorted(_RETRY_OPTIONS & task_options.keys())
    if clashing:
        raise TypeError(
            f"coordinated_task: {', '.join(clashing)} would make Celery retry on its own; "
            "give the retry policy in error_config (max_retries, base_delay, retry_on, ...)"
        )
    bind = bool(task_options.pop("bind", False))

    def decorate(func: Callable[..., Any]) -> Any:
        if not callable(func):
            raise TypeError(f"coordinated_task decorates functions, not {func!r}")
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                f"{getattr(func, '__qualname__', func)!r} is a coroutine function: Celery 5 "
                "runs task functions synchronously; make the task a plain function (it may "
                "call asyncio.run(...) itself)"
            )
        from celery.utils.imports import gen_task_name

        name = task_options.get("name") or gen_task_name(
            app, func.__name__, getattr(func, "__module__", "__main__")
        )
        door = CoordinatedTask(
            app,
            func,
            name,
            bind=bind,
            validation_rules=validation_rules,
            error_config=error_config,
            operation_name=operation_name,
            max_requeues=max_requeues,
            validator=validator,
            error_handler=error_handler,
            performance_monitor=performance_monitor,
            config=config,
            coordination=coordination,
            debug=debug,
        )
        made: list[Any] = []  # the task, then (from its first delivery) its instance

        if bind:

            def run_bound(task: Any, *args: Any, **kwargs: Any) -> Any:
                return door.run(task, args, kwargs)

            run: Callable[..., Any] = run_bound
        else:

            def run_plain(*args: Any, **kwargs: Any) -> Any:
                # app.task answers a proxy until the app is finalized: each attribute
                # read through it (request, acks_late) costs a lookup of the task
                if len(made) == 1:
                    made.append(_task_instance(made[0]))
                return door.run(made[1], args, kwargs)

            run = run_plain
        functools.update_wrapper(run, func)
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins have none
            signature = None
        if signature is not None:
            run.__signature__ = signature  # type: ignore[attr-defined]  # Celery checks calls by it
        # Nothing lost: the message is acknowledged after the task ends (settled, retried
        # or dead-lettered), so a worker killed mid-task leaves it for another; Celery's
        # default acknowledges before the body runs. acks_late=False opts out.
        options = {
            "acks_late": True,
            "reject_on_worker_lost": True,
            **task_options,
            "base": _publishing_base(task_options.get("base") or app.Task),
            "name": name,
            "max_retries": None,
            "coordination": door,
        }
        task = app.task(bind=bind, **options)(run)
        made.append(task)
        door.task = task
        return task

    return decorate
