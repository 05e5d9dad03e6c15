"""One declaration per setting: every path (code, YAML, environment, per call) reads it.

The cases are made from the schema itself (``coordination._settings.SETTINGS``), so a
setting added there is covered here without a new test: a valid value of it must arrive
through each path, an invalid one must be refused by each path in the same words, and
an old spelling must keep working with a ``DeprecationWarning``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination import CoordinationConfig
from coordination._errors import ConfigError
from coordination._rate import Rate, RateLimit, read_rate_limit, read_route_limits
from coordination._settings import (
    ALIASES,
    SETTINGS,
    Setting,
    read_class_names,
    read_hedge_after,
)
from coordination._threshold_grammar import read_operation_thresholds
from coordination.error_handling import CoordinationErrorHandler, handle_errors
from coordination.error_handling._options import Options, resolve_options

pytestmark = pytest.mark.usefixtures("clean_environment")

# A valid value for each grammar (a new grammar fails here until it gets one).
GRAMMAR_SAMPLES: dict[Callable[[str], object], tuple[str, str]] = {
    read_rate_limit: ("7/1s;100/3600s", "lots"),
    read_route_limits: ("POST /orders=5/s, /items/{id}=1/s;9/h", "POST orders=5/s"),
    read_operation_thresholds: ("checkout: p95_ms=250", "checkout p95_ms"),
    read_hedge_after: ("0.25", "fast"),
}

# Where each per-call setting lands in the pipeline's Options (a new per-call setting
# fails the per-call tests until it is wired and listed here).
IN_OPTIONS: dict[str, Callable[[Options], object]] = {
    "max_retries": lambda o: o.max_retries,
    "base_delay": lambda o: o.backoff.base_delay,
    "backoff_multiplier": lambda o: o.backoff.multiplier,
    "max_delay": lambda o: o.backoff.max_delay,
    "jitter": lambda o: o.backoff.jitter,
    "retry_time_budget": lambda o: o.time_budget,
    "error_severity": lambda o: o.severity.value,
    "circuit_breaker_threshold": lambda o: o.breaker.failure_threshold,
    "circuit_breaker_timeout": lambda o: o.breaker.open_seconds,
    "half_open_calls": lambda o: o.breaker.half_open_calls,
    "half_open_max_wait": lambda o: o.breaker.half_open_max_wait,
    "open_backoff_multiplier": lambda o: o.breaker.open_backoff_multiplier,
    "max_open_seconds": lambda o: o.breaker.max_open_seconds,
    "breaker_mode": lambda o: o.breaker.mode,
    "failure_rate_threshold": lambda o: o.breaker.failure_rate_threshold,
    "slow_call_duration": lambda o: o.breaker.slow_call_duration,
    "slow_call_rate_threshold": lambda o: o.breaker.slow_call_rate_threshold,
    "window_type": lambda o: o.breaker.window_type,
    "window_size": lambda o: o.breaker.window_size,
    "minimum_calls": lambda o: o.breaker.minimum_calls,
    "timeout": lambda o: o.timeout,
    "timeout_workers": lambda o: o.timeout_workers,
    "max_concurrent": lambda o: o.max_concurrent,
    "bulkhead_wait": lambda o: o.bulkhead_wait,
    # the configuration holds the text, the pipeline the parsed RateLimit (str round-trips)
    "rate_limit": lambda o: None if o.rate_limit is None else str(o.rate_limit),
    "rate_limit_wait": lambda o: o.rate_limit_wait,
    # the configuration holds dotted names, the pipeline the classes they import
    "trip_on": lambda o: class_names(o.counting.trip_on),
    "breaker_ignores": lambda o: class_names(o.counting.breaker_ignores),
    "retry_budget": lambda o: o.retry_budget,
    "retry_budget_window": lambda o: o.retry_budget_window,
    "retry_budget_min_per_second": lambda o: o.retry_budget_min_per_second,
    # the configuration holds the text, the pipeline seconds (or a percentile's name)
    "hedge_after": lambda o: (
        o.hedge_after if not isinstance(o.hedge_after, float) else repr(o.hedge_after)
    ),
    "max_hedged_attempts": lambda o: o.max_hedged_attempts,
    "adaptive_concurrency": lambda o: o.adaptive_concurrency,
    "concurrency_algorithm": lambda o: o.concurrency_algorithm,
    "min_concurrency": lambda o: o.min_concurrency,
    "max_concurrency": lambda o: o.max_concurrency,
    "concurrency_group": lambda o: o.concurrency_group,
}
# Dotted names that import (the setting's valid value) and one that is no dotted name.
CLASS_NAMES = ("builtins.LookupError, builtins.ArithmeticError", "LookupError")


def class_names(rule: Any) -> tuple[str, ...] | None:
    if rule is None:
        return None
    return tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in rule)


def valid_value(setting: Setting) -> Any:
    """A value of ``setting`` that is valid and differs from its default."""
    if setting.reader is not None:  # the operations: mapping (JSON is YAML's flow form too)
        return {"payments": {"max_retries": 5}}
    if setting.grammar is not None:
        return GRAMMAR_SAMPLES[setting.grammar][0]
    if setting.kind is tuple:
        return CLASS_NAMES[0]
    if setting.choices is not None:
        return next(choice for choice in setting.choices if choice != setting.default)
    if setting.pattern is not None:
        return "header:X-API-Key"
    if setting.kind is bool:
        return not setting.default
    if setting.kind is str:
        return f"/custom/{setting.name}"
    base = setting.minimum if setting.minimum is not None else 0
    if setting.maximum is not None and setting.kind is float:  # a fraction
        return (base + setting.maximum) / 2 if setting.default is None else setting.maximum / 4
    value = base + 3 if setting.default is None else setting.default + 3
    return float(value) if setting.kind is float else int(value)


def invalid_value(setting: Setting) -> Any:
    """A value of ``setting``'s type that its check refuses."""
    if setting.grammar is not None:
        return GRAMMAR_SAMPLES[setting.grammar][1]
    if setting.kind is tuple:
        return CLASS_NAMES[1]
    if setting.choices is not None or setting.pattern is not None:
        return "no such/choice"
    if setting.kind is bool:
        return "maybe"  # only the environment's text can be wrong for a bool
    if setting.kind is str:
        return 42
    if setting.minimum is not None:
        return setting.minimum - 1
    return -1  # pragma: no cover - every number has a minimum today


