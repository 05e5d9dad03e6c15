"""Counts of failed validations, kept off the invalid path.

A failure is only appended to a deque (atomic in CPython, so no lock); every ``BATCH``
failures, or when a report is asked for, the batch is counted at once with ``Counter``
over C iterators. The tables are bounded: rule-set names come already capped, and field
labels beyond the cap are counted under the overflow name.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from itertools import chain, repeat, starmap
from operator import attrgetter, itemgetter
from typing import Any

from .._bounded import OVERFLOW_OPERATION
from .._redact import redact_value
from ._result import ValidationIssue, field_label

__all__ = ["BATCH", "FailureStats", "now"]

BATCH = 256
_RECENT_FAILURES = 20
_ERRORS_PER_FAILURE = 10

now = time.time
_name = itemgetter(1)
_rule_set = itemgetter(2)
_issues = itemgetter(3)
# an issue's slots, read in C (never its message, which may not be phrased yet)
_code = attrgetter("_code")
_pointer = attrgetter("_pointer")
_rule_set_and_code = attrgetter("_rule_set", "_code")

# (time.time(), capped rule-set name, the rule set its issues carry, the issues)
Failure = tuple[float, str, str, tuple[ValidationIssue, ...]]


class FailureStats:
    """Failed validations per rule set, per (rule set, code) and per field; recent ones."""

    def __init__(self, field_cap: int, admit: Callable[[str], str]) -> None:
        """``admit`` caps rule-set names (``BoundedNames.admit``)."""
        self._field_cap = field_cap
        self._admit = admit
        self._lock = threading.Lock()
        # A failure is recorded by appending ``(now(), capped name, rule set, issues)`` here
        # (every issue carrying that rule set) and calling ``flush`` once BATCH are pending:
        # the validator does it inline, one C call on its invalid path.
        self.pending: deque[Failure] = deque()
        self._recent: deque[Failure] = deque(maxlen=_RECENT_FAILURES)
        self.invalid: Counter[str] = Counter()
        self.by_rule_set_and_code: Counter[tuple[str, str]] = Counter()
        self.by_field: Counter[str] = Counter()

    def flush(self) -> None:
        """Count the pending failures into the tables."""
        with self._lock:
            # popleft, not a swap or a copy: an append racing with the flush is never lost;
            # starmap makes the n calls from C
            pending = self.pending
            batch = list(starmap(pending.popleft, repeat((), len(pending))))
            if not batch:
                return
            self._recent.extend(batch[-_RECENT_FAILURES:])
            self.invalid.update(_tally(list(map(_name, batch))))
            issues = list(chain.from_iterable(map(_issues, batch)))
            # Counting single strings (an issue's code and pointer are shared objects) costs
            # half as much as counting tuples built for the purpose, so a batch of one rule
            # set — the usual case — counts codes alone.
            rule_sets = set(map(_rule_set, batch))
            pairs: Mapping[tuple[str, str], int]
            if len(rule_sets) == 1:
                rule_set = rule_sets.pop()
                codes = _tally(list(map(_code, issues)))
                pairs = {(rule_set, code): n for code, n in codes.items()}
            else:
                pairs = Counter(map(_rule_set_and_code, issues))
            for (name, code), count in pairs.items():
                self.by_rule_set_and_code[(self._admit(name), code)] += count
            for pointer, count in _tally(list(map(_pointer, issues))).items():
                self._count_field(_label(pointer), count)

    def _count_field(self, label: str, count: int) -> None:
        if label not in self.by_field and len(self.by_field) >= self._field_cap:
            label = OVERFLOW_OPERATION
        self.by_field[label] += count

    def recent(self) -> list[dict[str, Any]]:
        """The last failures, newest last, as JSON-ready dicts (first errors only)."""
        self.flush()
        return [
            {
                "timestamp": datetime.fromtimestamp(when, UTC).isoformat(),
                "rule_set": name,
                "errors": [redact_value(issue.to_dict()) for issue in issues[:_ERRORS_PER_FAILURE]],
                "error_count": len(issues),
            }
            for when, name, _rule_set, issues in list(self._recent)
        ]

    def by_error_code(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for (_rule_set, code), count in self.by_rule_set_and_code.items():
            total[code] += count
        return dict(total.most_common())


def _tally(values: list[str]) -> Mapping[str, int]:
    """How often each value occurs. A batch usually holds a few distinct codes, pointers
    and names, each repeated many times: then one ``list.count`` per distinct value (a C
    scan that compares by identity first) costs a third of ``Counter``'s dict update per
    item; past ``_FEW`` distinct values, ``Counter`` is the cheaper."""
    distinct = set(values)
    if len(distinct) > _FEW:
        return Counter(values)
    return {value: values.count(value) for value in distinct}


_FEW = 8


def _label(pointer: str) -> str:
    # An issue's field label is a function of its JSON pointer (RFC 6901 escapes are
    # reversible), so fields are counted by the pointer string and labelled once per batch.
    parts = pointer.split("/")[1:]
    return field_label(tuple(p.replace("~1", "/").replace("~0", "~") for p in parts))
