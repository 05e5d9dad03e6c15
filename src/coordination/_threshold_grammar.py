"""The grammar of ``operation_thresholds`` and the limits of each threshold.

A core module: the configuration checks an ``operation_thresholds`` value with exactly
the grammar and limits the performance monitor reads it with, and
``PerformanceThresholds`` checks its fields with the same words.

>>> read_operation_thresholds("checkout: p95_ms=250 p99_ms=800; search: error_rate=0.1")
{'checkout': {'p95_ms': 250.0, 'p99_ms': 800.0}, 'search': {'error_rate': 0.1}}
"""

from __future__ import annotations

import math
import re
from typing import Any

from ._quote import quote

__all__ = [
    "THRESHOLD_EXAMPLE",
    "THRESHOLD_KEYS",
    "read_operation_thresholds",
    "threshold_problem",
]

THRESHOLD_KEYS = ("p95_ms", "p99_ms", "error_rate", "min_samples")
THRESHOLD_EXAMPLE = '"name: p95_ms=250 p99_ms=800 error_rate=0.05 min_samples=20"'

_NUMBER = r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_ITEM = re.compile(rf"(p95_ms|p99_ms|error_rate|min_samples)\s*=\s*({_NUMBER})")
_ENTRY = re.compile(
    rf"\s*([^;:=\s][^;:=]*?)\s*:\s*((?:{_ITEM.pattern})(?:\s*,?\s*(?:{_ITEM.pattern}))*)\s*"
)


def threshold_problem(name: str, value: object) -> str | None:
    """What is wrong with ``value`` as threshold ``name``, or None (None is "no limit")."""
    if name == "min_samples":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return None if ok else "expected a whole number of at least 1"
    if value is None:
        return None
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if name == "error_rate":
        ok = number is not None and 0 <= number <= 1
        return None if ok else "expected a fraction between 0 and 1"
    ok = number is not None and 0 < number < math.inf
    return None if ok else "expected a positive number of milliseconds"


def read_operation_thresholds(text: str) -> dict[str, dict[str, Any]]:
    """Each operation's thresholds from the compact form, checked.

    ``ValueError`` says what is wrong (the entry and the expected form, or the threshold
    and its limit) without quoting the whole of ``text``: the caller names the field, the
    value and the source.
    """
    result: dict[str, dict[str, Any]] = {}
    for number, entry in enumerate(filter(str.strip, text.split(";")), start=1):
        match = _ENTRY.fullmatch(entry)
        if match is None:
            raise ValueError(
                f"entry {number} {quote(entry.strip())} is not of the form {THRESHOLD_EXAMPLE}"
            )
        values: dict[str, Any] = {}  # float, or int for min_samples
        for key, raw in _ITEM.findall(match.group(2)):
            values[key] = int(float(raw)) if key == "min_samples" else float(raw)
            problem = threshold_problem(key, values[key])
            if problem is not None:
                raise ValueError(
                    f"for {quote(match.group(1))}: {key} = {quote(values[key])}: {problem}"
                )
        result[match.group(1)] = values
    return result
