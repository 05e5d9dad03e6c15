"""Helpers for testing your own code with coordination: inject faults into dependencies.

``FaultInjector`` makes a dependency fail on a schedule (errors, latency, an outage, then
recovery), deterministically with a seed and an injectable clock.
"""

from ._faults import (
    FaultInjector,
    FaultPhase,
    FaultStats,
    InjectedError,
    InjectedOutage,
    outage_scenario,
)

__all__ = [
    "FaultInjector",
    "FaultPhase",
    "FaultStats",
    "InjectedError",
    "InjectedOutage",
    "outage_scenario",
]
