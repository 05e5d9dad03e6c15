"""Performance monitoring: latency sketches, outcomes, throughput, resources, thresholds.

>>> from coordination.performance import CoordinationPerformanceMonitor
>>> monitor = CoordinationPerformanceMonitor({})
>>> with monitor.record_operation("checkout"):
...     pass
>>> monitor.get_performance_report()["total_operations"]
1
"""

from .._sketch import LatencySketch
from ._decorator import default_monitor, track_performance
from ._history import ActivityPoint, OperationHistory
from ._monitor import CoordinationPerformanceMonitor
from ._operation import MonitorSnapshot, OperationSnapshot, OperationStats
from ._sampler import ResourceSampler
from ._thresholds import (
    PerformanceAlert,
    PerformanceAlertHook,
    PerformanceThresholds,
    ThresholdBreach,
)

__all__ = [
    "ActivityPoint",
    "CoordinationPerformanceMonitor",
    "LatencySketch",
    "MonitorSnapshot",
    "OperationHistory",
    "OperationSnapshot",
    "OperationStats",
    "PerformanceAlert",
    "PerformanceAlertHook",
    "PerformanceThresholds",
    "ResourceSampler",
    "ThresholdBreach",
    "default_monitor",
    "track_performance",
]
