"""Which components a reader (health, metrics, status page) reads when given none.

``CoordinationHealthChecker()``, ``CoordinationMetricsExporter()`` and ``StatusPage()``
read the process's set (``default_coordination()``: the same validator, error handler and
monitor every door uses by default), so they show every operation of the process,
whichever door it came through; ``coordination=`` names another set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .._config import CoordinationConfig
from .._defaults import EVENT_DOORS, ComponentSet, doors_of, http_doors, process_config
from ..error_handling import default_error_handler
from ..performance import default_monitor
from ..validation import default_validator

__all__ = ["LiveHttpDoors", "component_mapping", "reader_components"]


def component_mapping(components: object) -> dict[str, object]:
    """The ``coordination_components`` argument checked: a mapping with string names."""
    if components is None:
        return {}
    if not isinstance(components, Mapping):
        raise TypeError(
            "coordination_components must be a mapping of names to components, "
            f"not {type(components).__name__}"
        )
    for name in components:
        if not isinstance(name, str):
            raise TypeError(f"component names must be strings, got {name!r}")
    return dict(components)


def reader_components(
    owner: str,
    components: Mapping[str, object] | None,
    coordination: ComponentSet | None,
    config: CoordinationConfig | Mapping[str, Any] | None,
) -> tuple[Mapping[str, object], CoordinationConfig | Mapping[str, Any] | None]:
    """The components a reader shows and the configuration it reads, both checked."""
    if coordination is not None:
        if components is not None:
            raise TypeError(f"{owner}: give the components or coordination=, not both")
        try:
            named = {
                "validator": coordination.validator,
                "error_handler": coordination.error_handler,
                "performance_monitor": coordination.monitor,
            }
            base = coordination.config
        except AttributeError:
            raise TypeError(
                f"{owner}: coordination must be a coordination.Coordination, "
                f"not {type(coordination).__name__}"
            ) from None
        return named, base if config is None else config
    if isinstance(components, LiveHttpDoors):  # already a live view (the middleware's)
        return components, config
    if components is not None:
        return component_mapping(components), config
    process = {
        "validator": default_validator(),
        "error_handler": default_error_handler(),
        "performance_monitor": default_monitor(),
    }
    return process, process_config() if config is None else config


class LiveHttpDoors(Mapping[str, object]):
    """The three components, and the doors built on them as of now.

    The middleware's request counters are its own, and so are an event processor's
    store and broker sources, so an exporter given no components looks them up at every
    scrape (an app or a processor built after the exporter shows too): ``http`` for the
    first middleware of the set, ``http_2``, ``http_3`` ... for later ones; ``events``,
    ``events_2`` ... for the event processors (until they are closed). ``http=False``
    leaves the middlewares out (the status page reads only the processors).
    """

    __slots__ = ("_components", "_http")

    def __init__(self, components: Mapping[str, object], *, http: bool = True) -> None:
        self._components = dict(components)
        self._http = http

    def _current(self) -> dict[str, object]:
        current = dict(self._components)
        monitor = current.get("performance_monitor")
        if monitor is not None:
            if self._http:
                for number, door in enumerate(http_doors(monitor), start=1):
                    current["http" if number == 1 else f"http_{number}"] = door
            for number, door in enumerate(doors_of(EVENT_DOORS, monitor), start=1):
                current["events" if number == 1 else f"events_{number}"] = door
        return current

    def __getitem__(self, name: str) -> object:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())
