"""Where ``redis_url`` leads: the shared-state backend that serves a URL's scheme.

The one wiring point between the layers that use shared state (the error handler's
breakers and rate limits, the middleware's client limit, the collector's error counters)
and the backends that keep it. None of them imports a backend: they ask here, and the
provider is found from data — the table ``BUILTIN`` of URL schemes → ``"module:attribute"``,
then, for a scheme not in it, the ``coordination.backends`` entry-point group (a backend
shipped by another distribution) — and imported on first use.

>>> shared_state_for(CoordinationConfig()) is None  # no redis_url: state stays in-process
True
>>> scheme_of("rediss://cache:6380/0")
'rediss'
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any, Protocol, runtime_checkable

from ._config import CoordinationConfig
from ._errors import ConfigError
from ._redact import redact
from ._time import Clock

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "MetricSource",
    "SharedState",
    "SharedStateProvider",
    "error_collectors",
    "provider_for",
    "scheme_of",
    "shared_state_for",
]

ENTRY_POINT_GROUP = "coordination.backends"

# The backends this distribution ships. pyproject.toml declares the same names in the
# entry-point group (tests/test_layers.py keeps the two equal); the table is read first so
# that the default path never scans the installed distributions' metadata.
BUILTIN: Mapping[str, str] = {
    "redis": "coordination.backends.redis._provider:provider",
    "rediss": "coordination.backends.redis._provider:provider",
    "unix": "coordination.backends.redis._provider:provider",
}


class SharedState(Protocol):
    """One shared store as the capabilities use it (``RedisBackend`` is one).

    The argument types are the capabilities' own (``BreakerSettings``, ``Rate``,
    ``TransitionHook`` and what the factories return, in ``coordination.error_handling``);
    the core cannot name them without importing up, so they are ``Any`` here.
    """

    def breaker(
        self, name: str, settings: Any, *, clock: Clock, on_transition: Callable[[Any], None]
    ) -> Any:
        """A ``BreakerFactory``: the breaker of operation ``name``, its state shared."""
        ...

    def rate_limiter(self, rate: Any, *, clock: Clock) -> Any:
        """A ``RateLimiterFactory``: a limiter every process shares (the handler's rate
        limits and the middleware's per-client limit)."""
        ...


@runtime_checkable
class MetricSource(Protocol):
    """Anything with prometheus_client's ``collect()`` (a ``Counter``, a ``Collector``)."""

    def collect(self) -> Iterable[Any]: ...


class SharedStateProvider(Protocol):
    """What a backend gives, as the attribute an entry point (or ``BUILTIN``) names."""

    def shared_state(self, config: CoordinationConfig) -> SharedState:
        """The store for ``config.redis_url`` (and its namespace, outage policy, ...)."""
        ...

    def error_collectors(self) -> Iterable[MetricSource]:
        """Its error counters, once it has any, for the collector to export."""
        ...


_lock = threading.Lock()
_providers: dict[str, SharedStateProvider] = {}  # by target ("module:attribute")


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case ("" when it has none)."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def _entry_points() -> dict[str, str]:
    # importlib.metadata reads every installed distribution: only for a scheme not built in.
    from importlib.metadata import entry_points

    return {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load(target: str) -> SharedStateProvider:
    with _lock:
        provider = _providers.get(target)
    if provider is None:
        module_name, _, attribute = target.partition(":")
        loaded: SharedStateProvider = getattr(import_module(module_name), attribute)
        with _lock:
            provider = _providers.setdefault(target, loaded)
    return provider


def provider_for(url: str) -> SharedStateProvider:
    """The provider serving ``url``'s scheme; ``ConfigError`` when no backend does."""
    scheme = scheme_of(url)
    target = BUILTIN.get(scheme)
    if target is None and scheme:
        target = _entry_points().get(scheme)
    if target is None:
        known = ", ".join(f"{name}://" for name in BUILTIN)
        shown = redact(url)
        raise ConfigError(
            f"redis_url = {shown!r}: no shared-state backend serves "
            f"{f'the scheme {scheme!r}' if scheme else 'a URL without a scheme'} "
            f"(built in: {known}; others come from the {ENTRY_POINT_GROUP!r} "
            "entry-point group of an installed backend)",
            field="redis_url",
            value=shown,
        )
    return _load(target)


def shared_state_for(config: CoordinationConfig) -> SharedState | None:
    """The shared store ``config.redis_url`` names, or None when it is not set."""
    if not config.redis_url:
        return None
    return provider_for(config.redis_url).shared_state(config)


def error_collectors() -> list[MetricSource]:
    """The error counters of every backend in use in this process.

    A backend whose module was never imported has made no store, so it has counted
    nothing: it is not imported here (a scrape never loads redis support by itself).
    """
    with _lock:
        targets = set(_providers)
    targets.update(target for target in BUILTIN.values() if target.partition(":")[0] in sys.modules)
    sources: list[MetricSource] = []
    seen: set[int] = set()
    for target in sorted(targets):
        provider = _load(target)
        if id(provider) not in seen:
            seen.add(id(provider))
            sources.extend(provider.error_collectors())
    return sources
