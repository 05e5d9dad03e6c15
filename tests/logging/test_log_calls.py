"""Every log call of the library passes its context in ``extra`` (read from the source,
so a new call without one fails here), and ``log_extra`` builds that ``extra`` safely."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest

from coordination import CircuitState, ErrorSeverity
from coordination._logging import log_extra

SOURCE = Path(__file__).parents[2] / "src" / "coordination"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def log_calls() -> list[tuple[str, ast.Call]]:
    """Each ``<something with log in its name>.<level>(...)`` call in src/, by place."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and "log" in ast.unparse(node.func.value).lower()
            ):
                found.append((f"{path.relative_to(SOURCE)}:{node.lineno}", node))
    return found


def test_the_library_has_log_calls_to_check() -> None:
    assert len(log_calls()) > 60  # the walk finds them (a broken walk passes vacuously)


def test_every_log_call_passes_its_context_in_extra() -> None:
    missing = [
        place
        for place, call in log_calls()
        if not any(keyword.arg == "extra" for keyword in call.keywords)
    ]
    assert not missing, f"log calls without extra=: {missing}"


def test_no_extra_field_overwrites_a_record_attribute() -> None:
    """logging raises KeyError for such a name, at the moment the line is logged: a
    rare branch (an outage, a broken hook) would fail instead of saying so."""
    clashes = []
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                ("log_extra", "log_fields")
            ):
                clashes.extend(
                    f"{path.relative_to(SOURCE)}:{node.lineno} {k.arg}"
                    for k in node.keywords
                    if k.arg in RECORD_FIELDS
                )
    assert not clashes


def test_log_extra_leaves_out_what_does_not_apply_and_writes_enums_as_values() -> None:
    assert log_extra() == {}
    assert log_extra("charge", severity=ErrorSeverity.HIGH, attempt=3) == {
        "operation": "charge",
        "severity": "HIGH",
        "attempt": 3,
    }
    assert log_extra(breaker_state=CircuitState.HALF_OPEN, reason=None, count=0) == {
        "breaker_state": "HALF_OPEN",
        "count": 0,
    }


def test_a_record_attribute_name_gets_an_underscore_and_logs() -> None:
    extra = log_extra(name="x", module="y", message="z")
    assert extra == {"name_": "x", "module_": "y", "message_": "z"}
    logging.getLogger("coordination.tests").info("fine", extra=extra)  # no KeyError


class Breaker:
    def __init__(self, blocking: bool, state: Any) -> None:
        self.blocking = blocking
        self._state = state
        self.reads = 0

    @property
    def state(self) -> Any:
        self.reads += 1
        if isinstance(self._state, Exception):
            raise self._state
        return self._state


def test_a_breakers_state_is_read_only_when_that_costs_no_io() -> None:
    local = Breaker(False, CircuitState.OPEN)
    assert log_extra("x", breaker=local)["breaker_state"] == "OPEN"
    shared = Breaker(True, CircuitState.OPEN)  # a Redis breaker: its state is a round trip
    assert "breaker_state" not in log_extra("x", breaker=shared)
    assert shared.reads == 0
    assert "breaker_state" not in log_extra("x", breaker=object())  # unknown: not asked


def test_a_breaker_whose_state_raises_leaves_the_field_out() -> None:
    broken = Breaker(False, RuntimeError("no state"))
    assert log_extra("x", breaker=broken) == {"operation": "x"}
    assert broken.reads == 1


@pytest.mark.parametrize("given", [CircuitState.CLOSED, "CLOSED"])
def test_a_known_state_wins_over_the_breaker(given: Any) -> None:
    breaker = Breaker(False, CircuitState.OPEN)
    assert log_extra(breaker=breaker, breaker_state=given) == {"breaker_state": "CLOSED"}
    assert breaker.reads == 0
