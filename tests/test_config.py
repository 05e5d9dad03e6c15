"""CoordinationConfig: the spec's fields and defaults, the sources, precedence, bad input."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from coordination import ConfigError, CoordinationConfig, describe_config, load_coordination_config
from coordination._config import CONFIG_FILE_VARIABLE, config_settings, resolve_config

pytestmark = pytest.mark.usefixtures("clean_environment")

SPEC_FIELDS = {
    # name: (default, environment variable) — exactly as the spec's CoordinationConfig
    "enable_validation": (True, "COORDINATION_ENABLE_VALIDATION"),
    "validation_rules_path": ("src/core/validation/rules", "COORDINATION_RULES_PATH"),
    "max_retries": (3, "COORDINATION_MAX_RETRIES"),
    "base_delay": (1.0, "COORDINATION_BASE_DELAY"),
    "backoff_multiplier": (2.0, "COORDINATION_BACKOFF_MULTIPLIER"),
    "circuit_breaker_threshold": (5, "COORDINATION_CIRCUIT_BREAKER_THRESHOLD"),
    "enable_performance_monitoring": (True, "COORDINATION_ENABLE_PERFORMANCE"),
    "collection_interval": (5.0, "COORDINATION_COLLECTION_INTERVAL"),
    "max_data_points": (1000, "COORDINATION_MAX_DATA_POINTS"),
}


def write(tmp_path: Path, text: str, name: str = "coordination.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "expected"), SPEC_FIELDS.items())
def test_spec_fields_have_the_spec_defaults_and_variables(
    name: str, expected: tuple[object, str]
) -> None:
    default, variable = expected
    settings = {s.name: s for s in config_settings()}
    assert getattr(CoordinationConfig(), name) == default
    assert settings[name].env == variable


def test_engine_fields_exist_with_documented_defaults() -> None:
    config = CoordinationConfig()
    assert config.circuit_breaker_timeout == 30.0
    assert config.max_delay == 60.0
    assert config.jitter == "full"


def test_config_is_frozen() -> None:
    config = CoordinationConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_retries = 9  # type: ignore[misc]


def test_from_environment_reads_every_spec_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    monkeypatch.setenv("COORDINATION_RULES_PATH", "/etc/rules")
    monkeypatch.setenv("COORDINATION_MAX_RETRIES", "7")
    monkeypatch.setenv("COORDINATION_BASE_DELAY", "0.25")
    monkeypatch.setenv("COORDINATION_BACKOFF_MULTIPLIER", "3")
    monkeypatch.setenv("COORDINATION_CIRCUIT_BREAKER_THRESHOLD", "2")
    monkeypatch.setenv("COORDINATION_ENABLE_PERFORMANCE", "FALSE")
    monkeypatch.setenv("COORDINATION_COLLECTION_INTERVAL", "0.5")
    monkeypatch.setenv("COORDINATION_MAX_DATA_POINTS", "10")
    config = CoordinationConfig.from_environment()
    assert config == CoordinationConfig(
        enable_validation=False,
        validation_rules_path="/etc/rules",
        max_retries=7,
        base_delay=0.25,
        backoff_multiplier=3.0,
        circuit_breaker_threshold=2,
        enable_performance_monitoring=False,
        collection_interval=0.5,
        max_data_points=10,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("Yes", True), ("on", True), ("false", False), ("0", False)],
)
def test_booleans_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", text)
    assert CoordinationConfig.from_environment().enable_validation is expected


def test_optional_fields_accept_none_from_the_environment() -> None:
    env = {"COORDINATION_TIMEOUT": "2.5", "COORDINATION_RETRY_TIME_BUDGET": "none"}
    config = CoordinationConfig.from_environment(env)
    assert config.timeout == 2.5
    assert config.retry_time_budget is None


def test_yaml_file_as_in_the_spec(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        enable_validation: true
        validation_rules_path: "src/core/validation/rules"
        max_retries: 3
        base_delay: 1.0
        backoff_multiplier: 2.0
        circuit_breaker_threshold: 5
        enable_performance_monitoring: true
        collection_interval: 5.0
        max_data_points: 1000
        """,
    )
    assert load_coordination_config(str(path)) == CoordinationConfig()
    changed = write(tmp_path, "max_retries: 5\nbase_delay: 2\n", "other.yaml")
    config = load_coordination_config(changed)
    assert (config.max_retries, config.base_delay) == (5, 2.0)
    assert isinstance(config.base_delay, float)


def test_missing_file_at_the_default_path_gives_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/coordination.yaml here
    assert load_coordination_config() == CoordinationConfig()
    assert load_coordination_config("config/coordination.yaml") == CoordinationConfig()


def test_missing_file_named_explicitly_is_an_error(tmp_path: Path) -> None:
    absent = tmp_path / "absent.yaml"
    for load in (load_coordination_config, CoordinationConfig.from_file, CoordinationConfig.load):
        with pytest.raises(ConfigError, match=r"absent.yaml \(named by argument\) does not exist"):
            load(absent)


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_coordination_config(write(tmp_path, "")) == CoordinationConfig()


