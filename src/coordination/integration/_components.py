"""The three components every integration door uses, typed by what it calls on them.

Every door shares the process's three components (``default_validator()``,
``default_error_handler()``, ``default_monitor()``: ``default_coordination()``) unless it is
given a set (``coordination=``) or components of its own. The protocols
(``ValidatorLike``, ``ErrorHandlerLike``, ``MonitorLike``, in ``coordination._defaults``)
name exactly the calls the doors make, so a user may also pass a compatible object of
their own; one that lacks a method is refused when the door is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .._config import CoordinationConfig, resolve_config
from .._defaults import (
    ComponentSet,
    ErrorHandlerLike,
    MonitorLike,
    ValidatorLike,
    checked_component,
    component_of,
)
from .._errors import ConfigError
from .._logging import component_logger
from .._redact import REDACTED, safe_repr
from .._settings import ALIASES, SETTINGS
from ..error_handling import CoordinationErrorHandler, default_error_handler
from ..performance import CoordinationPerformanceMonitor, default_monitor
from ..validation import CoordinationValidator, default_validator

__all__ = [
    "COMPONENT_KEYS",
    "POLICY_OPTIONS",
    "Components",
    "CoordinatedDoor",
    "ErrorHandlerLike",
    "MonitorLike",
    "ValidatorLike",
    "build_components",
    "check_shared_keys",
    "door_config",
    "policy_overrides",
    "prepare_rules",
]


class Components:
    """The validator, error handler and monitor of one door, built once."""

    __slots__ = ("config", "error_handler", "monitor", "validator")

    def __init__(
        self,
        config: CoordinationConfig,
        validator: ValidatorLike,
        error_handler: ErrorHandlerLike,
        monitor: MonitorLike,
    ) -> None:
        self.config = config
        self.validator = checked_component(validator, ValidatorLike, "validator")
        self.error_handler = checked_component(error_handler, ErrorHandlerLike, "error_handler")
        self.monitor = checked_component(monitor, MonitorLike, "performance_monitor")

    def status(self) -> dict[str, Any]:
        """``{"validation": ..., "error_handling": ..., "performance": ...}``: the three
        components' reports."""
        return {
            "validation": self.validator.get_validation_report(),
            "error_handling": self.error_handler.get_error_report(),
            "performance": self.monitor.get_performance_report(),
        }

    def as_mapping(self) -> dict[str, Any]:
        """The components by the names health checks and exporters show."""
        return {
            "validator": self.validator,
            "error_handler": self.error_handler,
            "performance_monitor": self.monitor,
        }


# --- what a door's own ``config=`` means -------------------------------------------------
#
# A door shares its components with every other door of its set, so its ``config=`` cannot
# reconfigure them. The rule, per key the door's config names (a mapping names its keys, a
# whole CoordinationConfig names every field):
#   * error-policy keys become this door's per-operation defaults (under the door's own
#     ``error_config``): the operations it protects retry and break as it says;
#   * component keys configure the shared validator, monitor or error handler as a whole:
#     a value other than the set's is a ConfigError naming the key and the way out
#     (configure the process, or give the door its own set with ``Coordination(config=…)``);
#   * every other key is the door's own (switches, paths, limits, endpoints, debug).

POLICY_OPTIONS: Mapping[str, str] = {
    # configuration field -> the error-handling option it is the default of: since the
    # schema gives each setting one spelling, every per-call setting, under its own name
    setting.name: setting.name
    for setting in SETTINGS.values()
    if setting.per_call
}

# Keys that configure one shared component as a whole, by the component they configure.
COMPONENT_KEYS: Mapping[str, frozenset[str]] = {
    "validator": frozenset(
        {
            "validation_rules_path",
            "validation_max_depth",
            "validation_max_string_length",
            "validation_max_items",
            "validation_fail_fast",
        }
    ),
    "performance_monitor": frozenset(
        {"collection_interval", "max_data_points", "error_rate_threshold", "operation_thresholds"}
    ),
    # operations: the shared handler's per-operation options (by name: not a door's own)
    "error_handler": frozenset(
        {"redis_url", "redis_namespace", "redis_outage_policy", "redis_cluster", "operations"}
    ),
}


