"""How a call's arguments become the message a rule set checks — one rule for every door.

``validate_input``, ``coordinate_operation`` and ``CoordinationServiceWrapper.wrap_method``
all use ``CallMessages``. The rule, for a rule set that names the fields ``F``:

1. Every field of ``F`` is a parameter: the message is those arguments, by parameter name
   (defaults applied), as in ``update_user_profile(user_id, data)``.
2. Otherwise the fields come from the call's single *record* argument — a pydantic model
   (its JSON-mode ``model_dump``), a dataclass (``dataclasses.asdict``, made JSON), or a
   mapping, in that order of preference — plus the arguments ``F`` names, as in
   ``create_user(user_data)`` and in a FastAPI endpoint taking a pydantic model.
3. Otherwise the message is the arguments ``F`` names (the missing ones are reported).

A rule set that names no field (a raw schema such as ``{"type": "array"}``) checks the
single argument itself (converted as above) — a list posted to a batch endpoint, a string —
or, with several arguments, the single record, else the arguments that have a JSON form.

Arguments that no rule names are never an error, whatever their type (a ``datetime``, a
``Request``, a socket): they are not in the message. ``self`` and ``cls`` are skipped. The
signature is read once; a call that does not fit it raises the ``TypeError`` the call
itself would. pydantic is never imported: models are recognised by their methods.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import ipaddress
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["CallMessages", "as_message_value"]

_MISSING: Any = inspect.Parameter.empty
_PLAIN = frozenset({str, int, float, bool, type(None), dict})
_MAX_PLANS = 16  # rule sets one function is checked against (a name may be reloaded)
_MAX_CONVERSION_DEPTH = 100  # deeper values are left as they are (the limits report them)
_UNCONVERTIBLE: Any = object()
_Plain = inspect.Parameter


def _is_model(value: Any) -> bool:
    """A pydantic (v2) model instance, recognised without importing pydantic."""
    cls = value.__class__
    return (
        not isinstance(value, type)
        and callable(getattr(cls, "model_dump", None))
        and hasattr(cls, "model_fields")
    )


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def as_message_value(value: Any) -> Any:
    """``value`` as the validator should see it: models and dataclasses by their fields.

    Plain JSON values are returned as they are (a dict is a message already); a list or
    tuple holding models or dataclasses has them converted; anything else is returned
    unchanged (and reported by the validator if a rule looks at it).
    """
    cls = value.__class__
    if cls in _PLAIN:
        return value
    if cls is list or cls is tuple:
        if any(_is_record_object(item) for item in value):
            return [as_message_value(item) for item in value]
        return value
    if _is_model(value):
        return _model_fields(value)
    if _is_dataclass_instance(value):
        return _dataclass_fields(value)
    return value


def _is_record_object(value: Any) -> bool:
    return value.__class__ not in _PLAIN and (_is_model(value) or _is_dataclass_instance(value))


def _model_fields(model: Any) -> Any:
    try:
        return model.model_dump(mode="json")
    except Exception:  # a field pydantic cannot serialise: the plain dump, made JSON here
        try:
            dumped = model.model_dump()
        except Exception:
            return {name: getattr(model, name, None) for name in type(model).model_fields}
        return _jsonable(dumped, 0)


def _dataclass_fields(instance: Any) -> Any:
    try:
        fields = dataclasses.asdict(instance)
    except (RecursionError, TypeError, ValueError):  # cyclic, or a field deepcopy refuses
        fields = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    return _jsonable(fields, 0)


def _jsonable(value: Any, depth: int) -> Any:
    """``value`` with the common Python types in their JSON form (as pydantic's JSON mode).

    Values with no JSON form stay as they are, so the validator names them if a rule
    reads them; ``_record_fields`` leaves out the top-level ones no rule names.
    """
    cls = value.__class__
    if cls in _PLAIN and cls is not dict:
        return value
    if depth > _MAX_CONVERSION_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, depth + 1)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, _AS_TEXT):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if _is_model(value):
        return _model_fields(value)
    if _is_dataclass_instance(value):
        return _dataclass_fields(value)
    return value


_AS_TEXT = (
    uuid.UUID,
    decimal.Decimal,
    PurePath,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def _key(key: Any) -> Any:
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        key = key.value
    return str(key) if isinstance(key, int | float | uuid.UUID) else key


def _has_json_form(value: Any, depth: int = 0) -> bool:
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return True
    if cls is float:
        return math.isfinite(value)
    if depth > _MAX_CONVERSION_DEPTH:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _has_json_form(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_has_json_form(item, depth + 1) for item in value)
    return isinstance(value, str | int | float)


def _single_record(values: Iterable[Any]) -> Any:
    """The one record among ``values``: a model or dataclass, else a dict, else a mapping."""
    structured: list[Any] = []
    dicts: list[Any] = []
    mappings: list[Any] = []
    for value in values:
        if value.__class__ in _PLAIN and value.__class__ is not dict:
            continue
        if isinstance(value, dict):
            dicts.append(value)
        elif isinstance(value, Mapping):
            mappings.append(value)
        elif _is_model(value) or _is_dataclass_instance(value):
            structured.append(value)
    for candidates in (structured, dicts, mappings):
        if candidates:
            return candidates[0] if len(candidates) == 1 else None
    return None


def _record_fields(record: Any, fields: frozenset[str]) -> dict[str, Any]:
    if isinstance(record, Mapping):
        return dict(record)
    converted = as_message_value(record)
    if not isinstance(converted, dict):
        return {}
    # a field of the model that no rule names and that has no JSON form is left out
    return {k: v for k, v in converted.items() if k in fields or _has_json_form(v)}


class _Plan:
    """Where each field of one rule set is found among the parameters (``direct``), or
    None when some field is not a parameter (then the general rule applies)."""

    __slots__ = ("direct", "fields")

    def __init__(
        self,
        fields: frozenset[str] | None,
        direct: tuple[tuple[str, int | None, bool, Any], ...] | None,
    ) -> None:
        self.fields = fields
        self.direct = direct


class CallMessages:
    """The message for each call of ``func`` (see the module's docstring for the rule).

    >>> def update(user_id, data=None): ...
    >>> CallMessages(update).message(("7",), {}, frozenset({"user_id"}))
    {'user_id': '7'}
    """

    __slots__ = (
        "_has_var_keyword",
        "_keyword_names",
        "_n_positional",
        "_parameters",
        "_plans",
        "_positional_names",
        "_signature",
        "_skip",
    )

    def __init__(self, func: Callable[..., Any]) -> None:
        try:
            signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins have none
            signature = None
        self._signature = signature
        parameters = list(signature.parameters.values()) if signature else []
        self._skip = 1 if parameters and parameters[0].name in ("self", "cls") else 0
        parameters = parameters[self._skip :]
        self._parameters = tuple(parameters)
        positional = [p for p in parameters if p.kind in _POSITIONAL]
        # names by position, self/cls included: args[i] is the argument of parameter i
        self._positional_names = (*(("",) * self._skip), *(p.name for p in positional))
        self._n_positional = len(self._positional_names)
        self._keyword_names = frozenset(p.name for p in parameters if p.kind in _KEYWORD)
        self._has_var_keyword = any(p.kind is _Plain.VAR_KEYWORD for p in parameters)
        self._plans: dict[frozenset[str] | None, _Plan] = {}

    def message(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], fields: frozenset[str] | None
    ) -> Any:
        """The message for one call, for a rule set naming ``fields`` (None: unknown)."""
        plan = self._plans.get(fields)
        if plan is None:
            plan = self._plan(fields)
        direct = plan.direct
        if direct is not None and len(args) <= self._n_positional and self._fits(args, kwargs):
            message: dict[str, Any] = {}
            count = len(args)
            for name, index, by_keyword, default in direct:
                if index is not None and index < count:
                    value = args[index]
                elif by_keyword and name in kwargs:
                    value = kwargs[name]
                elif default is not _MISSING:
                    value = default
                else:  # a required argument is missing: the call's own TypeError
                    return self._general(args, kwargs, plan.fields)
                message[name] = as_message_value(value)
            return message
        return self._general(args, kwargs, plan.fields)

    def _fits(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
        """Whether the keywords surely bind as written (else ``bind`` decides, or raises)."""
        if not kwargs:
            return True
        names = self._positional_names
        for key in kwargs:
            if key not in self._keyword_names and not self._has_var_keyword:
                return False
            if key in names[: len(args)]:  # given twice
                return False
        return True

    def _plan(self, fields: frozenset[str] | None) -> _Plan:
        direct = None
        if fields:
            by_name = {p.name: p for p in self._parameters if p.kind not in _VARIADIC}
            if fields <= by_name.keys():
                index = {name: i for i, name in enumerate(self._positional_names)}
                direct = tuple(
                    (
                        name,
                        index.get(name),
                        by_name[name].kind is not _Plain.POSITIONAL_ONLY,
                        by_name[name].default,
                    )
                    for name in sorted(fields)
                )
        plan = _Plan(fields, direct)
        if len(self._plans) < _MAX_PLANS:
            self._plans[fields] = plan
        return plan

    def _arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Every named argument of the call, defaults applied, ``**kwargs`` spread out."""
        if self._signature is None:
            return dict(kwargs)
        # A call that does not fit the signature raises the TypeError the call would.
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        named: dict[str, Any] = {}
        for parameter in self._parameters:
            if parameter.name not in bound.arguments:
                continue
            value = bound.arguments[parameter.name]
            if parameter.kind is _Plain.VAR_KEYWORD:  # last: a parameter's own name wins
                for key, item in value.items():
                    named.setdefault(key, item)
            elif parameter.kind is not _Plain.VAR_POSITIONAL:
                named[parameter.name] = value
        return named

    def _general(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], fields: frozenset[str] | None
    ) -> Any:
        named = self._arguments(args, kwargs)
        unnamed = args if self._signature is None else ()
        if fields:
            if fields <= named.keys():
                return {name: as_message_value(named[name]) for name in fields}
            record = _single_record((*unnamed, *named.values()))
            if record is not None:
                message = _record_fields(record, fields)
                message.update(
                    (name, as_message_value(named[name]))
                    for name in fields
                    if name in named and named[name] is not record
                )
                return message
            return {name: as_message_value(named[name]) for name in fields if name in named}
        # the rule set names no field (or is not known): the single argument itself, ...
        values = (*unnamed, *named.values())
        if len(values) == 1:
            return as_message_value(values[0])
        if fields is not None:
            record = _single_record(values)
            if record is not None:
                return _record_fields(record, frozenset())
        # ... or the arguments that have a JSON form (the others no rule can name)
        converted = {name: as_message_value(value) for name, value in named.items()}
        return {name: value for name, value in converted.items() if _has_json_form(value)}


_POSITIONAL = (_Plain.POSITIONAL_ONLY, _Plain.POSITIONAL_OR_KEYWORD)
_KEYWORD = (_Plain.POSITIONAL_OR_KEYWORD, _Plain.KEYWORD_ONLY)
_VARIADIC = (_Plain.VAR_POSITIONAL, _Plain.VAR_KEYWORD)


def rule_fields(validator: Any, rule_set: Any) -> Callable[[], frozenset[str] | None]:
    """What tells, at each call, which fields ``rule_set`` names (None: it cannot be known).

    A compiled rule set names fixed fields; a loaded name is looked up at each call (so
    ``reload_rules`` takes effect); a validator that is not ours cannot say.
    """
    from ._ruleset import RuleSet

    if isinstance(rule_set, RuleSet):
        fixed = rule_set.field_names
        return lambda: fixed
    lookup = getattr(validator, "rule_set", None)
    if lookup is None:
        return lambda: None

    def current() -> frozenset[str] | None:
        found = lookup(rule_set)
        return found.field_names if isinstance(found, RuleSet) else None

    return current
