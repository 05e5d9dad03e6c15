"""docs/observability.md documents every series of the collector's catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import CoordinationCollector
from coordination.observability._series import FAMILIES, SERIES
from coordination.performance import CoordinationPerformanceMonitor

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
_TYPES = {"counter": "counter", "gauge": "gauge", "duration": "histogram (or summary)"}


def test_every_series_is_documented_with_its_exposed_name_type_and_labels() -> None:
    text = DOC.read_text(encoding="utf-8")
    for series in SERIES:
        exposed = f"{series.name}_total" if series.type == "counter" else series.name
        row = re.search(rf"^\| `{re.escape(exposed)}` \| ([^|]+) \| ([^|]+) \|", text, re.M)
        assert row is not None, f"{exposed} has no row in the tables of {DOC.name}"
        typ, labels = row[1].strip(), row[2].strip()
        assert typ == _TYPES[series.type], f"{exposed}: documented as {typ}"
        documented = re.findall(r"[a-z_]+", labels.split("(")[0])
        assert documented == ["component", *series.labels], f"{exposed}: labels {labels}"


def test_a_scrape_exports_only_catalogued_series_of_the_catalogued_type() -> None:
    names = [series.name for series in SERIES]
    assert len(names) == len(set(names))
    monitor = CoordinationPerformanceMonitor({})
    monitor.record_duration("op", 0.01)
    handler = CoordinationErrorHandler({})
    handler.execute_with_error_handling(lambda: None, operation_name="op")
    types = dict(FAMILIES)
    collector = CoordinationCollector({"m": monitor, "h": handler})
    exported = {metric.name: metric.type for metric in collector.collect()}
    assert exported
    for name, typ in exported.items():
        assert name in types, f"{name} is exported but not in the catalogue"
        assert typ == ("histogram" if types[name] == "duration" else types[name])