def door_config(
    base: CoordinationConfig, config: CoordinationConfig | Mapping[str, Any] | None
) -> tuple[CoordinationConfig, frozenset[str]]:
    """The door's configuration over its set's ``base``, and the keys the door named.

    ``None`` is the set's configuration; a mapping overrides the keys it names (checked
    like every configuration mapping); a whole ``CoordinationConfig`` is taken as it is.
    """
    if config is None:
        return base, frozenset()
    if isinstance(config, CoordinationConfig):
        return config, frozenset(config.to_dict())
    if not isinstance(config, Mapping):
        resolve_config(config)  # raises the ConfigError that names the wrong type
    parsed = CoordinationConfig.from_mapping(config)
    # By the settings' names now (from_mapping has warned of any old spelling).
    named = frozenset(ALIASES[key].name if key in ALIASES else str(key) for key in config)
    return base.replace(**{key: getattr(parsed, key) for key in named}), named


def policy_overrides(
    door: CoordinationConfig, named: frozenset[str], handler_config: CoordinationConfig
) -> dict[str, Any]:
    """The error-handling options the door's config sets unlike the handler's own."""
    return {
        option: getattr(door, field)
        for field, option in POLICY_OPTIONS.items()
        if field in named and getattr(door, field) != getattr(handler_config, field)
    }


def check_shared_keys(
    door_name: str,
    door: CoordinationConfig,
    named: frozenset[str],
    shared: Mapping[str, CoordinationConfig],
    own_keys: frozenset[str] = frozenset(),
) -> None:
    """Refuse a door config that would have to reconfigure a component it shares."""
    for component, config in shared.items():
        for key in sorted((COMPONENT_KEYS[component] & named) - own_keys):
            if getattr(door, key) != getattr(config, key):
                shown = _shown(getattr(door, key))
                raise ConfigError(
                    f"{door_name}: {key} = {shown} configures the shared {component} (which "
                    f"has {_shown(getattr(config, key))}), so it cannot be a door's own "
                    "setting. Set it for the process (the configuration file or the "
                    "environment), or give this door a set of its own: "
                    "coordination.Coordination(config={...}) and build the door from it",
                    field=key,
                    value=shown,
                    source=f"{door_name} config",
                )


def _shown(value: object) -> str:
    """A value for the message: bounded, and a URL without its credentials."""
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = _port(parts)
        port_text = f":{port}" if port is not None else ""
        hidden = f"{REDACTED}@" if parts.username or parts.password else ""
        return repr(f"{parts.scheme}://{hidden}{host}{port_text}{parts.path}")
    return safe_repr(value)


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:  # a malformed port: leave it out rather than fail the message
        return None


def components_of_set(
    coordination: ComponentSet,
    base: CoordinationConfig,
    shared: dict[str, CoordinationConfig],
    validator: ValidatorLike | None,
    error_handler: ErrorHandlerLike | None,
    performance_monitor: MonitorLike | None,
) -> tuple[ValidatorLike, ErrorHandlerLike, MonitorLike]:
    """The components given, the others taken from ``coordination``.

    A component given replaces that part of the set; each taken from the set has its
    config noted in ``shared``, so a door's own keys can be checked against it.
    """
    if validator is None:
        validator = component_of(coordination, "validator", None, "validator")
        shared["validator"] = _config_of(validator, base)
    if error_handler is None:
        error_handler = component_of(coordination, "error_handler", None, "error_handler")
        shared["error_handler"] = _config_of(error_handler, base)
    if performance_monitor is None:
        performance_monitor = component_of(coordination, "monitor", None, "monitor")
        shared["performance_monitor"] = _config_of(performance_monitor, base)
    return validator, error_handler, performance_monitor


