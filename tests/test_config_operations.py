"""The ``operations:`` setting: per-operation options from code, YAML and the environment,
each checked by its per-call setting, with its own line and layered option by option."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination import CoordinationConfig
from coordination._config import describe_config, describe_layers
from coordination._errors import ConfigError
from coordination._rate import Rate
from coordination._settings import SETTINGS, Setting
from coordination.error_handling._options import resolve_options

pytestmark = pytest.mark.usefixtures("clean_environment")

PER_CALL = [s for s in SETTINGS.values() if s.per_call]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coordination.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# --- from a file ----------------------------------------------------------------------


def test_a_file_sets_options_of_named_operations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        max_retries: 2
        operations:
          payments:
            max_retries: 5
            timeout: 2
            error_severity: high
          "POST /orders":
            rate_limit: 5/s
        """,
    )
    config = CoordinationConfig.from_file(path)
    assert config.max_retries == 2
    assert dict(config.operations["payments"]) == {
        "max_retries": 5,
        "timeout": 2.0,  # held in the setting's own form, as per call
        "error_severity": "HIGH",
    }
    assert dict(config.operations["POST /orders"]) == {"rate_limit": "5/s"}


def test_a_bad_value_names_its_own_line_and_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        operations:
          search:
            timeout: 1
          payments:
            base_delay: 0.5
            max_retries: -1
        """,
    )
    with pytest.raises(ConfigError) as caught:
        CoordinationConfig.from_file(path)
    source = f"{path}, line 6 (operations.payments)"
    assert str(caught.value) == f"invalid max_retries = -1 from {source}: must be at least 0"
    assert (caught.value.field, caught.value.value, caught.value.source) == (
        "max_retries",
        -1,
        source,
    )


def test_an_unknown_option_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "operations:\n  payments:\n    max_retires: 5\n")
    with pytest.raises(ConfigError, match=r"did you mean 'max_retries'\?") as caught:
        CoordinationConfig.from_file(path)
    assert f"'max_retires' in {path}, line 3 (operations.payments)" in str(caught.value)


def test_code_only_options_are_refused_in_a_file_saying_so(tmp_path: Path) -> None:
    path = write(tmp_path, "operations:\n  payments:\n    retry_on: ConnectionError\n")
    with pytest.raises(ConfigError, match=r"options that take code.*are given in code"):
        CoordinationConfig.from_file(path)


def test_a_process_wide_setting_is_no_per_operation_option(tmp_path: Path) -> None:
    path = write(tmp_path, "operations:\n  payments:\n    redis_url: redis://x\n")
    with pytest.raises(ConfigError, match=r"line 3 \(operations.payments\) is no per-call"):
        CoordinationConfig.from_file(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("operations: 5\n", "expected a mapping of operation names to their options"),
        ("operations: [a, b]\n", "expected a mapping of operation names"),
        ("operations:\n  payments: 3\n", "expected a mapping of per-call options"),
        ("operations:\n  1: {max_retries: 1}\n", "an operation name is a non-empty string"),
        ("operations:\n  '': {max_retries: 1}\n", "an operation name is a non-empty string"),
    ],
)
def test_a_badly_shaped_mapping_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        CoordinationConfig.from_file(write(tmp_path, text))
    assert str(path_of(tmp_path)) in str(caught.value)
    assert "Traceback" not in str(caught.value)


def path_of(tmp_path: Path) -> Path:
    return tmp_path / "coordination.yaml"


def test_an_empty_entry_and_an_empty_mapping_are_no_options(tmp_path: Path) -> None:
    config = CoordinationConfig.from_file(write(tmp_path, "operations:\n  payments:\n"))
    assert dict(config.operations) == {"payments": {}}
    assert CoordinationConfig.from_file(write(tmp_path, "operations:\n")).operations == {}


def test_merge_keys_share_options_between_entries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        operations:
          payments: &strict
            max_retries: 1
            timeout: 2
          refunds:
            <<: *strict
            timeout: 3
        """,
    )
    config = CoordinationConfig.from_file(path)
    assert dict(config.operations["refunds"]) == {"max_retries": 1, "timeout": 3.0}
    _, options = describe_layers(path, environ={})
    sources = {(op, key): source for op, key, _, source in options}
    assert sources["refunds", "timeout"] == f"{path}, line 7"
    assert sources["refunds", "max_retries"] == f"{path}, line 3"  # where it is written


