"""What an attempt's outcome tells the breaker: a failure, a success, or neither.

An exception, in this order (the first rule that applies decides):

1. this library's own verdicts (``NOT_COUNTED``: ``ValidationError``, ``ConfigError``,
   ``CircuitOpenError``, ``BulkheadFull``, ``RateLimitExceeded``, ``OperationCancelled``)
   are **neither**: they say nothing about the dependency, whatever ``trip_on`` says;
2. ``breaker_ignores`` matches: **neither** (the breaker is released: a half-open trial
   slot is given back, no count moves);
3. ``trip_on`` is given: a **failure** when it matches, else a **success** (the dependency
   answered: resilience4j's ``recordExceptions``, Polly's ``ShouldHandle``);
4. ``give_up_on`` matches: a **success** (an error no retry can fix is the dependency's
   answer, not its outage; name it in ``trip_on`` to count it);
5. anything else: a **failure**.

A returned value is a **failure** when ``trip_if_result(result)`` is true, else a success;
``retry_if_result`` decides, separately, whether it is retried.

When none of these options is set the plan keeps the shared per-type table of
``_plan`` (``_KINDS``: rule 1 and 5 only). When they are set, each plan has its own
``Verdicts``; its per-type cache is used only when every rule it holds is a tuple of plain
classes (an answer then depends on the type alone), so two plans that classify one type
differently never share an answer, and a predicate is asked about every exception.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    OperationCancelled,
    RateLimitExceeded,
    ValidationError,
)
from .._logging import log_extra
from .._quote import quote

__all__ = [
    "FAILURE",
    "NEITHER",
    "NOT_COUNTED",
    "NO_RULES",
    "SUCCESS",
    "Counting",
    "ErrorTest",
    "Verdicts",
    "error_test",
    "imported_classes",
    "is_code_form",
]

# Errors that say nothing about the dependency's health: they never move the breaker.
NOT_COUNTED: tuple[type[BaseException], ...] = (
    ValidationError,
    ConfigError,
    CircuitOpenError,
    BulkheadFull,
    RateLimitExceeded,
    OperationCancelled,
)
FAILURE, SUCCESS, NEITHER = range(3)  # what ``Verdicts.verdict`` answers

# A rule: the classes it matches (isinstance), or the user's predicate on the exception.
ErrorTest = tuple[type[BaseException], ...] | Callable[[Exception], bool]
_MAX_CACHED = 256  # exception types one plan remembers (classes made on the fly: bounded)
_SOURCE = "keyword argument"


@dataclass(frozen=True, slots=True)
class Counting:
    """An operation's rules for what its outcomes mean to the breaker (all optional)."""

    trip_on: ErrorTest | None = None
    breaker_ignores: ErrorTest | None = None
    give_up_on: ErrorTest | None = None
    trip_if_result: Callable[[Any], bool] | None = None

    @property
    def is_default(self) -> bool:
        """No rule set: the pipeline's shared, per-type answers apply."""
        return (
            self.trip_on is None
            and self.breaker_ignores is None
            and self.give_up_on is None
            and self.trip_if_result is None
        )


NO_RULES = Counting()  # the defaults: the pipeline's shared per-type answers


def is_code_form(value: Any) -> bool:
    """``value`` is a rule given in code: an exception class, a non-empty collection of
    them, or a predicate. Anything else is read as the setting's data (dotted names), and
    refused, if it must be, in the configuration's words."""
    if isinstance(value, type):
        return issubclass(value, BaseException)
    if isinstance(value, tuple | list | frozenset | set):
        return bool(value) and all(
            isinstance(item, type) and issubclass(item, BaseException) for item in value
        )
    return callable(value)


def error_test(spec: Any, field: str, source: str = _SOURCE) -> ErrorTest | None:
    """A rule given in code: an exception class, a collection of them, or a predicate."""
    if spec is None:
        return None
    if isinstance(spec, type) and issubclass(spec, BaseException):
        return (spec,)
    if isinstance(spec, tuple | list | frozenset | set) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in spec
    ):
        return tuple(spec)
    if callable(spec) and not isinstance(spec, type):
        predicate: Callable[[Exception], bool] = spec
        return predicate
    raise ConfigError(
        f"invalid {field} = {quote(spec)} from {source}: expected an exception class, a "
        "tuple of them, a predicate taking the exception and returning a bool, or dotted "
        'class names such as "myapp.errors.Declined"',
        field=field,
        value=spec,
        source=source,
    )


def imported_classes(
    names: tuple[str, ...], field: str, source: str
) -> tuple[type[BaseException], ...]:
    """The exception classes ``names`` (checked dotted names) denote, imported now (when
    a plan is built); a name that does not import, or is no exception class, is a
    ``ConfigError`` naming the setting, the name and where it came from."""
    classes: list[type[BaseException]] = []
    for name in names:
        found = _import(name, field, source)
        if not (isinstance(found, type) and issubclass(found, BaseException)):
            raise ConfigError(
                f"invalid {field} = {quote(name)} from {source}: {name} is a "
                f"{type(found).__name__}, not an exception class",
                field=field,
                value=name,
                source=source,
            )
        classes.append(found)
    return tuple(classes)


