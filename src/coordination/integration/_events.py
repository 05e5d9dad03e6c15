"""``CoordinationEventProcessor``: validated, retried, timed event handling that loses nothing.

The contract is **at least once**: every event handed to ``process_event``,
``aprocess_event`` or ``process_batch`` ends either processed or in the dead-letter store,
even when the process is killed mid-batch. Each event is journaled (committed to SQLite)
before its handler runs; the journal entry leaves in the same transaction that records the
outcome. Entries left by a run that ended become dead letters (reason ``"interrupted"``) when
the next processor opens the store, and ``dead_letters.replay()`` (``areplay()`` on
asyncio) runs them again. An event whose handler completed just before a kill therefore
runs twice: make handlers idempotent, or give the processor an ``idempotency_key`` so
processed keys are skipped. An event that cannot even be journaled (a cycle, too deep, a
value JSON cannot hold as text) is dead-lettered at once as ``invalid``, with a bounded
``repr`` of it.

While a tracer provider is set, each event is processed inside a CONSUMER span
``"<event_type> process"`` (``_door_spans.consumer_span``): its parent is the current
context, which a broker or stream source sets to the producer's (carried in the message's
headers or the entry's fields), so the consumer joins the producer's trace; its
``coordination.outcome`` is ``processed``, ``duplicate``, ``dead_lettered`` (ERROR
status, the handler's exception recorded, redacted) or ``error`` (not settled).

>>> processor = CoordinationEventProcessor(dead_letter_path=":memory:")
>>> processor.process_event({"user_id": "1"}, "user_activity")["status"]
'processed'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import inspect
import itertools
import threading
from collections.abc import Callable, Collection, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .._bounded import BoundedNames
from .._config import CoordinationConfig
from .._defaults import EVENT_DOORS, ComponentSet, forget_door, register_door
from .._door_spans import consumer_span
from .._errors import EventDeadLettered, InvalidEvent, ValidationError
from .._events_snapshot import EventsSnapshot, events_snapshot, sources_of, store_identity
from .._logging import log_extra
from .._redact import safe_repr
from .._time import perf_counter
from .._tracing import DOORS, current_tracer, watch_doors
from ..validation._result import ValidationIssue
from ._components import (
    CoordinatedDoor,
    ErrorHandlerLike,
    MonitorLike,
    ValidatorLike,
    prepare_rules,
)
from ._dead_letter_stores import open_dead_letter_store
from ._dead_letters import encode_event, error_text

__all__ = ["CoordinationEventProcessor", "EventOutcome"]

EventHandler = Callable[[Any, str], Any]
IdempotencyKey = Callable[[Any, str], "str | None"]
H = TypeVar("H", bound=EventHandler)

_BATCH_CHUNK = 500  # events journaled per commit in process_batch
_MAX_KEY_LENGTH = 256  # longer idempotency keys are stored as their SHA-256


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """How one event of a batch ended."""

    index: int
    event_type: str
    status: Literal["processed", "duplicate", "dead_lettered"]
    result: Any = None
    dead_letter_id: int | None = None
    error: str | None = None


@dataclass(slots=True)
class _Admission:
    """One event ready for the journal, or refused before it (``refused`` says why)."""

    event: Any
    event_type: str
    key: str | None
    payload: str | None  # the journaled JSON; None when the event cannot be stored
    refused: Exception | None = None


class _Attempts:
    """Counts handler calls for one event (the error handler may make several)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class CoordinationEventProcessor(CoordinatedDoor):
    """Processes events through validation, the error handler and the monitor.

    Handlers are called as ``handler(event, event_type)``: the one registered for the type
    with ``@processor.on(type)``, else the ``handler`` given here, else the method
    ``_process_event_internal`` (override it in a subclass), which by default returns
    ``{"status": "processed", "event_type": event_type}``.
    """

    def __init__(
        self,
        handler: EventHandler | None = None,
        *,
        rules: Mapping[str, Any] | None = None,
        error_config: Mapping[str, Any] | None = None,
        dead_letter_path: str | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
        validate_structure: bool = True,
        validator: ValidatorLike | None = None,
        error_handler: ErrorHandlerLike | None = None,
        performance_monitor: MonitorLike | None = None,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        coordination: ComponentSet | None = None,
        debug: bool = False,
        require_idempotency_key: bool = False,
    ) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        self._set_up(config, validator, error_handler, performance_monitor, debug, coordination)
        cfg = self.config
        self._default_handler = handler
        self._handlers: dict[str, EventHandler] = {}
        self._error_config = self._with_operation_defaults(error_config) or {}
        self._names = BoundedNames(cfg.max_operation_names, logger=self._logger)
        self._validate = cfg.enable_validation
        self._validate_structure = validate_structure and cfg.enable_validation
        self._monitor = cfg.enable_performance_monitoring
        self._rules = {
            event_type: prepare_rules(self.validator, rule_set, f"event:{event_type}")
            for event_type, rule_set in (rules or {}).items()
            if self._validate
        }
        self._set_up_idempotency(idempotency_key, require_idempotency_key)
        self._open_store(dead_letter_path or cfg.dead_letter_path)
        register_door(EVENT_DOORS, self.performance_monitor, self)  # the readers find it
        watch_doors()  # each event reads _tracing.DOORS.on, kept true while spans are on

    def _set_up_idempotency(self, spec: str | IdempotencyKey | None, require: bool) -> None:
        if spec is not None and not callable(spec) and (not isinstance(spec, str) or not spec):
            raise TypeError("idempotency_key must be a field name, a callable or None")
        if require and not isinstance(spec, str):
            raise TypeError("require_idempotency_key=True needs idempotency_key= a field name")
        self._key_spec = spec
        self._require_key = require
        # Events without the key field, by operation name (bounded by self._names).
        self._missing_keys: dict[str, int] = {}
        self._missing_lock = threading.Lock()

    def _open_store(self, path: str | None) -> None:
        self.dead_letters = open_dead_letter_store(path, self.config.dead_letter_namespace)
        self.dead_letters.bind(self._replay_one, self._areplay_one)
        self._logger.info(
            "dead-letter journal at %s (events that fail are kept there for replay())",
            self.dead_letters.path,
            extra=log_extra(dead_letter_store=str(self.dead_letters.path)),
        )
        try:
            recovered = self.dead_letters.recover_interrupted()
        except BaseException:
            self.dead_letters.close()  # a processor that failed to start holds no file
            raise
        if recovered:
            self._logger.warning(
                "%d event(s) were interrupted by a run that stopped; they are now dead "
                "letters (reason 'interrupted') in %s, ready for replay()",
                recovered,
                self.dead_letters.path,
                extra=log_extra(
                    dead_letter_store=str(self.dead_letters.path),
                    reason="interrupted",
                    dead_letters=recovered,
                ),
            )

    # --- handlers --------------------------------------------------------------------

    def on(self, event_type: str) -> Callable[[H], H]:
        """Register the decorated ``handler(event, event_type)`` for ``event_type``."""
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")

        def register(handler: H) -> H:
            if not callable(handler):
                raise TypeError(f"handler for {event_type!r} must be callable")
            self._handlers[event_type] = handler
            return handler

        return register

    def _process_event_internal(self, event_data: Any, event_type: str) -> Any:
        """The handler used when none is registered; subclasses override it."""
        return {"status": "processed", "event_type": event_type}

    def _check_sync(self, event_type: str, instead: str = "aprocess_event") -> None:
        """Refuse, before anything is journaled, what the synchronous path cannot run."""
        _check_type(event_type)
        if inspect.iscoroutinefunction(self._handler_for(event_type)):
            raise TypeError(
                f"the handler for {event_type!r} is a coroutine function: "
                f"use {instead} (or await it from async code)"
            )

    def _handler_for(self, event_type: str) -> EventHandler:
        return (
            self._handlers.get(event_type) or self._default_handler or self._process_event_internal
        )

    # --- one event -------------------------------------------------------------------

    # --- admission: the idempotency key and the journal's JSON, before anything runs ---

    def _admission(self, event: Any, event_type: str) -> _Admission:
        try:
            payload = encode_event(event)
        except ValueError as exc:
            refusal = ValidationError(
                [_issue("not_storable", error_text(exc, 500))], message=error_text(exc, 500)
            )
            refusal.__cause__ = exc
            return _Admission(event, event_type, None, None, refusal)
        try:
            key = self._key_of(event, event_type)
        except Exception as exc:  # a user's key function failing too: nothing is lost
            return _Admission(event, event_type, None, payload, exc)
        return _Admission(event, event_type, key, payload)

    def _key_of(self, event: Any, event_type: str) -> str | None:
        """The event's idempotency key, bounded; the key field's absence is counted."""
        spec = self._key_spec
        if spec is None:
            return None
        if isinstance(spec, str):
            value = event.get(spec) if isinstance(event, Mapping) else None
            if value is None:
                self._missing_key(event_type)
                return None
            try:
                text = value if isinstance(value, str) else str(value)
            except Exception as exc:  # an int beyond the int-to-text limit, a bad __str__
                raise ValidationError(
                    [_issue("invalid_key", f"{spec}: cannot be used as an idempotency key")]
                ) from exc
            return _bounded_key(f"{event_type}:{text}")
        key: object = spec(event, event_type)
        if key is None:
            return None
        if not isinstance(key, str):
            raise TypeError(
                f"the idempotency_key function returned {type(key).__name__}, not a str or None"
            )
        return _bounded_key(key)

    def _missing_key(self, event_type: str) -> None:
        operation = self._names.admit(f"event_{event_type}")
        with self._missing_lock:
            count = self._missing_keys.get(operation, 0)
            self._missing_keys[operation] = count + 1
        if count == 0:
            self._logger.warning(
                "events of type %r have no %r field: %s (counted in "
                "get_processor_status()['idempotency'])",
                event_type,
                self._key_spec,
                "they are dead-lettered as invalid (require_idempotency_key=True)"
                if self._require_key
                else "they are processed without duplicate protection; pass "
                "require_idempotency_key=True to dead-letter them instead",
                extra=log_extra(operation, event_type=event_type),
            )
        if self._require_key:
            raise ValidationError(
                [_issue("required", f"{self._key_spec}: the idempotency key is required")],
                rule_set="idempotency_key",
            )

    def _admit(self, event: Any, event_type: str) -> tuple[_Admission, int]:
        """Journal the event; ``EventDeadLettered`` when it is refused before the journal."""
        admission = self._admission(event, event_type)
        if admission.refused is not None:
            raise self._refuse(admission) from admission.refused
        assert admission.payload is not None  # refused otherwise
        (pending_id,) = self.dead_letters.begin_encoded(
            [(admission.payload, event_type, admission.key)]
        )
        return admission, pending_id

    def _refuse(self, admission: _Admission) -> EventDeadLettered:
        error = admission.refused
        assert error is not None
        return self._dead_letter(None, admission, error, 0, _reason(error))

    # --- one event -------------------------------------------------------------------

    def process_event(self, event_data: Any, event_type: str) -> Any:
        """The handler's result; raises ``EventDeadLettered`` once a failure is stored."""
        self._check_sync(event_type)
        return self._traced(event_type, self._journaled, event_data, event_type)[0]

    def _journaled(self, event_data: Any, event_type: str) -> tuple[Any, bool]:
        admission, pending_id = self._admit(event_data, event_type)
        return self._run(pending_id, admission)

    async def aprocess_event(self, event_data: Any, event_type: str) -> Any:
        """``process_event`` for coroutine handlers; store writes run off the event loop."""
        _check_type(event_type)
        return await self._atraced(event_type, self._ajournaled, event_data, event_type)

    async def _ajournaled(self, event_data: Any, event_type: str) -> tuple[Any, bool]:
        admission, pending_id = await asyncio.to_thread(self._admit, event_data, event_type)
        return await self._arun(pending_id, admission)

    # --- the CONSUMER span of each event, while a tracer provider is set --------------

    def _traced(
        self, event_type: str, run: Callable[..., tuple[Any, bool]], *args: Any
    ) -> tuple[Any, bool]:
        """``run(*args)`` — one event, ``(result, duplicate)`` — inside its CONSUMER span
        ``"<event_type> process"`` while tracing; the span's parent is the current context
        (a broker or stream source made the producer's current). No tracer: no span."""
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        if tracer is None:
            return run(*args)
        with consumer_span(tracer, event_type, self._names.admit(f"event_{event_type}")) as block:
            outcome = run(*args)
            if outcome[1]:
                block.outcome = "duplicate"
            return outcome

    async def _atraced(
        self,
        event_type: str,
        run: Callable[..., Coroutine[Any, Any, tuple[Any, bool]]],
        *args: Any,
    ) -> Any:
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        if tracer is None:
            return (await run(*args))[0]
        with consumer_span(tracer, event_type, self._names.admit(f"event_{event_type}")) as block:
            result, duplicate = await run(*args)
            if duplicate:
                block.outcome = "duplicate"
            return result

    # --- messages a broker delivered (and holds until they are acknowledged) ----------

    def process_message(self, event_data: Any, event_type: str) -> Any:
        """``process_event`` for an event a broker delivered and keeps until it is
        acknowledged: nothing is journaled, since the broker redelivers the message if
        this process stops first. The idempotency key, validation, the pipeline and the
        dead-letter store apply as for ``process_event``: a failure is stored, then
        ``EventDeadLettered`` raised (acknowledge the message then); any other exception
        (the store is unreachable, say) means the event is not settled: leave the message
        with the broker for redelivery."""
        self._check_sync(event_type, "aprocess_message")
        return self._traced(event_type, self._delivered_run, event_data, event_type)[0]

    def _delivered_run(self, event_data: Any, event_type: str) -> tuple[Any, bool]:
        admission = self._delivered(event_data, event_type)
        if admission.refused is not None:
            raise self._refuse(admission) from admission.refused
        return self._run(None, admission)

    async def aprocess_message(self, event_data: Any, event_type: str) -> Any:
        """``process_message`` on asyncio: coroutine handlers are awaited, synchronous
        ones run in a worker thread; with no idempotency key a success touches no store."""
        _check_type(event_type)
        return await self._atraced(event_type, self._adelivered_run, event_data, event_type)

    async def _adelivered_run(self, event_data: Any, event_type: str) -> tuple[Any, bool]:
        admission = self._delivered(event_data, event_type)
        if admission.refused is not None:
            raise await asyncio.to_thread(self._refuse, admission) from admission.refused
        return await self._arun(None, admission)

    def dead_letter_message(
        self,
        event_data: Any,
        event_type: str,
        *,
        reason: str,
        error: BaseException,
        attempts: int = 0,
        replayable: bool = True,
    ) -> int:
        """Store a delivered message that is not to be processed (undecodable, too big,
        delivered too often) as a dead letter; its id. ``replayable=False`` keeps it for
        reading only (a description of a message that could not be decoded)."""
        _check_letter(event_type, reason, error, attempts)
        letter_id = self.dead_letters.dead_letter(
            None,
            event_data,
            event_type,
            reason=reason,
            error=error,
            attempts=attempts,
            key=None,
            replayable=replayable,
        )
        # INFO: the broker source that calls this warns, at most once per 10 s (a
        # poison storm of thousands was a warning each here, and another in the source)
        self._logger.info(
            "message of type %r dead-lettered (id %d, %s): %s: %s",
            event_type,
            letter_id,
            reason,
            type(error).__name__,
            error_text(error, 500),
            extra=log_extra(
                event_type=event_type,
                dead_letter_id=letter_id,
                reason=reason,
                attempt=attempts or None,
                error_type=type(error).__name__,
            ),
        )
        return letter_id

    async def adead_letter_message(
        self,
        event_data: Any,
        event_type: str,
        *,
        reason: str,
        error: BaseException,
        attempts: int = 0,
        replayable: bool = True,
    ) -> int:
        """``dead_letter_message`` with the store write off the event loop."""
        return await asyncio.to_thread(
            functools.partial(
                self.dead_letter_message,
                event_data,
                event_type,
                reason=reason,
                error=error,
                attempts=attempts,
                replayable=replayable,
            )
        )

    def operation_for(self, event_type: str) -> str:
        """The operation events of ``event_type`` run under: ``event_<type>``, or the
        overflow name once ``max_operation_names`` are taken (sources name their spans
        by it, so a publisher inventing event types cannot invent span names)."""
        return self._names.admit(f"event_{event_type}")

    def handles_asynchronously(self, event_type: str) -> bool:
        """Whether ``event_type``'s handler is a coroutine function. Broker sources ask:
        they run a batch's synchronous handlers together on one worker thread
        (``process_message``), coroutine ones on the loop (``aprocess_message``)."""
        return inspect.iscoroutinefunction(self._handler_for(event_type))

    def _delivered(self, event: Any, event_type: str) -> _Admission:
        """A delivered event's admission: its key, no journal payload (encoded only if it
        is dead-lettered)."""
        try:
            key = self._key_of(event, event_type)
        except Exception as exc:  # a user's key function failing too: nothing is lost
            return _Admission(event, event_type, None, None, exc)
        return _Admission(event, event_type, key, None)

    async def _arun(self, pending_id: int | None, admission: _Admission) -> tuple[Any, bool]:
        """The asynchronous ``_run``: every store statement in a worker thread."""
        event_data, event_type, key = admission.event, admission.event_type, admission.key
        store = self.dead_letters
        if key is not None and await asyncio.to_thread(store.is_processed, key):
            if pending_id is not None:
                await asyncio.to_thread(store.finish, pending_id, None)
            return _duplicate(event_type, key), True
        try:
            self._check(event_data, event_type)
        except Exception as exc:  # a broken rule set too: the event must not be lost
            raise await asyncio.to_thread(
                self._dead_letter, pending_id, admission, exc, 0, _reason(exc)
            ) from exc
        handler = self._handler_for(event_type)
        attempts = _Attempts()
        started = perf_counter()
        try:
            if inspect.iscoroutinefunction(handler):
                result = await self.error_handler.aexecute_with_error_handling(
                    self._aattempt,
                    args=(handler, event_data, event_type, attempts),
                    operation_name=self._names.admit(f"event_{event_type}"),
                    **self._error_config,
                )
            else:
                result = await asyncio.to_thread(
                    self._execute, handler, event_data, event_type, attempts
                )
        except Exception as exc:
            self._record(event_type, started, exc)
            raise await asyncio.to_thread(
                self._dead_letter, pending_id, admission, exc, attempts.count, "failed"
            ) from exc
        self._record(event_type, started, None)
        if pending_id is not None or key is not None:
            await asyncio.to_thread(store.finish, pending_id, key)
        return result, False

    def _run(self, pending_id: int | None, admission: _Admission) -> tuple[Any, bool]:
        """The result, and whether the event was a duplicate skipped by its key
        (``pending_id`` is None for a delivered message, which has no journal entry)."""
        event, event_type, key = admission.event, admission.event_type, admission.key
        if key is not None and self.dead_letters.is_processed(key):
            if pending_id is not None:
                self.dead_letters.finish(pending_id, None)
            return _duplicate(event_type, key), True
        try:
            self._check(event, event_type)
        except Exception as exc:  # a broken rule set too: the event must not be lost
            raise self._dead_letter(pending_id, admission, exc, 0, _reason(exc)) from exc
        attempts = _Attempts()
        started = perf_counter()
        try:
            result = self._execute(self._handler_for(event_type), event, event_type, attempts)
        except Exception as exc:
            self._record(event_type, started, exc)
            raise self._dead_letter(pending_id, admission, exc, attempts.count, "failed") from exc
        self._record(event_type, started, None)
        if pending_id is not None or key is not None:
            self.dead_letters.finish(pending_id, key)
        return result, False

    def _check(self, event: Any, event_type: str) -> None:
        if self._validate_structure:
            result = self.validator.validate_message_structure(event)
            if not result.is_valid:
                raise ValidationError(result.errors, rule_set="message_structure")
        rule_set = self._rules.get(event_type)
        if rule_set is not None:
            self.validator.ensure_valid(event, rule_set)

    def _execute(
        self, handler: EventHandler, event: Any, event_type: str, attempts: _Attempts
    ) -> Any:
        return self.error_handler.execute_with_error_handling(
            self._attempt,
            args=(handler, event, event_type, attempts),
            operation_name=self._names.admit(f"event_{event_type}"),
            **self._error_config,
        )

    @staticmethod
    def _attempt(handler: EventHandler, event: Any, event_type: str, attempts: _Attempts) -> Any:
        attempts.count += 1
        return handler(event, event_type)

    @staticmethod
    async def _aattempt(
        handler: EventHandler, event: Any, event_type: str, attempts: _Attempts
    ) -> Any:
        attempts.count += 1
        return await handler(event, event_type)

    def _record(self, event_type: str, started: float, error: Exception | None) -> None:
        if self._monitor:
            self.performance_monitor.record_duration(
                self._names.admit(f"event_{event_type}"),
                perf_counter() - started,
                success=error is None,
                error=error,
            )

    def _dead_letter(
        self,
        pending_id: int | None,
        admission: _Admission,
        error: Exception,
        attempts: int,
        reason: str,
    ) -> EventDeadLettered:
        event_type = admission.event_type
        letter_id = self.dead_letters.dead_letter(
            pending_id,
            admission.event,
            event_type,
            reason=reason,
            error=error,
            attempts=attempts,
            key=admission.key,
            payload=admission.payload,
        )
        message = error_text(error, 500)
        self._logger.warning(
            "event of type %r dead-lettered (id %d, %s after %d attempt(s)): %s: %s",
            event_type,
            letter_id,
            reason,
            attempts,
            type(error).__name__,
            message,
            extra=log_extra(
                self._names.admit(f"event_{event_type}"),
                attempt=attempts,
                event_type=event_type,
                dead_letter_id=letter_id,
                reason=reason,
                error_type=type(error).__name__,
            ),
        )
        if isinstance(error, ValidationError):  # also a ValueError
            return InvalidEvent(
                event_type,
                letter_id,
                f"{reason}: {message}",
                errors=error.errors,
                rule_set=error.rule_set,
            )
        return EventDeadLettered(event_type, letter_id, f"{reason}: {message}")

    def _replay_one(self, event: Any, event_type: str) -> Any:
        """What ``dead_letters.replay()`` runs: validation and handler, raising on failure."""
        self._check_replay(event, event_type)
        handler = self._handler_for(event_type)
        if not inspect.iscoroutinefunction(handler):
            return self._execute(handler, event, event_type, _Attempts())
        # replay() is synchronous and may be called from inside a running loop: a
        # coroutine handler gets an event loop of its own, on a worker thread.
        coroutine = self.error_handler.aexecute_with_error_handling(
            self._aattempt,
            args=(handler, event, event_type, _Attempts()),
            operation_name=self._names.admit(f"event_{event_type}"),
            **self._error_config,
        )
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    async def _areplay_one(self, event: Any, event_type: str) -> Any:
        """What ``dead_letters.areplay()`` awaits: the same, on the running loop."""
        self._check_replay(event, event_type)
        handler = self._handler_for(event_type)
        if inspect.iscoroutinefunction(handler):
            return await self.error_handler.aexecute_with_error_handling(
                self._aattempt,
                args=(handler, event, event_type, _Attempts()),
                operation_name=self._names.admit(f"event_{event_type}"),
                **self._error_config,
            )
        return await asyncio.to_thread(self._execute, handler, event, event_type, _Attempts())

    def _check_replay(self, event: Any, event_type: str) -> None:
        """A replayed event meets the same checks, the required key included."""
        if self._require_key:
            self._key_of(event, event_type)
        self._check(event, event_type)

    # --- batches ---------------------------------------------------------------------

    def process_batch(
        self, events: Iterable[Any], event_type: str | None = None
    ) -> list[EventOutcome]:
        """Each event's outcome; a failure is dead-lettered and the batch goes on.

        ``events`` holds events of ``event_type`` or, without it, ``(event, event_type)``
        pairs. A list (any sized collection) is journaled whole, in one commit, before its
        first event runs; an iterator is journaled a chunk at a time as it is consumed
        (events not yet read from it are still with their source).
        """
        outcomes: list[EventOutcome] = []
        chunk_size = max(len(events), 1) if isinstance(events, Collection) else _BATCH_CHUNK
        pairs = _pairs(events, event_type)
        while chunk := list(itertools.islice(pairs, chunk_size)):
            for _, kind in chunk:
                self._check_sync(kind)
            admissions = [self._admission(event, kind) for event, kind in chunk]
            journaled = iter(
                self.dead_letters.begin_encoded(
                    [
                        (a.payload, a.event_type, a.key)
                        for a in admissions
                        if a.payload is not None and a.refused is None
                    ]
                )
            )
            for admission in admissions:
                index, kind = len(outcomes), admission.event_type
                try:
                    result, duplicate = self._traced(kind, self._batched, admission, journaled)
                except EventDeadLettered as exc:
                    outcomes.append(
                        EventOutcome(
                            index,
                            kind,
                            "dead_lettered",
                            dead_letter_id=int(exc.dead_letter_id),
                            error=exc.reason,
                        )
                    )
                    continue
                status: Literal["processed", "duplicate"] = (
                    "duplicate" if duplicate else "processed"
                )
                outcomes.append(EventOutcome(index, kind, status, result))
        return outcomes

    def _batched(self, admission: _Admission, journaled: Iterator[int]) -> tuple[Any, bool]:
        """One event of a batch, its journal entry already committed with the others."""
        if admission.refused is not None:
            raise self._refuse(admission) from admission.refused
        return self._run(next(journaled), admission)

    # --- status ----------------------------------------------------------------------

    def get_processor_status(self) -> dict[str, Any]:
        """The three components' reports (``validation``, ``error_handling``,
        ``performance``), plus the dead-letter and journal counts (``dead_letters``:
        ``count``, ``pending``, ``path``, the store's ``kind`` and ``namespace``), the
        broker sources feeding it (``sources``: ``SourceSnapshot.as_dict()`` each) and the
        events that came without their idempotency key field (``idempotency``)."""
        status = self._components.status()
        kind, namespace = store_identity(self.dead_letters)
        status["dead_letters"] = {
            "count": self.dead_letters.count(),
            "pending": self.dead_letters.pending_count(),
            "path": self.dead_letters.path,
            "kind": kind,
            "namespace": namespace,
        }
        status["sources"] = [source.as_dict() for source in sources_of(self)]
        with self._missing_lock:
            missing = dict(self._missing_keys)
        status["idempotency"] = {
            "field": self._key_spec if isinstance(self._key_spec, str) else None,
            "required": self._require_key,
            "missing_key": missing,
        }
        return status

    def events_snapshot(self) -> EventsSnapshot:
        """The store's counts and the broker sources feeding this processor, as the
        metrics and the status page read them: the counts at most a second old, read
        within two seconds; a store that cannot answer shows as unavailable, never
        raises."""
        return events_snapshot(self.dead_letters, self)

    def reset_circuit_breaker(self, event_type: str | None = None) -> None:
        """Close the breaker of ``event_type``'s operation (``event_<type>``), or of every
        event type this processor has handled.

        >>> processor.reset_circuit_breaker("orders")   # doctest: +SKIP
        """
        if event_type is None:
            for operation in self._names.names():
                self.error_handler.reset_circuit_breaker(operation)
            return
        _check_type(event_type)
        self.error_handler.reset_circuit_breaker(self._names.admit(f"event_{event_type}"))

    def close(self) -> None:
        forget_door(EVENT_DOORS, self.performance_monitor, self)
        self.dead_letters.close()

    def __enter__(self) -> CoordinationEventProcessor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_type(event_type: object) -> None:
    if not isinstance(event_type, str) or not event_type:
        raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")
    if not event_type.isprintable() or not _encodable(event_type):
        raise ValueError(
            f"event_type must be printable text without lone surrogates, got {event_type!r}"
        )