def test_an_old_spelling_inside_an_entry_warns_and_is_renamed(tmp_path: Path) -> None:
    path = write(tmp_path, "operations:\n  payments:\n    operation_timeout: 4\n")
    with pytest.warns(DeprecationWarning, match=r"line 3 \(operations.payments\)\).*'timeout'"):
        config = CoordinationConfig.from_file(path)
    assert dict(config.operations["payments"]) == {"timeout": 4.0}


# --- from the environment -------------------------------------------------------------


def test_the_environment_gives_the_mapping_as_json() -> None:
    environ = {"COORDINATION_OPERATIONS": '{"payments": {"max_retries": 5, "jitter": "none"}}'}
    config = CoordinationConfig.from_environment(environ)
    assert dict(config.operations["payments"]) == {"max_retries": 5, "jitter": "none"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"payments": {"max_retries": 5}', "expected JSON: Expecting ',' delimiter"),
        ('"payments"', "expected a mapping of operation names"),
        ('{"payments": {"max_retries": -1}}', "must be at least 0"),
        ('{"payments": {"fallback": 1}}', "unknown option 'fallback'"),
        ("[" * 100_000, "expected JSON"),
    ],
)
def test_bad_json_in_the_environment_is_a_clear_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        CoordinationConfig.from_environment({"COORDINATION_OPERATIONS": text})
    assert "environment variable COORDINATION_OPERATIONS" in str(caught.value)
    assert len(str(caught.value)) < 600  # a huge value is quoted short


# --- layers: defaults < file < environment < code, option by option ---------------------


