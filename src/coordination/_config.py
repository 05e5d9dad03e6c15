"""``CoordinationConfig``: every setting of the library, from code, YAML or the environment.

Precedence, lowest first: the defaults < a YAML file < ``COORDINATION_*`` environment
variables < keyword arguments given in code. ``CoordinationConfig.load()`` combines all
four; ``from_environment()`` and ``load_coordination_config()`` behave as in the spec.
A component's ``config=`` mapping is the top layer the same way (``resolve_config``): it
overrides only the keys it names, so the file and the environment still apply beneath it.

Every value is checked where it enters, and a bad one raises ``ConfigError`` naming the
field, the value and its source (``environment variable COORDINATION_MAX_RETRIES``,
``config/coordination.yaml, line 3``, ``keyword argument``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigError, ConfigWarning
from ._quote import quote
from ._redact import redact

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "DEFAULT_CONFIG_PATH",
    "ConfigSetting",
    "CoordinationConfig",
    "config_settings",
    "describe_config",
    "load_coordination_config",
    "resolve_config",
    "unknown_environment_variables",
]

CONFIG_FILE_VARIABLE = "COORDINATION_CONFIG_FILE"
DEFAULT_CONFIG_PATH = "config/coordination.yaml"  # the spec's; missing there means defaults
ENVIRONMENT_PREFIX = "COORDINATION_"
# Variables with the prefix that are not settings, yet are ours: no "unknown" warning.
_OTHER_VARIABLES = {
    CONFIG_FILE_VARIABLE: "names the YAML configuration file",
    "COORDINATION_REQUIRE_REDIS": "makes this project's Redis tests mandatory (CI)",
}
JITTER_KINDS = ("none", "full", "equal", "decorrelated")
# Values with a grammar of their own are checked by the parser that will read them, so
# the configuration can neither accept what the component later refuses nor the reverse.
_RATE_PARSER = "coordination.error_handling._backends:Rate.parse"
# How the middleware names a client: its address, or a header (an RFC 9110 token name).
_CLIENT_KEY = re.compile(r"^(address|header:[!#$%&'*+\-.^_`|~0-9A-Za-z]+)$")


# --- how one field is described ------------------------------------------------------


def _setting(
    default: Any,
    kind: type,
    doc: str,
    *,
    env: str | None = None,
    optional: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    choices: tuple[str, ...] | None = None,
    pattern: re.Pattern[str] | None = None,
    pattern_hint: str = "",
    parser: str | None = None,
) -> Any:
    """A dataclass field whose metadata says how to parse, check and document it."""
    return dataclasses.field(
        default=default,
        metadata={
            "kind": kind,
            "doc": doc,
            "env": env,
            "optional": optional,
            "minimum": minimum,
            "maximum": maximum,
            "exclusive_minimum": exclusive_minimum,
            "choices": choices,
            "pattern": pattern,
            "pattern_hint": pattern_hint,
            "parser": parser,
        },
    )


@dataclass(frozen=True, slots=True)
class CoordinationConfig:
    """Configuration for every coordination component.

    >>> CoordinationConfig(max_retries=5).max_retries
    5
    >>> CoordinationConfig.load(max_retries=2).base_delay  # defaults < file < env < kwargs
    1.0
    """

    # --- the spec's fields, with the spec's names, defaults and variables ---
    enable_validation: bool = _setting(
        True,
        bool,
        "Validate inputs against rule sets; off turns validation into a no-op everywhere.",
        env="COORDINATION_ENABLE_VALIDATION",
    )
    validation_rules_path: str = _setting(
        "src/core/validation/rules",
        str,
        "File or folder of YAML rule sets loaded by CoordinationValidator "
        "(a missing path loads none).",
        env="COORDINATION_RULES_PATH",
    )
    max_retries: int = _setting(
        3,
        int,
        "Retries after the first attempt (3 means at most 4 calls).",
        minimum=0,
    )
    base_delay: float = _setting(1.0, float, "Seconds to wait before the first retry.", minimum=0)
    backoff_multiplier: float = _setting(
        2.0, float, "Each retry waits this many times longer than the one before.", minimum=1
    )
    circuit_breaker_threshold: int = _setting(
        5, int, "Consecutive failures that open an operation's circuit breaker.", minimum=1
    )
    enable_performance_monitoring: bool = _setting(
        True,
        bool,
        "Record latency and outcomes; off turns monitoring into a no-op everywhere.",
        env="COORDINATION_ENABLE_PERFORMANCE",
    )
    collection_interval: float = _setting(
        5.0,
        float,
        "Seconds between resource samples taken by the monitor's background thread.",
        minimum=0,
        exclusive_minimum=True,
    )
    max_data_points: int = _setting(
        1000, int, "Resource samples (and windowed points) kept in memory at most.", minimum=1
    )

    # --- error handling: retry, breaker, timeout, bulkhead, rate limit ---
    max_delay: float = _setting(60.0, float, "Cap on one backoff wait, in seconds.", minimum=0)
    jitter: str = _setting(
        "full",
        str,
        "Randomisation of backoff waits: none, full (uniform 0..wait), equal "
        "(wait/2 + uniform 0..wait/2) or decorrelated.",
        choices=JITTER_KINDS,
    )
    retry_time_budget: float | None = _setting(
        None,
        float,
        "Overall seconds an operation may spend retrying (none: no budget).",
        optional=True,
        minimum=0,
        exclusive_minimum=True,
    )
    circuit_breaker_timeout: float = _setting(
        30.0,
        float,
        "Seconds an open breaker rejects calls before admitting trial calls.",
        minimum=0,
        exclusive_minimum=True,
    )
    circuit_breaker_half_open_calls: int = _setting(
        1, int, "Trial calls a half-open breaker admits; all must succeed to close it.", minimum=1
    )
    operation_timeout: float | None = _setting(
        None,
        float,
        "Seconds one attempt may take (none: no timeout).",
        optional=True,
        minimum=0,
        exclusive_minimum=True,
    )
    max_concurrent: int | None = _setting(
        None,
        int,
        "Bulkhead: concurrent calls allowed per operation (none: unlimited).",
        optional=True,
        minimum=1,
    )
    rate_limit: str | None = _setting(
        None,
        str,
        'Calls allowed per operation, such as "100/s", "20/m" or "5/10s" (none: unlimited).',
        optional=True,
        parser=_RATE_PARSER,
    )

    # --- performance monitoring ---
    max_operation_names: int = _setting(
        1000,
        int,
        "Distinct operation names tracked; later names share the overflow name __overflow__.",
        minimum=1,
    )
    latency_p95_threshold_ms: float | None = _setting(
        None,
        float,
        "p95 latency above which an operation is DEGRADED (none: no threshold).",
        optional=True,
        minimum=0,
        exclusive_minimum=True,
    )
    latency_p99_threshold_ms: float | None = _setting(
        None,
        float,
        "p99 latency above which an operation is UNHEALTHY (none: no threshold).",
        optional=True,
        minimum=0,
        exclusive_minimum=True,
    )
    error_rate_threshold: float | None = _setting(
        None,
        float,
        "Recent error rate (0..1) above which an operation is UNHEALTHY (none: no threshold).",
        optional=True,
        minimum=0,
        maximum=1,
    )
    operation_thresholds: str | None = _setting(
        None,
        str,
        'Thresholds for named operations over the defaults above, such as "checkout: '
        'p95_ms=250 p99_ms=800 error_rate=0.05; search: p99_ms=1000" (keys: p95_ms, p99_ms, '
        "error_rate, min_samples).",
        optional=True,
        parser="coordination.performance._thresholds:parse_operation_thresholds",
    )

    # --- validation limits on messages (checked before any rule runs) ---
    validation_max_depth: int = _setting(
        64, int, "Deepest nesting of mappings and lists a message may have.", minimum=1
    )
    validation_max_string_length: int = _setting(
        1_000_000, int, "Longest string (in characters) a message may contain.", minimum=1
    )
    validation_max_items: int = _setting(
        100_000, int, "Most entries one mapping or list in a message may have.", minimum=1
    )
    validation_fail_fast: bool = _setting(
        False, bool, "Stop at the first validation error instead of collecting all."
    )

    # --- events ---
    dead_letter_path: str | None = _setting(
        None,
        str,
        'SQLite file that keeps events which could not be processed (":memory:" keeps '
        "them in memory only; none: dead-letters.sqlite3 in the platform's state "
        "directory, ~/.local/state/coordination on Linux).",
        optional=True,
    )

    # --- HTTP middleware: structural request limits (checked before the app runs) ---
    max_request_body_bytes: int = _setting(
        10_485_760,
        int,
        "Largest request body the WSGI/ASGI middleware lets through (larger: 413).",
        minimum=0,
    )
    max_header_bytes: int = _setting(
        32_768,
        int,
        "Largest total size of a request's header names and values (larger: 431).",
        minimum=1,
    )
    map_resilience_errors: bool = _setting(
        True,
        bool,
        "Answer resilience errors raised inside the app as problem+json: an open circuit "
        "or a full bulkhead 503, a spent rate limit 429 (both with Retry-After), a "
        "timeout 504 (off: they reach the framework's own error handling).",
    )
    client_rate_limit: str | None = _setting(
        None,
        str,
        'Requests allowed per client through the WSGI/ASGI middleware, such as "100/s" or '
        '"600/m" (none: unlimited); beyond it: 429 with Retry-After. Shared through Redis '
        "when redis_url is set.",
        optional=True,
        parser=_RATE_PARSER,
    )
    client_rate_limit_key: str = _setting(
        "address",
        str,
        'How the middleware tells clients apart for client_rate_limit: "address" (the peer '
        'address) or "header:<Name>", such as "header:X-API-Key" (its value is hashed, '
        "never stored; requests without the header fall back to their address).",
        pattern=_CLIENT_KEY,
        pattern_hint='"address" or "header:<Name>", such as "header:X-API-Key"',
    )

    # --- observability and built-in HTTP endpoints ---
    expose_endpoints: bool = _setting(
        False,
        bool,
        "Serve the metrics, health and status-page endpoints from the middleware.",
    )
    metrics_path: str = _setting("/metrics", str, "Path of the Prometheus metrics endpoint.")
    health_path: str = _setting(
        "/health", str, "Path of the health endpoint (with /live and /ready below it)."
    )
    status_page_path: str = _setting("/coordination", str, "Path of the live status page.")
    health_details: bool = _setting(
        False, bool, "Show component details in the /health document (off: status only)."
    )
    health_cache_seconds: float = _setting(
        1.0, float, "Seconds a health check's result is reused.", minimum=0
    )
    health_check_timeout: float = _setting(
        2.0,
        float,
        "Seconds a custom health check may take before it counts as failed.",
        minimum=0,
        exclusive_minimum=True,
    )

    # --- scale-out ---
    redis_url: str | None = _setting(
        None,
        str,
        "Redis URL for shared breaker state and rate limits (none: state stays in-process).",
        optional=True,
    )
    redis_namespace: str = _setting(
        "coordination", str, "Prefix of every Redis key this library writes."
    )
    redis_outage_policy: str = _setting(
        "local",
        str,
        "What shared breakers and rate limits do while Redis is unreachable: local (use "
        "this process's own state), allow (admit every call) or raise (StoreError).",
        choices=("local", "allow", "raise"),
    )

    # --- diagnostics ---
    debug: bool = _setting(
        False, bool, "Turn on DEBUG logging for every component's coordination.* logger."
    )

    def __post_init__(self) -> None:
        for spec in _SETTINGS.values():
            spec.check(getattr(self, spec.name), "keyword argument")

    # --- constructors -----------------------------------------------------------------

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CoordinationConfig:
        """The defaults overridden by ``COORDINATION_*`` environment variables."""
        values, _ = _resolve(path=None, environ=environ, overrides={}, read_file=False)
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CoordinationConfig:
        """The defaults overridden by a YAML file; ``ConfigError`` if it does not exist."""
        return cls(**_file_values(_must_exist(Path(path), "argument")))

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, source: str = "configuration mapping"
    ) -> CoordinationConfig:
        """The defaults overridden by ``data`` (unknown keys are an error, with a hint)."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            spec = _lookup(key, source)
            values[spec.name] = spec.coerce(value, source)
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
        for key in changes:
            _lookup(key, "keyword argument")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field and its value, JSON-serialisable (unmasked: this is data, not a view)."""
        return {name: getattr(self, name) for name in _SETTINGS}

    def __repr__(self) -> str:
        # Shown in logs and tracebacks: a redis_url's password appears as ***.
        fields = ", ".join(f"{name}={shown_value(getattr(self, name))!r}" for name in _SETTINGS)
        return f"{type(self).__name__}({fields})"


# --- parsing and checking --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigSetting:
    """How one configuration field is parsed, checked and documented."""

    name: str
    kind: type
    default: Any
    doc: str
    env: str
    optional: bool
    minimum: float | None
    maximum: float | None
    exclusive_minimum: bool
    choices: tuple[str, ...] | None
    pattern: re.Pattern[str] | None
    pattern_hint: str
    parser: str | None

    @property
    def type_name(self) -> str:
        base = {bool: "bool", int: "int", float: "float", str: "str"}[self.kind]
        return f"{base} | None" if self.optional else base

    def coerce(self, value: Any, source: str) -> Any:
        """``value`` as this field's type (from YAML or code), else ``ConfigError``."""
        if value is None and self.optional:
            return None
        kind = self.kind
        ok = (
            (kind is bool and isinstance(value, bool))
            or (kind is int and isinstance(value, int) and not isinstance(value, bool))
            or (kind is float and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind is str and isinstance(value, str))
        )
        if not ok:
            raise self._error(value, source, f"expected {self._expected()}")
        if kind is float:
            try:
                value = float(value)
            except OverflowError:  # an int too large for a float
                raise self._error(value, source, "expected a finite number") from None
        self.check(value, source)
        return value

    def parse_text(self, text: str, source: str) -> Any:
        """``text`` (an environment variable's value) as this field's type."""
        stripped = text.strip()
        if self.optional and stripped.lower() in ("", "none", "null"):
            return None
        try:
            if self.kind is bool:
                value: Any = _parse_bool(stripped)
            elif self.kind is int:
                value = int(stripped)
            elif self.kind is float:
                value = float(stripped)
            else:
                value = text
        except ValueError:
            raise self._error(text, source, f"expected {self._expected()}") from None
        problem = self._problem(value)
        if problem is not None:
            # Quote the variable's text as written, not the parsed number.
            raise self._error(text, source, problem)
        return value

    def check(self, value: Any, source: str) -> None:
        """Raise ``ConfigError`` unless ``value`` is of the right type and in range."""
        problem = self._problem(value)
        if problem is not None:
            raise self._error(value, source, problem)

    def _problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this field, or None."""
        if value is None:
            return None if self.optional else f"expected {self._expected()}"
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # an int too large for a float
                return "expected a finite number"
        if not isinstance(value, self.kind) or (self.kind is not bool and isinstance(value, bool)):
            return f"expected {self._expected()}"
        return self._range_problem(value)

    def _range_problem(self, value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        if self.minimum is not None:
            if self.exclusive_minimum and value <= self.minimum:
                return f"must be greater than {self.minimum:g}"
            if value < self.minimum:
                return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.pattern is not None and not self.pattern.match(value):
            return f"expected {self.pattern_hint}"
        if self.parser is not None:
            return _parser_problem(self.parser, self.name, value)
        return None

    def _expected(self) -> str:
        what = {
            bool: "true or false",
            int: "a whole number",
            float: "a number",
            str: "a string",
        }[self.kind]
        return f"{what} (or none)" if self.optional else what

    def _error(self, value: Any, source: str, problem: str) -> ConfigError:
        return ConfigError(
            f"invalid {self.name} = {quote(value)} from {source}: {problem}",
            field=self.name,
            value=value,
            source=source,
        )


def _parser_problem(path: str, name: str, value: Any) -> str | None:
    """What the owning component's parser (``"module:qualified.name"``) says of ``value``.

    Imported when a value is checked, not when this module is: the parsers live in the
    capability packages, which themselves import this module.
    """
    module_name, _, qualname = path.partition(":")
    parse: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        parse = getattr(parse, part)
    try:
        parse(value)
    except ConfigError as exc:
        # The caller names the field, value and source itself: drop the parser's echo,
        # and keep what is left short (it may quote parts of a huge value).
        return _shorten(str(exc).removeprefix(f"invalid {name} = {value!r}: "), 300)
    return None


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text)} characters]"


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(text)


def _build_settings() -> dict[str, ConfigSetting]:
    settings: dict[str, ConfigSetting] = {}
    for f in dataclasses.fields(CoordinationConfig):
        meta = f.metadata
        settings[f.name] = ConfigSetting(
            name=f.name,
            kind=meta["kind"],
            default=f.default,
            doc=meta["doc"],
            env=meta["env"] or f"COORDINATION_{f.name.upper()}",
            optional=meta["optional"],
            minimum=meta["minimum"],
            maximum=meta["maximum"],
            exclusive_minimum=meta["exclusive_minimum"],
            choices=meta["choices"],
            pattern=meta["pattern"],
            pattern_hint=meta["pattern_hint"],
            parser=meta["parser"],
        )
    return settings


_SETTINGS = _build_settings()
_VARIABLES = {spec.env: spec for spec in _SETTINGS.values()}


def config_settings() -> Iterator[ConfigSetting]:
    """Every configuration field's description, in declaration order."""
    return iter(_SETTINGS.values())