def as_text(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical(setting: Setting, value: Any) -> Any:
    if setting.kind is tuple:
        return read_class_names(value)
    return value.upper() if setting.fold_case else value


EVERY = [pytest.param(s, id=s.name) for s in SETTINGS.values()]
PER_CALL = [pytest.param(s, id=s.name) for s in SETTINGS.values() if s.per_call]
CHECKED = [pytest.param(s, id=s.name) for s in SETTINGS.values() if s.kind is not bool]


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coordination.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- a valid value arrives through every path -----------------------------------------


def test_the_config_fields_are_the_schemas_settings_in_order() -> None:
    # CoordinationConfig spells out each setting's field for type checkers and readers;
    # that spelling must be the schema's, name for name and type for type, in order.
    declared = [(field.name, field.type) for field in dataclasses.fields(CoordinationConfig)]
    assert declared == [(setting.name, setting.type_name) for setting in SETTINGS.values()]


@pytest.mark.parametrize("setting", EVERY)
def test_a_valid_value_arrives_from_code_yaml_and_the_environment(
    setting: Setting, tmp_path: Path
) -> None:
    value = valid_value(setting)
    expected = canonical(setting, value)
    assert getattr(CoordinationConfig(**{setting.name: value}), setting.name) == expected
    path = write_yaml(tmp_path, f"{setting.name}: {as_text(value)!r}\n")
    if not isinstance(value, str):
        path = write_yaml(tmp_path, f"{setting.name}: {as_text(value)}\n")
    assert getattr(CoordinationConfig.from_file(path), setting.name) == expected
    environ = {setting.env: as_text(value)}
    assert getattr(CoordinationConfig.from_environment(environ), setting.name) == expected
    assert getattr(CoordinationConfig.from_mapping({setting.name: value}), setting.name) == (
        expected
    )


@pytest.mark.parametrize("setting", PER_CALL)
def test_a_per_call_setting_arrives_per_call_and_from_the_configuration(
    setting: Setting,
) -> None:
    value = valid_value(setting)
    read = IN_OPTIONS[setting.name]
    expected = canonical(setting, value)
    # per call, over the defaults
    assert read(resolve_options(CoordinationConfig(), {setting.name: value})) == expected
    # from the configuration (so from YAML and the environment too), with no override
    config = CoordinationConfig.from_environment({setting.env: as_text(value)})
    assert read(resolve_options(config, {})) == expected
    # the handler's own path
    handler = CoordinationErrorHandler({setting.name: value})
    assert read(handler.config_options()) == expected


@pytest.mark.parametrize("setting", PER_CALL)
def test_the_default_of_a_per_call_setting_is_the_schemas(setting: Setting) -> None:
    options = resolve_options(CoordinationConfig(), {})
    default = setting.default
    assert IN_OPTIONS[setting.name](options) == default


def test_every_per_call_setting_is_an_option_and_every_option_is_known() -> None:
    from coordination.error_handling._options import CALL_ONLY_OPTIONS, OPTION_KEYS

    per_call = {s.name for s in SETTINGS.values() if s.per_call}
    assert per_call == set(IN_OPTIONS)
    assert frozenset(per_call | set(CALL_ONLY_OPTIONS)) == OPTION_KEYS


# --- an invalid value is refused by every path, in the same words -----------------------


@pytest.mark.parametrize("setting", CHECKED)
def test_an_invalid_value_is_refused_by_every_path_in_the_same_words(
    setting: Setting, tmp_path: Path
) -> None:
    bad = invalid_value(setting)
    messages: dict[str, str] = {}
    sources = {
        "code": "keyword argument",
        "mapping": "configuration mapping",
        "yaml": f"{tmp_path / 'coordination.yaml'}, line 1",
        "environment": f"environment variable {setting.env}",
    }
    attempts: dict[str, Callable[[], object]] = {
        "code": lambda: CoordinationConfig(**{setting.name: bad}),
        "mapping": lambda: CoordinationConfig.from_mapping({setting.name: bad}),
        "yaml": lambda: CoordinationConfig.from_file(
            write_yaml(tmp_path, f"{setting.name}: {bad!r}\n")
        ),
        "environment": lambda: CoordinationConfig.from_environment({setting.env: str(bad)}),
    }
    if setting.kind is str and isinstance(bad, int):
        del attempts["environment"]  # any text is a string: 42 is wrong only as a number
    if setting.per_call:
        sources["per call"] = "keyword argument"
        attempts["per call"] = lambda: resolve_options(CoordinationConfig(), {setting.name: bad})
        sources["decorator"] = "keyword argument"
        attempts["decorator"] = lambda: handle_errors(
            handler=CoordinationErrorHandler(CoordinationConfig()), **{setting.name: bad}
        )
    for path, attempt in attempts.items():
        with pytest.raises(ConfigError) as caught:
            attempt()
        error = caught.value
        assert error.field == setting.name, path
        assert error.source == sources[path], path
        assert str(error).startswith(f"invalid {setting.name} = "), path
        assert f" from {sources[path]}: " in str(error), path
        messages[path] = str(error).partition(f" from {sources[path]}: ")[2]
    # The problem is worded once: the same after "from <source>: " on every path (the
    # environment's text may be a type error where code gives a number out of range).
    problems = {p for path, p in messages.items() if path != "environment"}
    assert len(problems) == 1, messages


@pytest.mark.parametrize(
    "setting", [pytest.param(s, id=s.name) for s in SETTINGS.values() if s.kind is bool]
)
def test_a_bool_setting_refuses_other_words_from_the_environment(setting: Setting) -> None:
    with pytest.raises(ConfigError, match=rf"invalid {setting.name} = 'maybe' from environment"):
        CoordinationConfig.from_environment({setting.env: "maybe"})
    with pytest.raises(ConfigError, match="expected true or false"):
        CoordinationConfig(**{setting.name: "yes"})


# --- the per-call path and the configuration agree on every value -----------------------

VALUES = st.one_of(
    st.integers(min_value=-5, max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.sampled_from(["count", "time", "full", "high", "5/s", "0/s", "1.5", "none"]),
)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except ConfigError as exc:
        return "refused", str(exc)


@given(st.sampled_from([s for s in SETTINGS.values() if s.per_call]), VALUES)
def test_config_and_per_call_accept_and_refuse_the_same_values_in_the_same_words(
    setting: Setting, value: Any
) -> None:
    read = IN_OPTIONS[setting.name]
    by_config = outcome(
        lambda: read(resolve_options(CoordinationConfig(**{setting.name: value}), {}))
    )
    per_call = outcome(lambda: read(resolve_options(CoordinationConfig(), {setting.name: value})))
    if by_config[0] == "ok" and per_call[0] == "ok":
        same = by_config[1] == per_call[1] or (
            isinstance(by_config[1], float) and math.isnan(by_config[1]) and math.isnan(per_call[1])
        )
        assert same, (by_config, per_call)
    else:
        # dotted names that do not import are refused when the plan is built, naming
        # where they came from: the configuration, or the keyword argument
        config_words = (
            by_config[0],
            by_config[1].replace(" from the configuration: ", " from keyword argument: "),
        )
        assert config_words == per_call


@given(st.sampled_from(["base_delay", "max_delay", "backoff_multiplier", "jitter"]), VALUES)
def test_backoff_checks_in_the_schemas_words(name: str, value: Any) -> None:
    from coordination.error_handling._retry import Backoff

    attribute = "multiplier" if name == "backoff_multiplier" else name
    by_config = outcome(lambda: CoordinationConfig(**{name: value}))
    by_hand = outcome(lambda: Backoff(**{attribute: value}))
    assert by_config[0] == by_hand[0]
    if by_config[0] == "refused":
        problem = by_config[1].partition(" from keyword argument: ")[2]
        assert by_hand[1].endswith(f": {problem}")
        assert f"invalid {name} = " in by_hand[1]


def test_a_rate_object_is_accepted_per_call() -> None:
    options = resolve_options(CoordinationConfig(), {"rate_limit": Rate(3, 1.0)})
    assert options.rate_limit == RateLimit((Rate(3, 1.0),))
    limit = RateLimit.parse("3/s;100/h")
    assert resolve_options(CoordinationConfig(), {"rate_limit": limit}).rate_limit is limit


def test_none_per_call_means_the_configuration_or_not_set_as_the_schema_says() -> None:
    config = CoordinationConfig(timeout=2.0, max_concurrent=4, window_size=7)
    options = resolve_options(
        config, {"timeout": None, "max_concurrent": None, "window_size": None}
    )
    assert options.timeout is None  # none_unsets: no timeout for this operation
    assert options.max_concurrent == 4  # the configuration's
    assert options.breaker.window_size == 7


# --- old spellings: accepted, for one release, with a DeprecationWarning --------------------


@pytest.mark.parametrize(("old", "setting"), ALIASES.items())
def test_an_old_spelling_works_everywhere_with_a_deprecation_warning(
    old: str, setting: Setting, tmp_path: Path
) -> None:
    value = valid_value(setting)
    expected = canonical(setting, value)
    new = repr(setting.name)

    def arrives(config: CoordinationConfig) -> None:
        assert getattr(config, setting.name) == expected

    with pytest.warns(DeprecationWarning, match=rf"{old!r} \(in keyword argument\).*use {new}"):
        arrives(CoordinationConfig(**{old: value}))
    with pytest.warns(DeprecationWarning, match=f"use {new}"):
        arrives(CoordinationConfig.from_mapping({old: value}))
    with pytest.warns(DeprecationWarning, match=f"use {new}"):
        arrives(CoordinationConfig().replace(**{old: value}))
    with pytest.warns(DeprecationWarning, match=rf"coordination.yaml, line 1\).*use {new}"):
        arrives(CoordinationConfig.from_file(write_yaml(tmp_path, f"{old}: {value}\n")))
    variable = f"COORDINATION_{old.upper()}"
    with pytest.warns(DeprecationWarning, match=rf"{variable}.*use '{setting.env}'"):
        arrives(CoordinationConfig.from_environment({variable: as_text(value)}))
    with pytest.warns(DeprecationWarning, match=f"use {new}"):
        assert getattr(CoordinationConfig(**{setting.name: value}), old) == expected
    if setting.per_call:
        with pytest.warns(DeprecationWarning, match=f"use {new}"):
            options = resolve_options(CoordinationConfig(), {old: value})
        assert IN_OPTIONS[setting.name](options) == expected


@pytest.mark.parametrize(("old", "setting"), ALIASES.items())
def test_the_new_variable_wins_over_the_old_one(old: str, setting: Setting) -> None:
    value = valid_value(setting)
    environ = {setting.env: as_text(value), f"COORDINATION_{old.upper()}": "garbage"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old variable is not even read
        assert getattr(CoordinationConfig.from_environment(environ), setting.name) == value


def test_an_old_variable_is_not_reported_as_unknown() -> None:
    from coordination._config import unknown_environment_variables

    environ = {f"COORDINATION_{old.upper()}": "1" for old in ALIASES}
    assert unknown_environment_variables(environ) == []


def test_the_deprecation_warning_points_at_the_callers_line() -> None:
    with pytest.warns(DeprecationWarning, match="use 'timeout'") as caught:
        CoordinationConfig(operation_timeout=1.0)  # type: ignore[call-arg]
    assert caught[0].filename == __file__


def test_the_core_value_types_are_re_exported_where_they_were() -> None:
    from coordination import _rate, error_handling
    from coordination.error_handling import _backends

    assert error_handling.Rate is _rate.Rate
    assert error_handling.RateLimit is _backends.RateLimit is _rate.RateLimit


def test_the_configuration_imports_no_capability() -> None:
    """The parsers it checks values with are the core's: nothing imported by name."""
    source = Path(__file__).resolve().parent.parent / "src" / "coordination" / "_config.py"
    imports = [
        line
        for line in source.read_text(encoding="utf-8").splitlines()
        if line.startswith(("import ", "from "))
    ]
    assert imports, "no imports found: the test reads the wrong file"
    assert not [line for line in imports if "importlib" in line or line.startswith("from ..")]
    assert not [line for line in imports if "error_handling" in line or "performance" in line]


def test_the_configurations_error_severity_is_the_default_of_every_door() -> None:
    handler = CoordinationErrorHandler({"error_severity": "high", "max_retries": 0})

    def down() -> None:
        raise ConnectionError("down")

    for severity in (None, "low"):
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(down, error_severity=severity)
    assert handler.get_error_report()["errors_by_severity"] == {"HIGH": 1, "LOW": 1}