def test_precedence_defaults_file_environment_keywords(tmp_path: Path) -> None:
    path = write(tmp_path, "max_retries: 5\nbase_delay: 2.0\nmax_delay: 9\n")
    env = {"COORDINATION_MAX_RETRIES": "6", "COORDINATION_BASE_DELAY": "3"}
    config = CoordinationConfig.load(path, environ=env, max_retries=8)
    assert config.max_retries == 8  # keyword beats environment
    assert config.base_delay == 3.0  # environment beats file
    assert config.max_delay == 9.0  # file beats default
    assert config.backoff_multiplier == 2.0  # default
    sources = {name: source for name, _, source in describe_config(path, environ=env)}
    assert sources["base_delay"] == "environment variable COORDINATION_BASE_DELAY"
    assert sources["max_delay"] == f"{path}, line 3"
    assert sources["jitter"] == "default"


def test_config_file_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "circuit_breaker_threshold: 9\n")
    config = CoordinationConfig.load(environ={CONFIG_FILE_VARIABLE: str(path)})
    assert config.circuit_breaker_threshold == 9


def test_resolve_config_accepts_the_specs_mapping() -> None:
    config = resolve_config({"enable_validation": True, "enable_performance_monitoring": False})
    assert config.enable_performance_monitoring is False
    assert resolve_config(config) is config
    with pytest.raises(ConfigError, match="config must be"):
        resolve_config(42)  # type: ignore[arg-type]


def test_replace_checks_the_new_values() -> None:
    config = CoordinationConfig().replace(max_retries=1)
    assert config.max_retries == 1
    with pytest.raises(ConfigError, match="max_retries"):
        config.replace(max_retries=-1)
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        config.replace(max_retires=1)


# --- bad input: the error names the field, the value and the source ------------------


@pytest.mark.parametrize(
    ("variable", "text", "field", "problem"),
    [
        ("COORDINATION_MAX_RETRIES", "-1", "max_retries", "at least 0"),
        ("COORDINATION_MAX_RETRIES", "three", "max_retries", "whole number"),
        ("COORDINATION_BACKOFF_MULTIPLIER", "0.5", "backoff_multiplier", "at least 1"),
        ("COORDINATION_CIRCUIT_BREAKER_THRESHOLD", "0", "circuit_breaker_threshold", "at least 1"),
        ("COORDINATION_COLLECTION_INTERVAL", "0", "collection_interval", "greater than 0"),
        ("COORDINATION_BASE_DELAY", "nan", "base_delay", "finite"),
        ("COORDINATION_ENABLE_VALIDATION", "maybe", "enable_validation", "true or false"),
        ("COORDINATION_JITTER", "lots", "jitter", "one of none, full"),
        ("COORDINATION_RATE_LIMIT", "fast", "rate_limit", "100/s"),
        # checked by the parser that reads them later, so nothing passes here and fails there
        ("COORDINATION_RATE_LIMIT", "0/s", "rate_limit", "greater than 0"),
        ("COORDINATION_CLIENT_RATE_LIMIT", "5/fortnight", "client_rate_limit", "100/s"),
        (
            "COORDINATION_OPERATION_THRESHOLDS",
            "checkout: p95_ms=1e",
            "operation_thresholds",
            "p95_ms=250",
        ),
        ("COORDINATION_ERROR_RATE_THRESHOLD", "1.5", "error_rate_threshold", "at most 1"),
    ],
)
def test_bad_environment_value_names_field_value_and_variable(
    variable: str, text: str, field: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        CoordinationConfig.from_environment({variable: text})
    error = caught.value
    assert error.field == field
    assert error.source == f"environment variable {variable}"
    assert field in str(error)
    assert repr(text) in str(error)
    assert variable in str(error)
    assert problem in str(error)


def test_bad_file_value_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "max_retries: 3\nbase_delay: -2\n")
    with pytest.raises(ConfigError) as caught:
        load_coordination_config(path)
    assert caught.value.field == "base_delay"
    assert f"{path}, line 2" in str(caught.value)
    assert "-2" in str(caught.value)


def test_wrong_type_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'max_retries: "3"\n')
    with pytest.raises(ConfigError, match=r"max_retries = '3' .* line 1: expected a whole number"):
        load_coordination_config(path)


def test_boolean_is_not_a_number(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        load_coordination_config(write(tmp_path, "max_retries: true\n"))


def test_unknown_key_in_file_suggests_the_closest_name(tmp_path: Path) -> None:
    path = write(tmp_path, "max_retries: 3\nmax_retires: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_coordination_config(path)
    message = str(caught.value)
    assert "max_retires" in message
    assert "did you mean 'max_retries'" in message
    assert f"{path}, line 2" in message


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "max_retries: 3\nbase_delay: [1, 2\n")
    with pytest.raises(ConfigError, match=r"malformed YAML .*line \d+"):
        load_coordination_config(path)


def test_file_must_hold_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_coordination_config(write(tmp_path, "- 1\n- 2\n"))


def test_keyword_argument_errors_name_the_source() -> None:
    with pytest.raises(ConfigError) as caught:
        CoordinationConfig(max_retries=-3)
    assert caught.value.source == "keyword argument"
    with pytest.raises(ConfigError, match="expected a whole number"):
        CoordinationConfig(max_retries="3")  # type: ignore[arg-type]


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        CoordinationConfig(max_retries=-1)


def test_to_dict_round_trips_through_from_mapping() -> None:
    config = CoordinationConfig(max_retries=1, timeout=2.0)
    assert CoordinationConfig.from_mapping(config.to_dict()) == config
