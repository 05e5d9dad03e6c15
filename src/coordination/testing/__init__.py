"""Helpers for testing your own code with coordination.

``set_testing(True, attempts=1)`` (also a context manager) turns off retry waits and caps
attempts, stamina-style. ``reset_default_coordination()`` forgets the process-wide
components, so each test starts with new ones. ``FaultInjector`` makes a dependency fail on
a schedule (errors, latency, an outage, then recovery), deterministically with a seed and an
injectable clock. ``capture_spans()`` records the library's spans of a block with
OpenTelemetry's SDK (``opentelemetry-sdk``, imported only then).
"""

from ._defaults import reset_default_coordination
from ._faults import (
    FaultInjector,
    FaultPhase,
    FaultStats,
    InjectedError,
    InjectedOutage,
    outage_scenario,
)
from ._mode import current_testing_mode, is_testing, set_testing
from ._spans import capture_spans

__all__ = [
    "FaultInjector",
    "FaultPhase",
    "FaultStats",
    "InjectedError",
    "InjectedOutage",
    "capture_spans",
    "current_testing_mode",
    "is_testing",
    "outage_scenario",
    "reset_default_coordination",
    "set_testing",
]
