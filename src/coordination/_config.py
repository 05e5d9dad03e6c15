"""``CoordinationConfig``: every setting of the library, from code, YAML or the environment.

Precedence, lowest first: the defaults < a YAML file < ``COORDINATION_*`` environment
variables < keyword arguments given in code. ``CoordinationConfig.load()`` combines all
four; ``from_environment()`` reads the environment alone and
``load_coordination_config(path)`` a file alone.
A component's ``config=`` mapping is the top layer the same way (``resolve_config``): it
overrides only the keys it names, so the file and the environment still apply beneath it.

The settings themselves (type, default, check, doc, variable, old spellings) are declared
once, in ``_settings.py``; the per-call options of ``handle_errors`` read the same
declarations. Every value is checked where it enters, and a bad one raises ``ConfigError``
naming the field, the value and its source (``environment variable
COORDINATION_MAX_RETRIES``, ``config/coordination.yaml, line 3``, ``keyword argument``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigError, ConfigWarning
from ._operations import merge_operations
from ._quote import quote
from ._redact import redact
from ._settings import (
    ALIASES,
    ENVIRONMENT_PREFIX,
    JITTER_KINDS,
    SETTINGS,
    Setting,
    canonical_name,
    default_of,
    warn_renamed,
)

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "DEFAULT_CONFIG_PATH",
    "JITTER_KINDS",
    "ConfigSetting",
    "CoordinationConfig",
    "check_concurrency_bounds",
    "config_settings",
    "deprecated_environment_variables",
    "describe_config",
    "load_coordination_config",
    "resolve_config",
    "unknown_environment_variables",
]

CONFIG_FILE_VARIABLE = "COORDINATION_CONFIG_FILE"
DEFAULT_CONFIG_PATH = "config/coordination.yaml"  # missing there means defaults
# Variables with the prefix that are not settings, yet are ours: no "unknown" warning.
_OTHER_VARIABLES = {
    CONFIG_FILE_VARIABLE: "names the YAML configuration file",
    "COORDINATION_REQUIRE_REDIS": "makes this project's Redis tests mandatory (CI)",
    "COORDINATION_REQUIRE_RABBITMQ": "makes this project's RabbitMQ tests mandatory (CI)",
    "COORDINATION_REQUIRE_NATS": "makes this project's NATS tests mandatory (CI)",
    "COORDINATION_REQUIRE_POSTGRES": "makes this project's PostgreSQL tests mandatory (CI)",
    "COORDINATION_REQUIRE_PROMETHEUS": "makes this project's Prometheus tests mandatory (CI)",
    "COORDINATION_DASHBOARD_PNG": "where this project's dashboard test keeps its picture",
}
ConfigSetting = Setting  # the name this module gave it before the schema moved to the core


def _field(name: str) -> Any:
    """The dataclass field of setting ``name``: its default, and the setting as metadata."""
    setting = SETTINGS[name]
    if isinstance(setting.default, Mapping):  # read-only, but not hashable on 3.11
        default = setting.default
        return dataclasses.field(
            default_factory=lambda: default, metadata={"setting": setting}, hash=False
        )
    return dataclasses.field(default=setting.default, metadata={"setting": setting})


@dataclass(frozen=True, slots=True)
class CoordinationConfig:
    """Configuration for every coordination component.

    >>> CoordinationConfig(max_retries=5).max_retries
    5
    >>> CoordinationConfig.load(max_retries=2).base_delay  # defaults < file < env < kwargs
    1.0
    """

    # --- the first nine fields (names, defaults, variables kept from the integration spec) ---
    enable_validation: bool = _field("enable_validation")
    validation_rules_path: str = _field("validation_rules_path")
    max_retries: int = _field("max_retries")
    base_delay: float = _field("base_delay")
    backoff_multiplier: float = _field("backoff_multiplier")
    circuit_breaker_threshold: int = _field("circuit_breaker_threshold")
    enable_performance_monitoring: bool = _field("enable_performance_monitoring")
    collection_interval: float = _field("collection_interval")
    max_data_points: int = _field("max_data_points")

    # --- retry ---
    max_delay: float = _field("max_delay")
    jitter: str = _field("jitter")
    retry_time_budget: float | None = _field("retry_time_budget")
    retry_budget: float | None = _field("retry_budget")
    retry_budget_window: float = _field("retry_budget_window")
    retry_budget_min_per_second: float = _field("retry_budget_min_per_second")
    hedge_after: str | None = _field("hedge_after")
    max_hedged_attempts: int = _field("max_hedged_attempts")
    error_severity: str = _field("error_severity")

    # --- circuit breaker ---
    circuit_breaker_timeout: float = _field("circuit_breaker_timeout")
    half_open_calls: int = _field("half_open_calls")
    half_open_max_wait: float | None = _field("half_open_max_wait")
    open_backoff_multiplier: float = _field("open_backoff_multiplier")
    max_open_seconds: float | None = _field("max_open_seconds")
    breaker_mode: str = _field("breaker_mode")
    failure_rate_threshold: float | None = _field("failure_rate_threshold")
    slow_call_duration: float | None = _field("slow_call_duration")
    slow_call_rate_threshold: float | None = _field("slow_call_rate_threshold")
    window_type: str = _field("window_type")
    window_size: int = _field("window_size")
    minimum_calls: int = _field("minimum_calls")
    trip_on: tuple[str, ...] | None = _field("trip_on")
    breaker_ignores: tuple[str, ...] | None = _field("breaker_ignores")

    # --- timeout, bulkhead and rate limit ---
    timeout: float | None = _field("timeout")
    timeout_workers: int | None = _field("timeout_workers")
    max_concurrent: int | None = _field("max_concurrent")
    bulkhead_wait: float = _field("bulkhead_wait")
    rate_limit: str | None = _field("rate_limit")
    rate_limit_wait: float = _field("rate_limit_wait")
    adaptive_concurrency: bool = _field("adaptive_concurrency")
    concurrency_algorithm: str = _field("concurrency_algorithm")
    min_concurrency: int = _field("min_concurrency")
    max_concurrency: int = _field("max_concurrency")
    concurrency_group: str | None = _field("concurrency_group")

    # --- performance monitoring ---
    max_operation_names: int = _field("max_operation_names")
    latency_p95_threshold_ms: float | None = _field("latency_p95_threshold_ms")
    latency_p99_threshold_ms: float | None = _field("latency_p99_threshold_ms")
    error_rate_threshold: float | None = _field("error_rate_threshold")
    operation_thresholds: str | None = _field("operation_thresholds")

    # --- validation limits ---
    validation_max_depth: int = _field("validation_max_depth")
    validation_max_string_length: int = _field("validation_max_string_length")
    validation_max_items: int = _field("validation_max_items")
    validation_fail_fast: bool = _field("validation_fail_fast")

    # --- events ---
    dead_letter_path: str | None = _field("dead_letter_path")
    dead_letter_namespace: str = _field("dead_letter_namespace")

    # --- HTTP middleware ---
    max_request_body_bytes: int = _field("max_request_body_bytes")
    max_header_bytes: int = _field("max_header_bytes")
    map_resilience_errors: bool = _field("map_resilience_errors")
    client_rate_limit: str | None = _field("client_rate_limit")
    client_rate_limit_key: str = _field("client_rate_limit_key")
    route_limits: str | None = _field("route_limits")
    rate_limit_headers: str = _field("rate_limit_headers")
    rate_limit_header_style: str = _field("rate_limit_header_style")
    app_adaptive_concurrency: bool = _field("app_adaptive_concurrency")

    # --- observability and endpoints ---
    expose_endpoints: bool = _field("expose_endpoints")
    metrics_path: str = _field("metrics_path")
    health_path: str = _field("health_path")
    status_page_path: str = _field("status_page_path")
    health_details: bool = _field("health_details")
    health_cache_seconds: float = _field("health_cache_seconds")
    health_check_timeout: float = _field("health_check_timeout")

    # --- scale-out ---
    redis_url: str | None = _field("redis_url")
    redis_namespace: str = _field("redis_namespace")
    redis_outage_policy: str = _field("redis_outage_policy")
    redis_cluster: bool = _field("redis_cluster")

    # --- live reload ---
    config_watch_interval: float | None = _field("config_watch_interval")
    reload_on_sighup: bool = _field("reload_on_sighup")

    # --- diagnostics ---
    debug: bool = _field("debug")

    # --- per operation (docs/configuration.md, "Per-operation settings") ---
    operations: Mapping[str, Mapping[str, Any]] = _field("operations")

    def __post_init__(self) -> None:
        # Checked, and held in the setting's own form (a float for 1, "HIGH" for "high"),
        # exactly as the same value given per call would be.
        for spec in SETTINGS.values():
            value = getattr(self, spec.name)
            checked = spec.coerce(value, "keyword argument")
            if checked is not value:
                object.__setattr__(self, spec.name, checked)
        check_concurrency_bounds(
            self.min_concurrency,
            self.max_concurrency,
            self.adaptive_concurrency or self.app_adaptive_concurrency,
        )

    # --- constructors -----------------------------------------------------------------

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CoordinationConfig:
        """The defaults overridden by ``COORDINATION_*`` environment variables."""
        values, _ = _resolve(path=None, environ=environ, overrides={}, read_file=False)
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CoordinationConfig:
        """The defaults overridden by a YAML file; ``ConfigError`` if it does not exist."""
        sources = dict.fromkeys(SETTINGS, "default")
        values = _file_values(_must_exist(Path(path), "argument"), sources)
        _check_bounds_of(values, sources)
        return cls(**values)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, source: str = "configuration mapping"
    ) -> CoordinationConfig:
        """The defaults overridden by ``data`` (unknown keys are an error, with a hint)."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            spec = _lookup(key, source)
            values[spec.name] = spec.coerce(value, source)
        _check_bounds_of(values, dict.fromkeys(values, source))
        return cls(**values)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> CoordinationConfig:
        """Defaults < YAML file < environment < ``overrides``, in one call.

        ``path`` defaults to the file named by ``COORDINATION_CONFIG_FILE`` (if set; if
        not, no file is read). A file named either way must exist: else ``ConfigError``.
        """
        values, _ = _resolve(path=path, environ=environ, overrides=overrides, read_file=True)
        return cls(**values)

    def replace(self, **changes: Any) -> CoordinationConfig:
        """A copy with ``changes`` applied (checked like keyword arguments)."""
        named = {_lookup(key, "keyword argument").name: value for key, value in changes.items()}
        return dataclasses.replace(self, **named)

    def to_dict(self) -> dict[str, Any]:
        """Every field and its value, JSON-serialisable (unmasked: this is data, not a view)."""
        values = {name: getattr(self, name) for name in SETTINGS}
        values["operations"] = {name: dict(o) for name, o in self.operations.items()}
        return values

    def __repr__(self) -> str:
        # Shown in logs and tracebacks: a redis_url's password appears as ***.
        fields = ", ".join(f"{name}={shown_value(getattr(self, name))!r}" for name in SETTINGS)
        return f"{type(self).__name__}({fields})"

    # --- old spellings, for one release ---------------------------------------------------

    @property
    def operation_timeout(self) -> float | None:
        """Deprecated spelling of ``timeout``."""
        warn_renamed("operation_timeout", "timeout", "attribute access")
        return self.timeout

    @property
    def circuit_breaker_half_open_calls(self) -> int:
        """Deprecated spelling of ``half_open_calls``."""
        warn_renamed("circuit_breaker_half_open_calls", "half_open_calls", "attribute access")
        return self.half_open_calls

    @property
    def half_open_trial_timeout(self) -> float | None:
        """Deprecated spelling of ``half_open_max_wait``."""
        warn_renamed("half_open_trial_timeout", "half_open_max_wait", "attribute access")
        return self.half_open_max_wait


