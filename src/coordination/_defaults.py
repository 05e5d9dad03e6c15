"""The process-wide set of components, made on first use, once.

Every door (decorators, middleware, service wrapper, event processor, health, metrics,
status page) shares one validator, error handler and monitor per process unless given its
own, so a breaker opened through one decorated function protects every caller of the same
operation and shows in every report. The three are made by their own packages
(``default_validator()``, ``default_error_handler()``, ``default_monitor()``) from one
configuration, ``process_config()``, read from the file and the environment once.
``coordination.default_coordination()`` is the same three objects as one set.

Tests start over with ``coordination.testing.reset_default_coordination()``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar

from ._config import CoordinationConfig

__all__ = [
    "EVENT_DOORS",
    "HTTP_DOORS",
    "ComponentSet",
    "ErrorHandlerLike",
    "MonitorLike",
    "ProcessDefault",
    "ValidationResultLike",
    "ValidatorLike",
    "checked_component",
    "component_of",
    "doors_of",
    "forget_door",
    "http_doors",
    "process_config",
    "register_door",
    "register_http_door",
    "replace_process_config",
    "reset_process_defaults",
]

T = TypeVar("T")

# Every ProcessDefault made at import time, so that one reset forgets all of them together
# (a handler kept while the config is forgotten would no longer match it).
_ALL: list[ProcessDefault[Any]] = []
_ALL_LOCK = threading.Lock()


class ProcessDefault(Generic[T]):
    """One lazily made instance per process; ``get()`` is a plain read once it exists.

    >>> numbers = ProcessDefault(list)
    >>> numbers.get() is numbers.get()
    True
    """

    __slots__ = ("_factory", "_instance", "_lock")

    def __init__(self, factory: Callable[[], T], *, register: bool = True) -> None:
        self._factory = factory
        self._instance: T | None = None
        # Reentrant: a factory may ask another default (the handler asks for the config).
        self._lock = threading.RLock()
        if register:
            with _ALL_LOCK:
                _ALL.append(self)

    def get(self) -> T:
        instance = self._instance
        if instance is None:
            # Double-checked: two threads racing on first use must not make two handlers
            # (each would keep its own breakers).
            with self._lock:
                if self._instance is None:
                    self._instance = self._factory()
                instance = self._instance
        return instance

    def peek(self) -> T | None:
        """The instance if it has been made, without making it."""
        return self._instance

    def replace(self, instance: T) -> None:
        """Hold ``instance`` from now on (a reload's new configuration)."""
        with self._lock:
            self._instance = instance

    def reset(self) -> T | None:
        """Forget the instance, so the next ``get()`` makes a new one; returns the old one."""
        with self._lock:
            old, self._instance = self._instance, None
        return old


def reset_process_defaults() -> list[object]:
    """Forget every process default (for tests); returns the instances that had been made.

    The caller closes what needs closing (``coordination.testing`` does).
    """
    with _ALL_LOCK:
        defaults = list(_ALL)
    forgotten: list[object] = []
    for default in defaults:
        old = default.reset()
        if old is not None:
            forgotten.append(old)
    return forgotten


_CONFIG: ProcessDefault[CoordinationConfig] = ProcessDefault(CoordinationConfig.load)


def process_config() -> CoordinationConfig:
    """The configuration of the process-wide components: file and environment, read once
    (and again by each ``reload_config()`` of the process-wide set)."""
    return _CONFIG.get()


def replace_process_config(config: CoordinationConfig) -> None:
    """What ``process_config()`` answers from now on (the process-wide set reloaded)."""
    _CONFIG.replace(config)


class ValidationResultLike(Protocol):
    """What a door reads of a validation result."""

    @property
    def is_valid(self) -> bool: ...
    @property
    def errors(self) -> Any: ...


class ValidatorLike(Protocol):
    """Exactly what the doors call on a validator (``coordination.CoordinationValidator``).

    ``compile`` once per inline rule mapping; ``ensure_valid`` per call or request (raises
    ``ValidationError``); ``validate_message_structure`` per event; the report for
    ``status()``.
    """

    def compile(self, rules: Any, *, name: str | None = None) -> Any: ...
    def ensure_valid(self, data: Any, rule_set: Any) -> None: ...
    def validate_message_structure(self, data: Any, rules: Any = None) -> ValidationResultLike: ...
    def get_validation_report(self) -> dict[str, Any]: ...


class ErrorHandlerLike(Protocol):
    """Exactly what the doors call on an error handler (``CoordinationErrorHandler``)."""

    def decorate(self, func: Callable[..., Any], **error_config: Any) -> Callable[..., Any]: ...
    def execute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Any: ...
    async def aexecute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Any: ...
    def get_error_report(self) -> dict[str, Any]: ...
    def reset_circuit_breaker(self, name: str | None = None) -> None: ...


class MonitorLike(Protocol):
    """Exactly what the doors call on a monitor (``CoordinationPerformanceMonitor``).

    ``record_operation`` times a decorated call (the library's own monitor is given a
    faster path, but any object with these methods works); ``record_duration`` records a
    request or event timed by the door; the report for ``status()``.
    """

    def record_operation(self, name: str) -> AbstractContextManager[Any]: ...
    def record_duration(
        self, name: str, seconds: float, success: bool = True, error: Any = None
    ) -> None: ...
    def get_performance_report(self) -> dict[str, Any]: ...


def checked_component(component: T, protocol: type, role: str) -> T:
    """``component`` if it has every method of ``protocol``; else a ``TypeError`` now,
    naming what is missing, rather than an ``AttributeError`` at the first call."""
    missing = [
        name
        for name, member in vars(protocol).items()
        if not name.startswith("_")
        and callable(member)
        and not callable(getattr(component, name, None))
    ]
    if missing:
        raise TypeError(
            f"{role} must provide {protocol.__name__}'s methods; "
            f"{type(component).__name__} lacks {', '.join(missing)}"
        )
    return component


class ComponentSet(Protocol):
    """A set of the three components, as a door reads it (``coordination.Coordination``).

    Typed here, below the capabilities, so that a decorator can take ``coordination=``
    without importing the integration layer that defines the set.
    """

    @property
    def config(self) -> CoordinationConfig: ...
    @property
    def validator(self) -> ValidatorLike: ...
    @property
    def error_handler(self) -> ErrorHandlerLike: ...
    @property
    def monitor(self) -> MonitorLike: ...


def component_of(coordination: object, part: str, given: T | None, given_name: str) -> Any:
    """``given``, else ``part`` of ``coordination``, else None; both is a mistake."""
    if coordination is None:
        return given
    if given is not None:
        raise TypeError(f"give {given_name}= or coordination=, not both")
    try:
        return getattr(coordination, part)
    except AttributeError:
        raise TypeError(
            f"coordination must be a coordination.Coordination, not {type(coordination).__name__}"
        ) from None


# The doors built on each owner, by kind: the HTTP doors (middlewares) on each set's
# monitor, in the order they were built (their request counters live in the door, not in
# the three components, so a metrics exporter given no components finds them here); the
# event processors on each set's monitor (their stores and sources are read the same way);
# the broker sources on the processor they feed. Weak both ways: a dropped door or owner
# is forgotten. Readers look them up when they read, never on a hot path.
_DOORS: dict[str, weakref.WeakKeyDictionary[object, list[weakref.ref[object]]]] = {}
_DOORS_LOCK = threading.Lock()
HTTP_DOORS = "http"
EVENT_DOORS = "events"


def register_door(kind: str, owner: object, door: object) -> None:
    """Remember ``door`` (weakly) as a door of ``kind`` built on ``owner``; an owner or a
    door that cannot be weakly referenced (or hashed) is not remembered."""
    try:
        door_ref = weakref.ref(door)
        with _DOORS_LOCK:
            doors = _DOORS.setdefault(kind, weakref.WeakKeyDictionary()).setdefault(owner, [])
            doors[:] = [ref for ref in doors if ref() is not None]
            doors.append(door_ref)
    except TypeError:  # not weakly referable or not hashable: a reader cannot find it
        return


def forget_door(kind: str, owner: object, door: object) -> None:
    """Forget ``door`` (a closed event processor); nothing if it was not remembered."""
    try:
        with _DOORS_LOCK:
            owners = _DOORS.get(kind)
            doors = None if owners is None else owners.get(owner)
            if doors is not None:
                doors[:] = [ref for ref in doors if ref() is not None and ref() is not door]
    except TypeError:
        return


def doors_of(kind: str, owner: object) -> list[object]:
    """The live doors of ``kind`` built on ``owner``, oldest first."""
    try:
        with _DOORS_LOCK:
            owners = _DOORS.get(kind)
            refs = [] if owners is None else list(owners.get(owner, ()))
    except TypeError:
        return []
    return [door for door in (ref() for ref in refs) if door is not None]


def register_http_door(monitor: object, door: object) -> None:
    """Remember ``door`` as serving HTTP through the set whose monitor is ``monitor``."""
    register_door(HTTP_DOORS, monitor, door)


def http_doors(monitor: object) -> list[object]:
    """The live HTTP doors built on ``monitor``'s set, oldest first."""
    return doors_of(HTTP_DOORS, monitor)
