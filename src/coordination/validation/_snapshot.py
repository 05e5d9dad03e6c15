"""``ValidationSnapshot``: the validator's counts as the readers (metrics, status page) use them.

Built from ``get_validation_report()``, the validator's public contract, so the same type
comes from the library's validator and from any object that reports the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["ValidationSnapshot"]


@dataclass(frozen=True, slots=True)
class ValidationSnapshot:
    """Messages validated: in all, and per rule set; errors per rule set and code.

    ``by_rule_set`` maps a rule set to ``{"valid": n, "invalid": n}`` (only the results the
    report gave); ``failures`` holds ``(rule_set, code, count)``, the most frequent first.
    """

    total: int
    valid: int
    invalid: int
    by_rule_set: Mapping[str, Mapping[str, int]]
    failures: tuple[tuple[str, str, int], ...]

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> ValidationSnapshot:
        by_rule_set = {
            str(name): MappingProxyType(
                {k: _count(counts[k]) for k in ("valid", "invalid") if k in counts}
            )
            for name, counts in (report.get("by_rule_set") or {}).items()
        }
        failures = tuple(
            (str(f["rule_set"]), str(f["code"]), _count(f["count"]))
            for f in report.get("failures_by_rule_set_and_code") or ()
        )
        return cls(
            total=_count(report.get("total_validations", 0)),
            valid=_count(report.get("valid", 0)),
            invalid=_count(report.get("invalid", 0)),
            by_rule_set=MappingProxyType(by_rule_set),
            failures=failures,
        )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number in the validation report, got {value!r}")
    return int(value)