def _accept_old_keywords(init: Any) -> Any:
    """``CoordinationConfig(operation_timeout=5)`` still works, with a DeprecationWarning."""

    @functools.wraps(init)
    def __init__(self: CoordinationConfig, *args: Any, **kwargs: Any) -> None:
        if not ALIASES.keys().isdisjoint(kwargs):
            kwargs = {_lookup(key, "keyword argument").name: value for key, value in kwargs.items()}
        init(self, *args, **kwargs)

    return __init__


# The generated __init__ keeps the typed signature (type checkers flag the old spellings);
# the wrapper only renames them at run time.
CoordinationConfig.__init__ = _accept_old_keywords(CoordinationConfig.__init__)  # type: ignore[method-assign]

_VARIABLES = {spec.env: spec for spec in SETTINGS.values()}
# An old spelling's variable, with the setting it sets now.
_OLD_VARIABLES = {variable: spec for spec in SETTINGS.values() for variable in spec.alias_variables}


def config_settings() -> Iterator[ConfigSetting]:
    """Every configuration field's description, in declaration order."""
    return iter(SETTINGS.values())


def _lookup(key: object, source: str) -> ConfigSetting:
    if isinstance(key, str):
        name = canonical_name(key, source)  # an old spelling warns here
        if name is not None:
            return SETTINGS[name]
    # A key longer than any field name cannot be a typo of one worth suggesting.
    close = (
        difflib.get_close_matches(key, list(SETTINGS), n=1, cutoff=0.6)
        if isinstance(key, str) and len(key) <= 80
        else []
    )
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown configuration key {quote(key)} in {source}{hint}",
        field=str(key),
        value=None,
        source=source,
    )


