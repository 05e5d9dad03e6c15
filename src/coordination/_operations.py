"""The ``operations:`` setting: operation name → its own per-call options, checked.

Each entry holds per-call options for one operation, over the process-wide settings and
under the options its decorator or call gives (``handle_errors(...)``,
``execute_with_error_handling(..., max_retries=...)``). A value is checked by the schema
of the per-call setting it names, so it is refused in the same words as anywhere else,
with its own line::

    invalid max_retries = -1 from coordination.yaml, line 12 (operations.payments): must be …

A file and the environment (``COORDINATION_OPERATIONS``, JSON: operation names are free
text no variable name can spell) are data: every key must be a per-call setting. Code
may also give the options that take code (``retry_on``, ``fallback``, ...) and values in
their code form (a ``Rate``, exception types): the configuration keeps those as given,
and the error handler checks them, as it checks every per-call option, when it is made.

>>> from coordination._settings import SETTINGS
>>> read_operations({"payments": {"max_retries": 5}}, "keyword argument",
...                 settings=SETTINGS)["payments"]["max_retries"]
5
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError
from ._quote import quote

if TYPE_CHECKING:
    from ._settings import Setting

__all__ = [
    "ANNOTATION",
    "EMPTY",
    "Locate",
    "entry_name",
    "merge_operations",
    "operation_source",
    "parse_operations_text",
    "read_operations",
]

ANNOTATION = "Mapping[str, Mapping[str, Any]]"
EMPTY: Mapping[str, Mapping[str, Any]] = MappingProxyType({})
NAME = "operations"
# Where a key of the mapping was written: its path (operation,) or (operation, option) ->
# the source to name in a message ("coordination.yaml, line 12").
Locate = Callable[[tuple[str, ...]], str]
_SCALARS = (str, int, float, bool, type(None))
_MAX_NAME = 1000  # characters of an operation name: longer is no name anyone typed


def entry_name(operation: str) -> str:
    """``"operations.payments"``: the entry of ``operation``, as messages name it."""
    return f"{NAME}.{_shown_name(operation)}"


def operation_source(source: str, operation: str) -> str:
    """``source`` with the entry it is inside: ``"… line 12 (operations.payments)"``."""
    return f"{source} ({entry_name(operation)})"


def read_operations(
    value: Any,
    source: str,
    *,
    settings: Mapping[str, Setting],
    aliases: Mapping[str, Setting] | None = None,
    warn_renamed: Callable[[str, str, str], None] | None = None,
    locate: Locate | None = None,
    data: bool = False,
    sources: dict[tuple[str, str], str] | None = None,
) -> Mapping[str, Mapping[str, Any]]:
    """``value`` as a read-only mapping of checked per-operation options.

    ``settings`` is the schema (only its per-call settings are options here), ``aliases``
    its old spellings (renamed with ``warn_renamed``). ``data`` says the value comes from
    a file or the environment: then every key must be a per-call setting. ``locate``
    gives each key's own source (a file's lines); ``sources`` is filled with the source
    of each (operation, option) read.
    """
    where: Locate = locate or (lambda path: source)
    if value is None:
        return EMPTY
    if not isinstance(value, Mapping):
        raise _error(value, source, "expected a mapping of operation names to their options")
    entries: dict[str, Mapping[str, Any]] = {}
    for operation, options in value.items():
        if not isinstance(operation, str) or not operation.strip():
            raise _error(
                operation,
                where((str(operation),)),
                "an operation name is a non-empty string",
                field=NAME,
            )
        if len(operation) > _MAX_NAME:
            raise _error(
                operation,
                where((operation,)),
                f"an operation name is at most {_MAX_NAME} characters",
                field=NAME,
            )
        entries[operation] = _read_entry(
            operation,
            options,
            where,
            settings=settings,
            aliases=aliases or {},
            warn_renamed=warn_renamed,
            data=data,
            sources=sources,
        )
    return MappingProxyType(entries)


def _read_entry(
    operation: str,
    options: Any,
    where: Locate,
    *,
    settings: Mapping[str, Setting],
    aliases: Mapping[str, Setting],
    warn_renamed: Callable[[str, str, str], None] | None,
    data: bool,
    sources: dict[tuple[str, str], str] | None,
) -> Mapping[str, Any]:
    entry_source = operation_source(where((operation,)), operation)
    if options is None:  # "payments:" with every option commented out
        return MappingProxyType({})
    if not isinstance(options, Mapping):
        raise _error(
            options,
            entry_source,
            "expected a mapping of per-call options (such as max_retries: 5)",
            field=entry_name(operation),
        )
    checked: dict[str, Any] = {}
    for key, given in options.items():
        written = where((operation, str(key)))
        key_source = operation_source(written, operation)
        setting = _per_call(key, key_source, settings, aliases, warn_renamed)
        if setting is None:
            if data or not isinstance(key, str) or not key.isidentifier():
                raise _unknown(key, key_source, settings, data)
            name = key  # a code-only option: the error handler checks it
            checked[name] = given
        else:
            name = setting.name
            checked[name] = _checked_value(setting, given, key_source, data)
        if sources is not None:
            sources[operation, name] = written
    return MappingProxyType(checked)


def _per_call(
    key: object,
    source: str,
    settings: Mapping[str, Setting],
    aliases: Mapping[str, Setting],
    warn_renamed: Callable[[str, str, str], None] | None,
) -> Setting | None:
    if not isinstance(key, str):
        return None
    setting = settings.get(key)
    if setting is None and key in aliases:
        setting = aliases[key]
        if warn_renamed is not None:
            warn_renamed(key, setting.name, source)
    if setting is not None and not setting.per_call:
        raise ConfigError(
            f"{key} in {source} is no per-call setting: it configures the whole process "
            "(set it at the top level of the configuration)",
            field=key,
            value=None,
            source=source,
        )
    return setting


def _checked_value(setting: Setting, value: Any, source: str, data: bool) -> Any:
    """The value as the per-call path would take it: ``None`` keeps its per-call meaning
    (not set, or the configuration's); a code form the schema does not read (a ``Rate``,
    exception types) is left for the error handler to check."""
    if value is None and not setting.none_unsets:
        return None  # "the configuration's value", as per call
    try:
        return setting.coerce(value, source)
    except ConfigError:
        if data or isinstance(value, _SCALARS):
            raise
        return value


def _unknown(key: object, source: str, settings: Mapping[str, Setting], data: bool) -> ConfigError:
    names = sorted(name for name, setting in settings.items() if setting.per_call)
    close = (
        difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        if isinstance(key, str) and len(key) <= 80
        else []
    )
    hint = f"; did you mean {close[0]!r}?" if close else ""
    code = " (options that take code, such as retry_on or fallback, are given in code)"
    return ConfigError(
        f"unknown option {quote(key)} in {source}{hint}{code if data else ''}",
        field=str(key),
        value=None,
        source=source,
    )


def parse_operations_text(text: str, source: str) -> Any:
    """An environment variable's JSON text as data, or ``ConfigError``."""
    import json  # only when the variable is set: most processes never read JSON here

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(text, source, f"expected JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise _error(text, source, "expected JSON nested at most two levels") from None


def merge_operations(
    lower: Mapping[str, Mapping[str, Any]], upper: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Mapping[str, Any]]:
    """``upper`` over ``lower``, option by option: a layer overrides only the options of
    the operations it names (as a ``config=`` mapping overrides only its keys)."""
    if not lower:
        return upper
    merged = {name: dict(options) for name, options in lower.items()}
    for name, options in upper.items():
        merged.setdefault(name, {}).update(options)
    return MappingProxyType({name: MappingProxyType(o) for name, o in merged.items()})


def _shown_name(operation: str) -> str:
    return operation if len(operation) <= 80 and operation.isprintable() else quote(operation)


def _error(value: Any, source: str, problem: str, *, field: str = NAME) -> ConfigError:
    return ConfigError(
        f"invalid {field} = {quote(value)} from {source}: {problem}",
        field=field,
        value=value,
        source=source,
    )