def _import(name: str, field: str, source: str) -> object:
    """The object a dotted name denotes: the longest importable module prefix, then
    attributes (``pkg.mod.Outer.Inner``)."""
    parts = name.split(".")
    problem = ""
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found: object = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            problem = str(exc)
            missing = exc.name or ""
            if missing != module_name and not module_name.startswith(f"{missing}."):
                break  # the module exists but imports something missing: say that
            continue
        except Exception as exc:  # the module raised while importing: its own problem
            problem = f"importing {module_name} raised {type(exc).__name__}: {exc}"
            break
        try:
            for attribute in parts[cut:]:
                found = getattr(found, attribute)
        except AttributeError:
            problem = f"module {module_name} has no attribute {'.'.join(parts[cut:])!r}"
            break
        return found
    raise ConfigError(
        f"invalid {field} = {quote(name)} from {source}: cannot import it ({problem})",
        field=field,
        value=name,
        source=source,
    )


class Verdicts:
    """One plan's rules, asked on every failed attempt (and every result when
    ``trip_if_result`` is set); see the module docstring for the order.

    A predicate of ``trip_on``, ``breaker_ignores`` or ``trip_if_result`` that raises does
    not break the call: it is logged (the first time at WARNING with its traceback, then
    at DEBUG), counted in ``errors_by_type`` as ``"<option>:<ExceptionType>"``, and the
    outcome is taken as if that option were not set (a failure for ``trip_on``, not
    ignored for ``breaker_ignores``, a success for ``trip_if_result``). A ``give_up_on``
    predicate that raises makes it a failure here (logged and counted the same way), and
    its exception still reaches the caller from the retry decision when there is a retry
    left to decide, as before: it decides the call's fate.
    """

    __slots__ = ("_by_type", "_count", "_logger", "_warned", "counting", "operation")

    def __init__(
        self,
        counting: Counting,
        operation: str,
        logger: logging.Logger,
        count: Callable[[str], None],
    ) -> None:
        self.counting = counting
        self.operation = operation
        self._logger = logger
        self._count = count  # the error log's count_type
        self._warned: set[str] = set()
        rules = (counting.trip_on, counting.breaker_ignores, counting.give_up_on)
        by_type_only = all(rule is None or _plain_classes(rule) for rule in rules)
        self._by_type: dict[type, int] | None = {} if by_type_only else None

    def verdict(self, exc: Exception) -> int:
        """``FAILURE``, ``SUCCESS`` or ``NEITHER`` for an attempt that raised ``exc``."""
        cache = self._by_type
        if cache is None:
            return self._decide(exc)
        kind = type(exc)
        answer = cache.get(kind)
        if answer is None:
            answer = self._decide(exc)
            if len(cache) < _MAX_CACHED:
                cache[kind] = answer
        return answer

    def result_trips(self, result: Any) -> bool:
        """``trip_if_result(result)``, or False (logged, counted) when it raises."""
        check = self.counting.trip_if_result
        if check is None:
            return False
        try:
            return bool(check(result))
        except Exception as exc:
            self._broken("trip_if_result", check, exc, "the result counts as a success")
            return False

    def _decide(self, exc: Exception) -> int:
        if isinstance(exc, NOT_COUNTED):
            return NEITHER
        counting = self.counting
        ignores = counting.breaker_ignores
        if ignores is not None and self._matches("breaker_ignores", ignores, exc, False):
            return NEITHER
        if counting.trip_on is not None:
            return FAILURE if self._matches("trip_on", counting.trip_on, exc, True) else SUCCESS
        give_up = counting.give_up_on
        if give_up is not None and self._matches("give_up_on", give_up, exc, False):
            return SUCCESS
        return FAILURE

    def _matches(self, field: str, rule: ErrorTest, exc: Exception, broken: bool) -> bool:
        if type(rule) is tuple:
            return isinstance(exc, rule)
        try:
            return bool(rule(exc))  # type: ignore[operator]
        except Exception as error:
            outcome = (
                "the error is not ignored"
                if field == "breaker_ignores"
                else "the error counts as a failure"
            )
            self._broken(field, rule, error, outcome)
            return broken

    def _broken(self, field: str, rule: object, error: Exception, outcome: str) -> None:
        key = f"{field}:{type(error).__name__}"
        self._count(key)
        first = field not in self._warned
        self._warned.add(field)  # a set's add is atomic: at worst two first warnings
        level = logging.WARNING if first else logging.DEBUG
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level,
                "operation %r: %s %r raised %r; %s (counted in errors_by_type as %r%s)",
                self.operation,
                field,
                rule,
                error,
                outcome,
                key,
                "; later failures of it are logged at DEBUG" if first else "",
                exc_info=error if first else None,
                extra=log_extra(self.operation, setting=field, error_type=type(error).__name__),
            )


def _plain_classes(rule: ErrorTest) -> bool:
    """A tuple of classes whose isinstance answer depends on the type alone (no
    ``__instancecheck__`` of a metaclass, such as an ABC's ``register``)."""
    return type(rule) is tuple and all(type(cls) is type for cls in rule)
