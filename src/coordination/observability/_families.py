"""Building metric families for one scrape, with every label value bounded.

Label values come from the components (operation names, routes, error types, rule sets),
which bound them already; this is the second fence: each open label keeps at most a fixed
number of distinct values per family, and later ones are added into the overflow value
``__overflow__`` instead of growing a new series.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from .._bounded import OVERFLOW_OPERATION

__all__ = ["FamilyBuilder"]


@dataclass(slots=True)
class _Family:
    metric: Metric
    # Series with an overflow label value are summed here first (several sources land on
    # one series); every other sample goes straight into ``metric``.
    overflow: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    seen: dict[str, set[str]] = field(default_factory=dict)

    def flush(self) -> Metric:
        for (sample_name, labels), value in self.overflow.items():
            self.metric.add_sample(sample_name, dict(labels), value)
        self.overflow.clear()
        return self.metric


class FamilyBuilder:
    """Accumulates samples by family; ``combine()`` turns builders into ``Metric``s."""

    def __init__(self, *, max_label_values: int, bounded_labels: frozenset[str]) -> None:
        self.max_label_values = max_label_values
        self.bounded_labels = bounded_labels
        self._families: dict[str, _Family] = {}

    def counter(self, name: str, doc: str, labels: Mapping[str, str], value: float) -> None:
        """Add ``value`` to the counter ``<name>_total`` with ``labels``."""
        family = self._family(name, doc, "counter", "")
        self._put(family, f"{name}_total", self._bound(family, labels), value)

    def gauge(
        self, name: str, doc: str, labels: Mapping[str, str], value: float, *, unit: str = ""
    ) -> None:
        """Set (or, for overflowed labels, add to) the gauge ``name`` with ``labels``."""
        family = self._family(name, doc, "gauge", unit)
        self._put(family, name, self._bound(family, labels), value)

    def summary(
        self,
        name: str,
        doc: str,
        labels: Mapping[str, str],
        *,
        count: float,
        total: float,
        quantiles: Mapping[float, float],
    ) -> None:
        """A summary in seconds: ``_count``, ``_sum`` and one sample per quantile.

        Quantiles cannot be added together, so an overflowed series keeps only its
        count and sum.
        """
        family = self._family(name, doc, "summary", "seconds")
        bounded = self._bound(family, labels)
        self._put(family, f"{name}_count", bounded, count)
        self._put(family, f"{name}_sum", bounded, total)
        for q, value in quantiles.items():
            self._put(family, name, {**bounded, "quantile": f"{q:g}"}, value)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Mapping[str, str],
        *,
        buckets: list[tuple[float, float]],
        count: float,
        total: float,
    ) -> None:
        """A histogram in seconds: cumulative ``le`` buckets, ``+Inf`` (the count), sum.

        ``buckets`` may be empty (a monitor without bucket counts): ``+Inf`` remains.
        """
        family = self._family(name, doc, "histogram", "seconds")
        bounded = self._bound(family, labels)
        for bound, cumulative in buckets:
            self._put(family, f"{name}_bucket", {**bounded, "le": f"{bound:g}"}, cumulative)
        self._put(family, f"{name}_bucket", {**bounded, "le": "+Inf"}, count)
        self._put(family, f"{name}_count", bounded, count)
        self._put(family, f"{name}_sum", bounded, total)

    @staticmethod
    def combine(builders: list[FamilyBuilder]) -> Iterator[Metric]:
        """One prometheus_client ``Metric`` per family name, with every builder's samples.

        The builders' series must not collide (each component's carry its own label).
        """
        metrics: dict[str, Metric] = {}
        for builder in builders:
            for name, family in builder._families.items():
                metric = family.flush()
                if name in metrics:
                    metrics[name].samples.extend(metric.samples)
                else:
                    metrics[name] = metric
        return iter(metrics.values())

    # --- internals ----------------------------------------------------------------------

    def _family(self, name: str, doc: str, typ: str, unit: str) -> _Family:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(Metric(name, doc, typ, unit))
        return family

    def _bound(self, family: _Family, labels: Mapping[str, str]) -> dict[str, str]:
        bounded: dict[str, str] = {}
        for key, value in labels.items():
            if key in self.bounded_labels:
                values = family.seen.setdefault(key, set())
                if value not in values:
                    if len(values) >= self.max_label_values:
                        value = OVERFLOW_OPERATION
                    else:
                        values.add(value)
            bounded[key] = value
        return bounded

    @staticmethod
    def _put(family: _Family, sample_name: str, labels: dict[str, str], value: float) -> None:
        if OVERFLOW_OPERATION not in labels.values():
            family.metric.add_sample(sample_name, labels, value)
        elif "quantile" not in labels:  # quantiles of different series cannot be added
            key = (sample_name, tuple(labels.items()))
            family.overflow[key] = family.overflow.get(key, 0.0) + value
