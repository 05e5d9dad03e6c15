"""Issue 16's settings given wrong by a careless user, from every source: a ``ConfigError``
naming the setting and where it came from, never a traceback from deep inside a call."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from coordination import ConfigError
from coordination._config import MAX_CONFIG_BYTES, CoordinationConfig
from coordination._settings import MAX_SECONDS, SETTINGS, read_hedge_after
from coordination.error_handling import CoordinationErrorHandler

pytestmark = pytest.mark.usefixtures("clean_environment")

# Every duration setting: a float with a minimum of 0 (the schema's _seconds).
DURATIONS = sorted(
    s.name for s in SETTINGS.values() if s.kind is float and s.maximum == MAX_SECONDS
)
TOO_LONG = st.floats(min_value=MAX_SECONDS, exclude_min=True, allow_infinity=False)


def test_every_duration_has_the_one_bound() -> None:
    assert {"timeout", "bulkhead_wait", "retry_budget_window", "config_watch_interval"} <= set(
        DURATIONS
    )


@given(st.sampled_from(DURATIONS), TOO_LONG)
def test_a_duration_past_the_bound_is_refused_by_code_env_and_operations(
    name: str, seconds: float
) -> None:
    # 1e300 reached threading's waits as an OverflowError from inside a call
    with pytest.raises(
        ConfigError, match=rf"invalid {name} = .* from keyword argument: must be at most"
    ):
        CoordinationConfig(**{name: seconds})
    variable = SETTINGS[name].env
    with pytest.raises(
        ConfigError, match=rf"invalid {name} = .* from environment variable {variable}"
    ):
        CoordinationConfig.from_environment({variable: repr(seconds)})
    if SETTINGS[name].per_call:
        with pytest.raises(ConfigError, match=rf"invalid {name} = .*operations\.op"):
            CoordinationConfig(operations={"op": {name: seconds}})


@given(TOO_LONG)
def test_hedge_after_past_the_bound_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match=r"at most"):
        read_hedge_after(repr(seconds))
    with pytest.raises(ConfigError, match=r"invalid hedge_after = .* from keyword argument"):
        CoordinationErrorHandler().decorate(lambda: 1, hedge_after=seconds)


@pytest.mark.parametrize("text", ["p100", "P100", "p0", "p100.5", "p999"])
def test_a_percentile_out_of_range_says_so(text: str) -> None:
    with pytest.raises(ConfigError, match="above p0 and below p100"):
        CoordinationConfig(hedge_after=text)


@given(
    st.one_of(
        st.text(max_size=12),
        st.floats(),
        st.integers(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_hedge_after_anything_is_a_value_or_a_config_error_naming_it(value: Any) -> None:
    try:
        config = CoordinationConfig(hedge_after=value)
    except ConfigError as exc:
        refused = str(exc)
    else:
        refused = ""
    if refused:
        assert "hedge_after" in refused
        return
    after = config.hedge_after
    assert after is None or isinstance(read_hedge_after(after), float | str)
    if isinstance(value, float):
        assert math.isfinite(value)
        assert 0 < value <= MAX_SECONDS


# --- min_concurrency above max_concurrency, in each source -------------------------------


def test_min_above_max_in_a_file_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_text("adaptive_concurrency: true\nmin_concurrency: 9\nmax_concurrency: 3\n")
    for load in (CoordinationConfig.load, CoordinationConfig.from_file):
        with pytest.raises(
            ConfigError,
            match=rf"invalid min_concurrency = 9 from {path}, line 2: above max_concurrency "
            rf"= 3 \(from {path}, line 3\)",
        ):
            load(path)


def test_min_above_max_in_the_environment_names_the_variables() -> None:
    env = {
        "COORDINATION_APP_ADAPTIVE_CONCURRENCY": "true",
        "COORDINATION_MIN_CONCURRENCY": "9",
        "COORDINATION_MAX_CONCURRENCY": "3",
    }
    with pytest.raises(
        ConfigError,
        match="from environment variable COORDINATION_MIN_CONCURRENCY: above max_concurrency "
        r"= 3 \(from environment variable COORDINATION_MAX_CONCURRENCY\)",
    ):
        CoordinationConfig.from_environment(env)


def test_min_above_max_in_code_and_in_an_operations_entry() -> None:
    handler = CoordinationErrorHandler({"max_concurrency": 3})
    with pytest.raises(
        ConfigError,
        match=r"min_concurrency = 9 from keyword argument: above max_concurrency = 3 "
        r"\(from the configuration\)",
    ):
        handler.decorate(lambda: 1, adaptive_concurrency=True, min_concurrency=9)
    entry = {"adaptive_concurrency": True, "min_concurrency": 9, "max_concurrency": 3}
    with pytest.raises(
        ConfigError, match=r"min_concurrency = 9 from the configuration's operations"
    ):
        CoordinationErrorHandler({"operations": {"orders": entry}})


def test_min_above_max_is_no_error_while_no_adaptive_limit_is_on() -> None:
    config = CoordinationConfig(min_concurrency=9, max_concurrency=3)
    assert CoordinationErrorHandler(config).decorate(lambda: 1)() == 1


# --- the configuration file itself ---------------------------------------------------------


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_bytes(b"max_retries: 1\n" + b"#" * MAX_CONFIG_BYTES)
    began = time.monotonic()
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        CoordinationConfig.load(path)
    assert time.monotonic() - began < 5  # a 50 MB file took PyYAML ~30 s


def test_a_file_under_the_bound_is_read(tmp_path: Path) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_bytes(b"max_retries: 1\n")
    assert CoordinationConfig.load(path).max_retries == 1


# --- anything at all, from every source ----------------------------------------------------

ISSUE_16 = [
    "retry_budget",
    "retry_budget_window",
    "retry_budget_min_per_second",
    "hedge_after",
    "max_hedged_attempts",
    "adaptive_concurrency",
    "concurrency_algorithm",
    "min_concurrency",
    "max_concurrency",
    "concurrency_group",
    "app_adaptive_concurrency",
    "config_watch_interval",
    "reload_on_sighup",
]
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["P95", "0", "1e400", "p100", "-1", "nan", "inf", "p99.9", "Vegas", "x" * 200]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def refused_cleanly(name: str, make: Any) -> None:
    """``make()`` works or raises a ConfigError naming ``name``; nothing else escapes."""
    message = ""
    try:
        make()
    except ConfigError as exc:
        message = str(exc)
    assert not message or name in message, message


@given(st.sampled_from(ISSUE_16), HOSTILE)
def test_any_value_of_issue_16s_settings_is_accepted_or_refused_by_name(
    name: str, value: Any
) -> None:
    refused_cleanly(name, lambda: CoordinationConfig(**{name: value}))
    refused_cleanly(name, lambda: CoordinationConfig.from_mapping({name: value}))
    text = value if isinstance(value, str) else json.dumps(value)
    refused_cleanly(name, lambda: CoordinationConfig.from_environment({SETTINGS[name].env: text}))
    try:
        document = yaml.safe_dump({name: value})
    except yaml.YAMLError:
        document = None
    if document is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "coordination.yaml"
            path.write_text(document)
            refused_cleanly(name, lambda: CoordinationConfig.from_file(path))
    if SETTINGS[name].per_call:
        refused_cleanly(name, lambda: CoordinationConfig(operations={"op": {name: value}}))
        refused_cleanly(
            name, lambda: CoordinationErrorHandler().decorate(lambda: 1, **{name: value})
        )