def _lookup(key: object, source: str) -> ConfigSetting:
    if isinstance(key, str) and key in _SETTINGS:
        return _SETTINGS[key]
    # A key longer than any field name cannot be a typo of one worth suggesting.
    close = (
        difflib.get_close_matches(key, list(_SETTINGS), n=1, cutoff=0.6)
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


def _read_yaml(path: Path) -> dict[str, tuple[Any, str]]:
    """The file's settings, each with a ``"<file>, line N"`` source.

    Read with the bounded safe loader: an alias bomb or a 100 000-deep document is a
    ``ConfigError`` naming the file and line, at once. No message quotes the file's text.
    """
    try:
        text = path.read_text(encoding="utf-8")
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
    lines = {
        key_node.value: key_node.start_mark.line + 1
        for key_node, _ in root.value
        if isinstance(key_node, yaml.ScalarNode)
    }
    return {key: (value, f"{path}, line {lines.get(key, '?')}") for key, value in data.items()}


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


def _file_values(path: Path, sources: dict[str, str] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, (value, source) in _read_yaml(path).items():
        spec = _lookup(key, source)
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
) -> tuple[dict[str, Any], dict[str, str]]:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = dict.fromkeys(_SETTINGS, "default")

    if read_file:
        named_by = "argument"
        if path is None and env.get(CONFIG_FILE_VARIABLE):
            path, named_by = env[CONFIG_FILE_VARIABLE], CONFIG_FILE_VARIABLE
        if path is not None:
            values.update(_file_values(_must_exist(Path(path), named_by), sources))

    _warn_unknown_variables(env)
    for spec in _SETTINGS.values():
        if spec.env in env:
            source = f"environment variable {spec.env}"
            values[spec.name] = spec.parse_text(env[spec.env], source)
            sources[spec.name] = source

    for key, value in overrides.items():
        spec = _lookup(key, overrides_source)
        values[spec.name] = spec.coerce(value, overrides_source)
        sources[spec.name] = overrides_source
    return values, sources


def load_coordination_config(
    config_path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH,
) -> CoordinationConfig:
    """The spec's loader: the YAML file over the defaults.

    As in the spec, a missing file at the default path (``config/coordination.yaml``) gives
    the defaults; any other path names a file on purpose, so a missing one is a
    ``ConfigError`` rather than a silent fall back to defaults.
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
    """
    values, sources = _resolve(path=path, environ=environ, overrides=overrides, read_file=True)
    config = CoordinationConfig(**values)
    return [(name, shown_value(getattr(config, name)), sources[name]) for name in _SETTINGS]


def shown_value(value: Any) -> Any:
    """A setting's value as shown to people: strings under the redaction policy."""
    return redact(value) if isinstance(value, str) else value


def resolve_config(
    config: CoordinationConfig | Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> CoordinationConfig:
    """What a component does with its ``config=`` argument.

    - ``None``: defaults < the file named by ``COORDINATION_CONFIG_FILE`` < ``COORDINATION_*``
      environment variables (``CoordinationConfig.load()``).
    - a mapping (such as the spec's middleware ``config={...}``): the same layers, with the
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
