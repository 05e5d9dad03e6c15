"""The same measurements through the OpenTelemetry metrics API (the ``otel`` extra).

Observable instruments read the components when the SDK collects, through the very
``CoordinationCollector`` the Prometheus exporter uses, so both always agree. One read
serves every instrument of a collection: the snapshot is refreshed when an instrument asks
a second time (the next collection), not on a timer.

Names follow the semantic conventions where one exists (``http.server.request.duration``
in seconds, ``http.request.method``, ``http.route``, ``http.response.status_code``,
``error.type``); the rest are ``coordination.*``. The OpenTelemetry API has no
asynchronous histogram, so durations read from the latency sketch are observable gauges
with a ``quantile`` attribute (the Prometheus summary's shape) rather than histograms.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._defaults import ComponentSet
from ._collector import FAMILIES, CoordinationCollector
from ._components import LiveHttpDoors, reader_components

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

__all__ = ["OpenTelemetryBridge"]

_SEMCONV_NAMES = {
    "coordination_http_request_duration_seconds": ("http.server.request.duration", "s"),
    "coordination_operation_duration_seconds": ("coordination.operation.duration", "s"),
    "coordination_response_time_seconds": ("coordination.response_time", "s"),
    "coordination_http_requests_in_flight": ("http.server.active_requests", "{request}"),
}
_ATTRIBUTES = {
    "component": "coordination.component",
    "operation": "coordination.operation",
    "method": "http.request.method",
    "route": "http.route",
    "error_type": "error.type",
    "quantile": "quantile",
}


def _otel_name(family: str) -> tuple[str, str]:
    if family in _SEMCONV_NAMES:
        return _SEMCONV_NAMES[family]
    return "coordination." + family.removeprefix("coordination_"), "1"


def _attributes(family: str, labels: Mapping[str, str]) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {}
    for key, value in labels.items():
        if key == "status" and family.startswith("coordination_http_") and value.isdigit():
            attributes["http.response.status_code"] = int(value)
        elif key == "status" and family.startswith("coordination_http_"):
            # A grouped code ("7xx") or the overflow label is not a status code: keep it
            # under our own name rather than put a non-integer in a semconv attribute.
            attributes["coordination.http.status"] = value
        else:
            attributes[_ATTRIBUTES.get(key, f"coordination.{key}")] = value
    return attributes


class OpenTelemetryBridge:
    """Observable OpenTelemetry instruments over ``components``.

    >>> from opentelemetry.sdk.metrics import MeterProvider
    >>> bridge = OpenTelemetryBridge({"error_handler": handler}, meter_provider=provider)

    With no components it reads the process's set (``default_coordination()``), like the
    health checker and the exporter; ``coordination=`` reads another set (components
    given as well are a ``TypeError``).
    """

    def __init__(
        self,
        coordination_components: Mapping[str, object] | None = None,
        *,
        coordination: ComponentSet | None = None,
        meter_provider: MeterProvider | None = None,
        max_label_values: int = 1000,
    ) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:  # the optional extra is missing
            raise ImportError(
                "the OpenTelemetry bridge needs opentelemetry-api: "
                "pip install 'coordination-systems[otel]'"
            ) from exc
        components, _ = reader_components(
            "OpenTelemetryBridge", coordination_components, coordination, None
        )
        # Given none, the set's event processors too (found at each collection).
        self.collector = CoordinationCollector(
            LiveHttpDoors(components, http=False)
            if coordination_components is None
            else components,
            max_label_values=max_label_values,
            durations="summary",
        )
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("coordination")
        self._lock = threading.Lock()
        self._snapshot: dict[str, list[tuple[str, dict[str, str], float]]] = {}
        self._served: set[str] = set()
        for family, typ in FAMILIES:
            name, unit = _otel_name(family)
            # durations come as summaries here: quantile gauges (see the module docstring)
            callback = self._callback(family, quantiles_only=typ == "duration")
            if typ == "counter":
                meter.create_observable_counter(name, [callback], unit=unit)
            else:
                meter.create_observable_gauge(name, [callback], unit=unit)

    def _callback(self, family: str, *, quantiles_only: bool) -> Any:
        from opentelemetry.metrics import Observation

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            observations = []
            for _, labels, value in self._samples(family):
                if quantiles_only and "quantile" not in labels:
                    continue  # count and sum: the operations counters already carry them
                observations.append(Observation(value, _attributes(family, labels)))
            return observations

        return observe

    def _samples(self, family: str) -> list[tuple[str, dict[str, str], float]]:
        with self._lock:
            if family in self._served or not self._snapshot:
                # a second request for the same family: this is the next collection
                self._snapshot = {
                    metric.name: [(s.name, s.labels, s.value) for s in metric.samples]
                    for metric in self.collector.collect()
                }
                self._served.clear()
            self._served.add(family)
            return self._snapshot.get(family, [])