# --- the sources ----------------------------------------------------------------------

# A configuration file's bytes. Ten thousand operations: entries are well under 1 MiB; a
# 50 MB file took PyYAML's pure-Python reader half a minute (a reload holding its lock).
MAX_CONFIG_BYTES = 4 << 20


def _read_yaml(path: Path) -> dict[str, tuple[Any, str, dict[tuple[str, ...], int]]]:
    """The file's settings, each with a ``"<file>, line N"`` source (and the line of each
    key nested in it, two levels deep: the ``operations:`` mapping's options).

    Read with the bounded safe loader: an alias bomb or a 100 000-deep document is a
    ``ConfigError`` naming the file and line, at once. No message quotes the file's text.
    """
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)  # bounded: a file that grows meanwhile too
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"configuration file {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB, "
                "more than any configuration needs; not read",
                source=str(path),
            )
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Not str(exc): it quotes the undecodable bytes of a file that may not be ours.
        raise ConfigError(
            f"cannot read configuration file {path}: not UTF-8 text (byte {exc.start + 1})",
            source=str(path),
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration file {path}: {exc}", source=str(path)
        ) from exc
    # PyYAML only when there is a file to read (most processes have none).
    import yaml

    from ._yaml import BoundedSafeLoader, yaml_problem

    loader: BoundedSafeLoader | None = None
    try:
        loader = BoundedSafeLoader(text)  # the reader checks the characters here already
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        where, problem = yaml_problem(exc)
        raise ConfigError(
            f"malformed YAML in configuration file {path}{where}: {problem}",
            source=f"{path}{where}",
        ) from exc
    except RecursionError as exc:  # the loader's depth bound makes this unreachable: a net
        raise ConfigError(
            f"configuration file {path} nests too deeply to read", source=str(path)
        ) from exc
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            f"configuration file {path} must hold a mapping of settings, "
            f"not a {type(data).__name__}",
            source=str(path),
        )
    lines: dict[Any, int] = {}
    nested: dict[Any, dict[tuple[str, ...], int]] = {}
    for key_node, value_node in root.value:
        if isinstance(key_node, yaml.ScalarNode):
            lines[key_node.value] = key_node.start_mark.line + 1
            nested[key_node.value] = _nested_lines(value_node, yaml)
    return {
        key: (value, f"{path}, line {lines.get(key, '?')}", nested.get(key, {}))
        for key, value in data.items()
    }


