"""Quoting a value in a message: short, bounded in work, and never raising.

A value quoted in an error comes from a user's file, variable or call, and may be hostile:
a ten-megabyte string, an integer longer than ``int``'s string limit, or a YAML alias bomb
(a list whose items are one list shared a billion times over, so a plain ``repr`` would
take minutes and end in ``MemoryError``). ``quote`` looks at a few levels and a few items of
each container, so its cost is bounded whatever it is given.

>>> quote("x" * 1000, limit=20)
"'xxxxxx...xxxxxxx' [1000 characters]"
>>> quote(10**5000)
'<integer of about 5001 digits>'
"""

from __future__ import annotations

import reprlib
from typing import Any

from ._redact import redact

__all__ = ["quote"]

# Text is redacted before it is shortened: cutting first could split a token so that the
# policy no longer recognises it and its visible half is shown. Past this many characters
# only the windows that can be shown are redacted, so quoting stays bounded in work.
_REDACT_WHOLE = 65536
_REDACT_WINDOW = 4096

# Integers with more bits than this are described rather than written out: ``repr`` of an
# int past sys.get_int_max_str_digits() raises, and a long one says nothing useful anyway.
_MAX_INT_BITS = 256


class _ShortRepr(reprlib.Repr):
    """``reprlib.Repr`` that also bounds subclasses (YAML's line-keeping dicts) and ints."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxset = self.maxfrozenset = self.maxdeque = 6
        self.maxarray = 6
        self.maxdict = 4
        self.maxstring = self.maxother = self.maxlong = max(limit - 2, 8)

    def repr1(self, x: Any, level: int) -> str:
        # reprlib dispatches on the exact type name, so a dict subclass would fall through
        # to the unbounded builtin repr: dispatch the containers by isinstance instead.
        if isinstance(x, bool) or x is None:
            return repr(x)
        if isinstance(x, int):
            return self.repr_int(int(x), level)
        if isinstance(x, str):
            return self._repr_text(str(x))
        if isinstance(x, bytes | bytearray):
            return self._repr_text(bytes(x[: self.maxstring + 1]), len(x))
        if isinstance(x, dict):
            return self.repr_dict(x, level)
        if isinstance(x, list):
            return self.repr_list(x, level)
        if isinstance(x, tuple):
            return self.repr_tuple(x, level)
        if isinstance(x, frozenset):
            return self.repr_frozenset(x, level)
        if isinstance(x, set):
            return self.repr_set(x, level)
        return super().repr1(x, level)

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > _MAX_INT_BITS:
            digits = int(x.bit_length() * 0.30103) + 1
            return f"<{'negative ' if x < 0 else ''}integer of about {digits} digits>"
        return super().repr_int(x, level)

    def _repr_text(self, text: str | bytes, length: int | None = None) -> str:
        length = len(text) if length is None else length
        if isinstance(text, str):
            if len(text) <= _REDACT_WHOLE:
                text = redact(text)
            else:
                text = redact(text[:_REDACT_WINDOW]) + "\n" + redact(text[-_REDACT_WINDOW:])
        if length <= self.maxstring:
            return repr(text)
        shown = repr(text[: self.maxstring])
        head = max((self.maxstring - 3) // 2, 1)
        tail = max(self.maxstring - 3 - head, 1)
        return f"{shown[:head]}...{shown[-tail:]} [{length} {_unit(text)}]"

    def repr_dict(self, x: Any, level: int) -> str:
        # reprlib sorts the keys first, which is O(n log n) for a huge mapping: keep the
        # mapping's own order and look only at the first few items.
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        parts = []
        for index, (key, value) in enumerate(x.items()):
            if index >= self.maxdict:
                parts.append("...")
                break
            parts.append(f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}")
        return "{" + ", ".join(parts) + "}"


def _unit(text: str | bytes) -> str:
    return "characters" if isinstance(text, str) else "bytes"


_REPRS: dict[int, _ShortRepr] = {}


def quote(value: Any, limit: int = 80) -> str:
    """A ``repr`` of ``value`` for a message: at most about ``limit`` characters.

    Bounded in time and memory whatever ``value`` is (huge, deeply nested, shared or
    cyclic), and it never raises: a hostile ``__repr__`` gives ``<TypeName object>``.
    """
    shorten = _REPRS.get(limit)
    if shorten is None:
        shorten = _ShortRepr(limit)
        if len(_REPRS) < 16:  # callers use a few constant limits; never grow without bound
            _REPRS[limit] = shorten
    try:
        text = shorten.repr(value)
    except Exception:  # a hostile __repr__ must not break the error that quotes it
        return f"<{type(value).__name__} object>"
    if len(text) > limit + 30:  # room for the "[N characters]" note
        text = f"{text[:limit]}..."
    return text