def _check_letter(event_type: object, reason: object, error: object, attempts: object) -> None:
    """A dead letter's fields, refused by name before the store sees them."""
    _check_type(event_type)
    if not isinstance(reason, str) or not reason or not _encodable(reason):
        raise ValueError(f"reason must be non-empty text, got {safe_repr(reason)}")
    if not isinstance(error, BaseException):
        raise TypeError(f"error must be an exception, got {type(error).__name__}")
    if not isinstance(attempts, int) or isinstance(attempts, bool):
        raise TypeError(f"attempts must be an int, got {type(attempts).__name__}")
    if not 0 <= attempts < 2**63:
        raise ValueError(
            f"attempts must be at least 0 (and fit 64 bits), got {safe_repr(attempts)}"
        )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bounded_key(key: str) -> str:
    """Keys are stored: a long one (or one SQLite cannot encode) as its SHA-256."""
    if len(key) <= _MAX_KEY_LENGTH and _encodable(key):
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def _issue(code: str, message: str) -> ValidationIssue:
    return ValidationIssue(code, (), "", None, message)


def _pairs(events: Iterable[Any], event_type: str | None) -> Iterable[tuple[Any, str]]:
    for index, item in enumerate(events):
        if event_type is not None:
            yield item, event_type
            continue
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(
                f"process_batch item {index} must be an (event, event_type) pair when no "
                f"event_type is given, got {type(item).__name__}"
            )
        yield item[0], item[1]


def _reason(check_error: Exception) -> str:
    """``invalid`` for an event that broke its rules, else the check itself failed."""
    return "invalid" if isinstance(check_error, ValidationError) else "check_failed"


def _duplicate(event_type: str, key: str) -> dict[str, Any]:
    return {"status": "duplicate", "event_type": event_type, "idempotency_key": key}