def _nested_lines(node: Any, yaml: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """The line of each key of a mapping node and of the mappings in it, by key path."""
    found: dict[tuple[str, ...], int] = {}
    if not isinstance(node, yaml.MappingNode) or len(prefix) >= 2:
        return found
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            path = (*prefix, str(key_node.value))
            found[path] = key_node.start_mark.line + 1
            found.update(_nested_lines(value_node, yaml, path))
    return found


def _must_exist(path: Path, named_by: str) -> Path:
    """``path``, or ``ConfigError``: a file someone named must not silently be skipped."""
    if not path.exists():
        raise ConfigError(
            f"configuration file {path} (named by {named_by}) does not exist",
            field=CONFIG_FILE_VARIABLE if named_by == CONFIG_FILE_VARIABLE else None,
            value=str(path),
            source=named_by,
        )
    return path


def _file_values(
    path: Path,
    sources: dict[str, str] | None = None,
    operation_sources: dict[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, (value, source, lines) in _read_yaml(path).items():
        spec = _lookup(key, source)
        if spec.reader is not None:  # each nested key checked with its own line

            def locate(at: tuple[str, ...], lines: Any = lines, source: str = source) -> str:
                line = lines.get(at) or lines.get(at[:1])
                return f"{path}, line {line}" if line else source

            values[spec.name] = spec.reader(
                value, source, locate=locate, data=True, sources=operation_sources
            )
        else:
            values[spec.name] = spec.coerce(value, source)
        if sources is not None:
            sources[spec.name] = source
    return values


def unknown_environment_variables(
    environ: Mapping[str, str] | None = None,
) -> list[tuple[str, str | None]]:
    """Each ``COORDINATION_*`` variable that is no setting, with the closest known name.

    >>> unknown_environment_variables({"COORDINATION_MAX_RETRYS": "7"})
    [('COORDINATION_MAX_RETRYS', 'COORDINATION_MAX_RETRIES')]
    """
    env = os.environ if environ is None else environ
    # Compared without the shared prefix, which would make every name look close.
    known = {
        name.removeprefix(ENVIRONMENT_PREFIX): name for name in (*_VARIABLES, *_OTHER_VARIABLES)
    }
    unknown: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if not name.startswith(ENVIRONMENT_PREFIX) or name in _VARIABLES:
            continue
        if name in _OLD_VARIABLES:  # still read, with a DeprecationWarning
            continue
        if name in _OTHER_VARIABLES:
            continue
        suffix = name.removeprefix(ENVIRONMENT_PREFIX)
        too_long = len(suffix) > 80  # no typo of a setting's name; don't compare
        close = [] if too_long else difflib.get_close_matches(suffix, known, n=1, cutoff=0.6)
        unknown.append((name, known[close[0]] if close else None))
    return unknown


_warned_variables: set[str] = set()
_warned_lock = threading.Lock()
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """A ``ConfigWarning`` for each unknown ``COORDINATION_*`` variable, once a process."""
    for name, close in unknown_environment_variables(environ):
        with _warned_lock:
            if name in _warned_variables:
                continue
            _warned_variables.add(name)
        hint = f"; did you mean {close}?" if close else ""
        message = (
            f"unknown environment variable {quote(name)} ignored{hint} "
            "(`coordination config` lists every setting and its variable)"
        )
        if sys.version_info >= (3, 12):
            # Point at the caller's line, outside this package, however deep the call.
            warnings.warn(message, ConfigWarning, skip_file_prefixes=(_PACKAGE_DIR,))
        else:  # pragma: no cover - exercised on 3.11 only
            warnings.warn(message, ConfigWarning, stacklevel=4)


def _resolve(
    *,
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None,
    overrides: Mapping[Any, Any],
    read_file: bool,
    overrides_source: str = "keyword argument",
    operation_sources: dict[tuple[str, str], str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each setting's value and source, layer over layer. The ``operations:`` mapping
    merges option by option (each layer overrides only what it names); the source of
    each of its options goes to ``operation_sources``."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = dict.fromkeys(SETTINGS, "default")
    by_option = {} if operation_sources is None else operation_sources

    def layer(spec: Setting, value: Any, source: str) -> None:
        if spec.reader is not None:  # the operations: mapping
            for operation, options in value.items():
                for option in options:
                    by_option[operation, option] = source
            if values.get(spec.name):  # merged: the mapping has several sources
                source = f"{sources[spec.name]}; {source}"
            value = merge_operations(values.get(spec.name) or {}, value)
        values[spec.name] = value
        sources[spec.name] = source

    if read_file:
        named_by = "argument"
        if path is None and env.get(CONFIG_FILE_VARIABLE):
            path, named_by = env[CONFIG_FILE_VARIABLE], CONFIG_FILE_VARIABLE
        if path is not None:
            values.update(_file_values(_must_exist(Path(path), named_by), sources, by_option))

    _warn_unknown_variables(env)
    for spec in SETTINGS.values():
        variable = spec.env
        if variable not in env:
            # An old spelling's variable, when the new one is not set: read, and warned of.
            variable = next((old for old in spec.alias_variables if old in env), "")
            if not variable:
                continue
            warn_renamed(variable, spec.env, "the environment")
        source = f"environment variable {variable}"
        layer(spec, spec.parse_text(env[variable], source), source)

    for key, value in overrides.items():
        spec = _lookup(key, overrides_source)
        layer(spec, spec.coerce(value, overrides_source), overrides_source)
    _check_bounds_of(values, sources)
    return values, sources


def check_concurrency_bounds(
    minimum: int,
    maximum: int,
    adaptive: bool,
    min_source: str = "keyword argument",
    max_source: str = "",
) -> None:
    """``ConfigError`` when an adaptive limit is on and ``min_concurrency`` is above
    ``max_concurrency``, naming where each came from (``max_source`` only when it differs)."""
    if not adaptive or minimum <= maximum:
        return
    other = f" (from {max_source})" if max_source and max_source != min_source else ""
    raise ConfigError(
        f"invalid min_concurrency = {minimum} from {min_source}: above max_concurrency = "
        f"{maximum}{other}; the adaptive limit moves between the two",
        field="min_concurrency",
        value=minimum,
        source=min_source,
    )


def _check_bounds_of(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """``check_concurrency_bounds`` on resolved layers, with each value's source."""

    def get(name: str) -> Any:
        return values[name] if name in values else default_of(name)

    check_concurrency_bounds(
        get("min_concurrency"),
        get("max_concurrency"),
        bool(get("adaptive_concurrency") or get("app_adaptive_concurrency")),
        sources.get("min_concurrency", "default"),
        sources.get("max_concurrency", "default"),
    )


def load_coordination_config(
    config_path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH,
) -> CoordinationConfig:
    """The YAML file over the defaults.

    A missing file at the default path (``config/coordination.yaml``) gives the defaults;
    any other path names a file on purpose, so a missing one is a ``ConfigError`` rather
    than a silent fall back to defaults.
    """
    path = Path(config_path)
    if not path.exists() and path == Path(DEFAULT_CONFIG_PATH):
        return CoordinationConfig()
    return CoordinationConfig(**_file_values(_must_exist(path, "argument")))


def describe_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> list[tuple[str, Any, str]]:
    """Each field's effective value and where it came from, as ``load()`` resolves them.

    Values are shown as people see them: a secret inside one (the password of a
    ``redis_url``) is masked; ``CoordinationConfig.load(...).to_dict()`` has the real ones.
    The ``operations:`` mapping, when set, is shown option by option, each with its own
    source: ``("operations.payments.max_retries", 5, "coordination.yaml, line 12")``.
    """
    rows, options = describe_layers(path, environ=environ, overrides=overrides)
    if not options:
        return rows
    return [row for row in rows if row[0] != "operations"] + [
        (f"operations.{operation}.{option}", value, source)
        for operation, option, value, source in options
    ]


def describe_layers(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[list[tuple[str, Any, str]], list[tuple[str, str, Any, str]]]:
    """``describe_config``'s rows, and apart from them each option of the ``operations:``
    mapping as ``(operation, option, value, source)`` (what ``coordination config``
    shows)."""
    by_option: dict[tuple[str, str], str] = {}
    values, sources = _resolve(
        path=path,
        environ=environ,
        overrides=overrides or {},
        read_file=True,
        operation_sources=by_option,
    )
    config = CoordinationConfig(**values)
    rows = [(name, shown_value(getattr(config, name)), sources[name]) for name in SETTINGS]
    options = [
        (operation, option, shown_value(value), by_option.get((operation, option), "?"))
        for operation, entry in config.operations.items()
        for option, value in entry.items()
    ]
    return rows, options


def deprecated_environment_variables(
    environ: Mapping[str, str] | None = None,
) -> list[tuple[str, str, bool]]:
    """Each old spelling's ``COORDINATION_*`` variable that is set: ``(it, the variable
    to use now, whether it is read)`` (it is not when the new variable is set too).

    >>> deprecated_environment_variables({"COORDINATION_OPERATION_TIMEOUT": "5"})
    [('COORDINATION_OPERATION_TIMEOUT', 'COORDINATION_TIMEOUT', True)]
    """
    env = os.environ if environ is None else environ
    return [
        (old, spec.env, spec.env not in env)
        for old, spec in sorted(_OLD_VARIABLES.items())
        if old in env
    ]


def shown_value(value: Any) -> Any:
    """A setting's value as shown to people: strings under the redaction policy (inside
    the ``operations:`` mapping too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: shown_value(item) for key, item in value.items()}
    return value


def resolve_config(
    config: CoordinationConfig | Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> CoordinationConfig:
    """What a component does with its ``config=`` argument.

    - ``None``: defaults < the file named by ``COORDINATION_CONFIG_FILE`` < ``COORDINATION_*``
      environment variables (``CoordinationConfig.load()``).
    - a mapping (``config={"enable_validation": False}``): the same layers, with the
      mapping on top, overriding only the keys it names; each key is checked.
    - a ``CoordinationConfig``: exactly that configuration, nothing else is read.

    >>> resolve_config({"max_retries": 7}, environ={"COORDINATION_BASE_DELAY": "0.5"})
    ... # doctest: +ELLIPSIS
    CoordinationConfig(..., max_retries=7, base_delay=0.5, ...)
    """
    if isinstance(config, CoordinationConfig):
        return config
    if config is None or isinstance(config, Mapping):
        values, _ = _resolve(
            path=None,
            environ=environ,
            overrides=config or {},
            read_file=True,
            overrides_source="config argument",
        )
        return CoordinationConfig(**values)
    raise ConfigError(
        f"config must be a CoordinationConfig, a mapping or None, not {type(config).__name__}",
        field="config",
        value=config,
        source="keyword argument",
    )
