"""The status page's history of breaker transitions, fed hostile reasons."""

from __future__ import annotations

from dataclasses import dataclass

from coordination import CircuitState
from coordination.error_handling import BreakerTransition
from coordination.observability._status_page import _Past


@dataclass
class Handler:  # the two fields of a HandlerSnapshot the history reads
    taken_at: float | None
    transitions: tuple[BreakerTransition, ...]


def test_a_long_reason_is_redacted_before_it_is_cut() -> None:
    # was truncate() then redact(): the cut fell inside the URL's userinfo, whose "@"
    # was gone, so the first part of the password was shown
    reason = "x" * 170 + " redis://admin:supersecretpassword@cache:6379/0 failed"
    moved = BreakerTransition("ledger", CircuitState.CLOSED, CircuitState.OPEN, reason, 5.0)
    past = _Past()
    past.add_handler(Handler(10.0, (moved,)))
    ((age, name, old, new, shown),) = past.transitions
    assert (age, name, old, new) == (5.0, "ledger", "CLOSED", "OPEN")
    assert "supersecre" not in shown
    assert len(shown) <= 260
