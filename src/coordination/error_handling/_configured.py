"""The configuration's ``operations:`` entries under the options code gives a plan.

The handler's ``plan()`` is the one place an entry meets the code's options: the
settings < ``operations[name]`` < the decorator's / call's own options, decided when the
plan is built, never per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._config import CoordinationConfig
from .._errors import ConfigError
from .._operations import entry_name
from .._settings import ALIASES, SETTINGS
from ._options import resolve_options

__all__ = ["check_operations", "over_configured"]


def over_configured(
    config: CoordinationConfig, name: str, overrides: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``overrides`` over the configuration's options for operation ``name``. A ``None``
    the code gives keeps its per-call meaning: "not set" where the schema says so
    (``timeout``), else "the configuration's value", which is now the operation's."""
    configured = config.operations.get(name)
    if not configured:
        return overrides
    merged = dict(configured)
    for key, value in overrides.items():
        setting = SETTINGS.get(key) or ALIASES.get(key)
        if value is None and setting is not None and setting.per_call and not setting.none_unsets:
            continue
        if setting is not None and setting.name != key:  # the call's old spelling wins
            merged.pop(setting.name, None)
        merged[key] = value
    return merged


def check_operations(config: CoordinationConfig) -> None:
    """Every entry of ``config.operations`` checked as per-call options are, now: a file's
    were checked when it was read; code may have given options that take code."""
    for name, configured in config.operations.items():
        where = f"the configuration's {entry_name(name)}"
        if "operation_name" in configured:
            raise ConfigError(
                f"operation_name in {where} cannot be set: the entry's key is the operation's name",
                field="operation_name",
                value=configured["operation_name"],
                source=where,
            )
        try:
            resolve_options(config, configured)
        except ConfigError as exc:
            # resolve_options names its source "keyword argument": here it is the entry
            message = str(exc)
            said = f" from {exc.source}" if exc.source else ""
            if said and said in message:
                message = message.replace(said, f" from {where}", 1)
            else:
                message = f"{message} (in {where})"
            raise ConfigError(message, field=exc.field, value=exc.value, source=where) from None