class CoordinatedDoor:
    """What every door (wrapper, middleware, event processor) sets up the same way.

    Its components are the ones given, else those of ``coordination``, else the process's
    (``default_coordination()``). ``_operation_defaults`` are the error-handling options its
    own ``config=`` sets (see ``door_config`` above for the rule).
    """

    config: CoordinationConfig
    validator: ValidatorLike
    error_handler: ErrorHandlerLike
    performance_monitor: MonitorLike
    # Keys a door reads itself though they also configure a component (the middleware's
    # client rate limit uses redis_url).
    _own_component_keys: frozenset[str] = frozenset()

    def _set_up(
        self,
        config: CoordinationConfig | Mapping[str, Any] | None,
        validator: ValidatorLike | None,
        error_handler: ErrorHandlerLike | None,
        performance_monitor: MonitorLike | None,
        debug: bool,
        coordination: ComponentSet | None = None,
    ) -> None:
        door_name = type(self).__name__
        # Components given one by one are the caller's: the door does not judge their config.
        shared: dict[str, CoordinationConfig] = {}
        if coordination is None:
            # The door's own keys follow the file and the environment as they are when
            # the door is built (the shared components read them once, at first use).
            base = CoordinationConfig.load()
            if validator is None:
                validator = default_validator()
                shared["validator"] = validator.config
            if error_handler is None:
                error_handler = default_error_handler()
                shared["error_handler"] = error_handler.config
            if performance_monitor is None:
                performance_monitor = default_monitor()
                shared["performance_monitor"] = performance_monitor.config
        else:
            base = _set_config(coordination)
            validator, error_handler, performance_monitor = components_of_set(
                coordination, base, shared, validator, error_handler, performance_monitor
            )
        cfg, named = door_config(base, config)
        check_shared_keys(door_name, cfg, named, shared, self._own_component_keys)
        debug = debug or cfg.debug
        self.config = cfg
        self._components = Components(cfg, validator, error_handler, performance_monitor)
        self.validator = validator
        self.error_handler = error_handler
        self.performance_monitor = performance_monitor
        self._operation_defaults = policy_overrides(cfg, named, _config_of(error_handler, base))
        self._logger = component_logger("integration", debug=debug)

    def _with_operation_defaults(self, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``given`` over the door's per-operation defaults (None when both are empty)."""
        if not self._operation_defaults:
            return None if given is None else dict(given)
        return {**self._operation_defaults, **(given or {})}


def _set_config(coordination: object) -> CoordinationConfig:
    config = getattr(coordination, "config", None)
    if not isinstance(config, CoordinationConfig):
        raise TypeError(
            f"coordination must be a coordination.Coordination, not {type(coordination).__name__}"
        )
    return config


def _config_of(component: object, fallback: CoordinationConfig) -> CoordinationConfig:
    config = getattr(component, "config", None)
    return config if isinstance(config, CoordinationConfig) else fallback


def build_components(
    config: CoordinationConfig,
    *,
    validator: ValidatorLike | None,
    error_handler: ErrorHandlerLike | None,
    performance_monitor: MonitorLike | None,
    debug: bool,
) -> Components:
    """The given components, and new ones made from ``config`` for those not given."""
    if validator is None:
        validator = CoordinationValidator(config=config, debug=debug)
    if error_handler is None:
        error_handler = CoordinationErrorHandler(config, debug=debug)
    if performance_monitor is None:
        performance_monitor = CoordinationPerformanceMonitor(config, debug=debug)
    return Components(config, validator, error_handler, performance_monitor)


def prepare_rules(validator: ValidatorLike, rules: Any, name: str) -> Any:
    """An inline rule mapping compiled once; a loaded name, a path or a ``RuleSet`` as is."""
    if isinstance(rules, Mapping):
        return validator.compile(rules, name=name)
    return rules