def test_layers_merge_option_by_option(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        operations:
          payments:
            max_retries: 5
            timeout: 2
          search:
            timeout: 1
        """,
    )
    environ = {
        "COORDINATION_CONFIG_FILE": str(path),
        "COORDINATION_OPERATIONS": '{"payments": {"timeout": 9}}',
    }
    config = CoordinationConfig.load(
        environ=environ, operations={"payments": {"jitter": "none"}, "new": {"max_retries": 0}}
    )
    assert {name: dict(options) for name, options in config.operations.items()} == {
        "payments": {"max_retries": 5, "timeout": 9.0, "jitter": "none"},
        "search": {"timeout": 1.0},
        "new": {"max_retries": 0},
    }
    rows = {name: source for name, _, source in describe_config(environ=environ)}
    assert rows["operations.payments.max_retries"] == f"{path}, line 3"
    assert rows["operations.payments.timeout"] == "environment variable COORDINATION_OPERATIONS"
    assert rows["operations.search.timeout"] == f"{path}, line 6"
    assert "operations" not in rows  # shown option by option instead


def test_a_component_config_mapping_layers_its_entries_the_same_way(tmp_path: Path) -> None:
    from coordination._config import resolve_config

    path = write(tmp_path, "operations:\n  payments:\n    max_retries: 5\n    timeout: 2\n")
    config = resolve_config(
        {"operations": {"payments": {"timeout": 3}}},
        environ={"COORDINATION_CONFIG_FILE": str(path)},
    )
    assert dict(config.operations["payments"]) == {"max_retries": 5, "timeout": 3.0}


def test_without_entries_the_table_shows_the_empty_default() -> None:
    rows = {name: (value, source) for name, value, source in describe_config(environ={})}
    assert rows["operations"] == ({}, "default")


# --- from code -------------------------------------------------------------------------


def test_code_may_give_options_that_take_code() -> None:
    def cached(details: Any) -> str:
        return "cached"

    config = CoordinationConfig(
        operations={
            "payments": {
                "retry_on": (ConnectionError,),
                "fallback": cached,
                "rate_limit": Rate(3, 1.0),  # a code form the schema does not read
                "max_retries": 1,
            }
        }
    )
    entry = config.operations["payments"]
    assert entry["fallback"] is cached
    assert entry["rate_limit"] == Rate(3, 1.0)
    assert entry["retry_on"] == (ConnectionError,)


def test_code_values_of_a_settings_own_type_are_checked_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        CoordinationConfig(operations={"payments": {"window_size": 0}})
    assert str(caught.value) == (
        "invalid window_size = 0 from keyword argument (operations.payments): must be at least 1"
    )


def test_the_mapping_is_read_only_and_round_trips() -> None:
    config = CoordinationConfig(operations={"payments": {"max_retries": 5}})
    with pytest.raises(TypeError):
        config.operations["payments"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        config.operations["payments"]["max_retries"] = 1  # type: ignore[index]
    assert json.loads(json.dumps(config.to_dict()))["operations"] == {
        "payments": {"max_retries": 5}
    }
    assert CoordinationConfig.from_mapping(config.to_dict()) == config
    assert config.replace(max_retries=1).operations == config.operations
    assert "operations={'payments': {'max_retries': 5}}" in repr(config)
    hash(config)  # the mapping is left out of the hash, so a config stays hashable


def test_secrets_inside_entries_are_masked_where_shown() -> None:
    secret = "redis://admin:hunter2@cache:6379/0"
    overrides = {"operations": {"x": {"fallback": secret}}}
    _, options = describe_layers(environ={}, overrides=overrides)
    assert options == [("x", "fallback", "redis://admin:***@cache:6379/0", "keyword argument")]
    assert "hunter2" not in repr(CoordinationConfig(**overrides))  # type: ignore[arg-type]


# --- every per-call setting, generically ----------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-5, max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.sampled_from(["count", "time", "full", "high", "5/s", "0/s", "1.5", "none"]),
)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except ConfigError as exc:  # the message, without the entry its source names
        return "refused", str(exc).replace(" (operations.op)", "")


@given(st.sampled_from(PER_CALL), VALUES)
def test_an_entry_accepts_and_refuses_what_a_call_does_in_the_same_words(
    setting: Setting, value: Any
) -> None:
    """Any per-call setting of the schema (those added later too) is an option here."""
    per_call = outcome(lambda: resolve_options(CoordinationConfig(), {setting.name: value}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        entry = outcome(
            lambda: CoordinationConfig(operations={"op": {setting.name: value}}).operations["op"]
        )
    assert entry[0] == per_call[0], (entry, per_call)
    if entry[0] == "refused":
        assert entry[1] == per_call[1]
    else:
        by_entry = resolve_options(CoordinationConfig(), entry[1])
        # (repr too: an option some part builds anew per plan may compare by identity)
        assert by_entry == per_call[1] or repr(by_entry) == repr(per_call[1])


@given(st.sampled_from(PER_CALL), VALUES)
def test_the_file_and_the_environment_check_each_option_like_code(
    setting: Setting, value: Any
) -> None:
    data = {"op": {setting.name: value}}
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:  # NaN and infinities have no JSON
        return
    by_code = outcome(lambda: CoordinationConfig(operations=data).operations)
    by_env = outcome(
        lambda: CoordinationConfig.from_environment({"COORDINATION_OPERATIONS": text}).operations
    )
    assert by_env[0] == by_code[0]
    if by_code[0] == "ok":
        assert by_env[1] == by_code[1]


LAYER = st.dictionaries(
    st.sampled_from(["payments", "search", "POST /orders"]),
    st.dictionaries(
        st.sampled_from(["max_retries", "window_size", "half_open_calls"]),
        st.integers(min_value=1, max_value=9),
        max_size=3,
    ),
    max_size=3,
)


@given(file=LAYER, env=LAYER, code=LAYER)
def test_each_layer_overrides_only_the_options_it_names(
    file: dict[str, dict[str, int]], env: dict[str, dict[str, int]], code: dict[str, dict[str, int]]
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "coordination.yaml"
        path.write_text(json.dumps({"operations": file}), encoding="utf-8")  # JSON is YAML
        environ = {"COORDINATION_CONFIG_FILE": str(path)}
        if env:
            environ["COORDINATION_OPERATIONS"] = json.dumps(env)
        overrides = {"operations": code} if code else {}
        config = CoordinationConfig.load(environ=environ, **overrides)
        _, options = describe_layers(environ=environ, overrides=overrides)
    model: dict[str, dict[str, int]] = {}
    sources: dict[tuple[str, str], str] = {}
    layers = [(file, "file"), (env, "environment variable"), (code, "keyword argument")]
    for layer, source in layers:
        for operation, entry in layer.items():
            model.setdefault(operation, {}).update(entry)
            for option in entry:
                sources[operation, option] = source
    assert {name: dict(entry) for name, entry in config.operations.items()} == model
    for operation, option, value, source in options:
        assert value == model[operation][option]
        expected = sources[operation, option]
        assert source.startswith(str(path) if expected == "file" else expected), source
