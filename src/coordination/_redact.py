"""Keeping secrets and huge values out of messages, reports and logs.

Every component that shows user data (validation errors, error reports, dead letters,
logs) goes through these helpers, so the rule is written once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redact_mapping", "safe_repr", "truncate"]

REDACTED = "[redacted]"

# Matched against a normalised name (lower case, separators removed), so "X-Api-Key",
# "api_key" and "apiKey" are all caught.
_SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|apikey|accesskey|privatekey"
    r"|cookie|session(id)?|credential|signature|csrf|xsrf|bearer|jwt|pin|cvv|ssn"
)
_SEPARATORS = re.compile(r"[-_.\s]")


def is_secret_name(name: object) -> bool:
    """True when a field, header or argument name looks like it holds a secret."""
    if not isinstance(name, str):
        return False
    return _SECRET_NAME.search(_SEPARATORS.sub("", name.lower())) is not None


def truncate(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def safe_repr(value: Any, limit: int = 80) -> str:
    """A short ``repr`` for messages: bounded in length and never raising."""
    try:
        if isinstance(value, str | bytes) and len(value) > limit:
            text = repr(value[:limit]) + f"… [{len(value)} in all]"
        elif isinstance(value, list | tuple | set | frozenset | dict) and len(value) > 20:
            text = f"<{type(value).__name__} of {len(value)} items>"
        else:
            text = repr(value)
    except Exception:  # a hostile __repr__ must not break error reporting
        text = f"<{type(value).__name__} object>"
    return truncate(text, limit)


def redact_mapping(data: Mapping[Any, Any], depth: int = 4) -> dict[Any, Any]:
    """A copy of ``data`` with the values of secret-looking keys replaced, nested too."""
    result: dict[Any, Any] = {}
    for key, value in data.items():
        if is_secret_name(key):
            result[key] = REDACTED
        elif isinstance(value, Mapping) and depth > 0:
            result[key] = redact_mapping(value, depth - 1)
        else:
            result[key] = value
    return result
