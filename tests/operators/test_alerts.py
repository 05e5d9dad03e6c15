"""``coordination alerts``: a rule file promtool accepts, whose alerts fire when they should.

``promtool check rules`` checks the file; ``promtool test rules`` runs the alerts over
series written in its notation (a breaker open for 5 minutes fires; a short blip does
not; a breaker flapping between OPEN and HALF_OPEN never closed, so it fires too), with
the annotations as an operator reads them. Hypothesis feeds the options anything: the
answer is a valid file or a ConfigError naming the option, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import ConfigError
from coordination.observability._alerts import (
    ALERT_NAMES,
    AlertOptions,
    alert_rules,
    format_duration,
    parse_duration,
    rules_text,
)
from loopback import require_prometheus

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
BREAKER = {"job": "api", "instance": "a:1", "component": "error_handler", "breaker": "payments"}


def promtool() -> str:
    return require_prometheus()[1]


def check_rules(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "rules.yml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def unit_test(
    folder: Path, tests: list[dict[str, Any]], options: AlertOptions | None = None
) -> str:
    """``promtool test rules`` over the generated file; its output (fails the test on a
    failed case)."""
    (folder / "rules.yml").write_text(rules_text(options), encoding="utf-8")
    spec = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (folder / "tests.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    done = subprocess.run(
        [promtool(), "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def attempt(call: Callable[[], T]) -> tuple[T, None] | tuple[None, ConfigError]:
    """The call's value, or the ConfigError it raised (anything else propagates)."""
    try:
        return call(), None
    except ConfigError as exc:
        return None, exc


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inside = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{inside}}}", "values": values}


def breaker_alert(open_for: str = "5m", state: int = 2) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "critical", **BREAKER},
        "exp_annotations": {
            "summary": f"Breaker payments has not closed for {open_for}",
            "description": "The circuit breaker payments of a:1 has been open or half-open "
            f"(state {state}: 1 HALF_OPEN, 2 OPEN) for {open_for}: its calls fail at once.",
            "runbook_url": "docs/troubleshooting.md#coordinationcircuitbreakeropen",
        },
    }


def no_alert(at: str, name: str = "CoordinationCircuitBreakerOpen") -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def test_the_rule_file_passes_promtool_check_rules(tmp_path: Path) -> None:
    done = check_rules(rules_text(), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in done.stdout
    (group,) = yaml.safe_load(rules_text())["groups"]
    assert [rule["alert"] for rule in group["rules"]] == list(ALERT_NAMES)


def test_a_breaker_open_for_five_minutes_fires_and_a_blip_does_not(tmp_path: Path) -> None:
    blip = {**BREAKER, "breaker": "blip"}
    tests = [
        {
            "interval": "1m",
            "input_series": [
                series("coordination_circuit_breaker_state", BREAKER, "2x10"),
                # Open for two minutes, closed again: never 5 minutes in a row.
                series("coordination_circuit_breaker_state", blip, "0 0 2 2 0 0 0 0 0 0 0"),
            ],
            "alert_rule_test": [
                no_alert("4m"),  # pending, not firing: 4 minutes is not 5
                {
                    "eval_time": "6m",
                    "alertname": "CoordinationCircuitBreakerOpen",
                    "exp_alerts": [breaker_alert()],
                },
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                series("coordination_circuit_breaker_state", blip, "0 0 2 2 0 0 0 0 0 0 0")
            ],
            "alert_rule_test": [no_alert("3m"), no_alert("6m"), no_alert("10m")],
        },
    ]
    unit_test(tmp_path, tests)


def test_a_breaker_flapping_between_open_and_half_open_never_closed_so_it_fires(
    tmp_path: Path,
) -> None:
    # Each probe fails: OPEN, HALF_OPEN for a moment, OPEN again. It never closed.
    flapping = "2 1 2 1 2 1 2 1 2 1 2"
    tests = [
        {
            "interval": "1m",
            "input_series": [series("coordination_circuit_breaker_state", BREAKER, flapping)],
            "alert_rule_test": [
                {
                    "eval_time": "6m",
                    "alertname": "CoordinationCircuitBreakerOpen",
                    "exp_alerts": [breaker_alert()],
                },
                {
                    "eval_time": "7m",
                    "alertname": "CoordinationCircuitBreakerOpen",
                    "exp_alerts": [breaker_alert(state=1)],
                },
            ],
        }
    ]
    unit_test(tmp_path, tests)


def test_breaker_open_for_sets_how_long_it_may_stay_open(tmp_path: Path) -> None:
    tests = [
        {
            "interval": "1m",
            "input_series": [series("coordination_circuit_breaker_state", BREAKER, "2x20")],
            "alert_rule_test": [
                no_alert("9m"),
                {
                    "eval_time": "11m",
                    "alertname": "CoordinationCircuitBreakerOpen",
                    "exp_alerts": [breaker_alert("10m")],
                },
            ],
        }
    ]
    unit_test(tmp_path, tests, AlertOptions(breaker_open_for="10m"))


def test_a_retry_storm_a_redis_outage_and_growing_dead_letters_fire(tmp_path: Path) -> None:
    op = {"job": "api", "instance": "a:1", "component": "error_handler", "operation": "pay"}
    fleet = {"job": "api", "component": "error_handler", "operation": "pay"}
    redis = {"job": "api", "instance": "a:1", "component": "breaker"}
    store = {"job": "api", "instance": "a:1", "component": "events"}
    store |= {"store": "sqlite", "namespace": "orders"}
    tests = [
        {
            "interval": "1m",
            "input_series": [
                # 60 calls a minute, each retried twice: 2 retries per call, above 0.5.
                series("coordination_operations_total", {**op, "outcome": "success"}, "0+60x20"),
                series("coordination_operations_total", {**op, "outcome": "failure"}, "0+0x20"),
                series("coordination_retries_total", op, "0+120x20"),
                series("coordination_redis_errors_total", redis, "0+30x20"),
                series("coordination_dead_letters", store, "0+2x20"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "15m",
                    "alertname": "CoordinationRetryStorm",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", **fleet},
                            "exp_annotations": {
                                "summary": "Retry storm on pay: 2 retries per call",
                                "description": "pay (api) made more than 0.5 retries per "
                                "call over the last 5m: the dependency is sent more calls "
                                "while it is failing.",
                                "runbook_url": "docs/troubleshooting.md#coordinationretrystorm",
                            },
                        }
                    ],
                },
                # No call failed: the error ratio stays quiet.
                no_alert("15m", "CoordinationErrorRatioHigh"),
                {
                    "eval_time": "15m",
                    "alertname": "CoordinationRedisOutage",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", **redis},
                            "exp_annotations": {
                                "summary": "Redis commands fail on a:1 (breaker)",
                                "description": "Redis commands of the breaker components of "
                                "a:1 have failed for 2m: breakers and limits run on their "
                                "outage_policy (each process on its own) meanwhile.",
                                "runbook_url": "docs/troubleshooting.md#coordinationredisoutage",
                            },
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "CoordinationDeadLettersGrowing",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "job": "api",
                                "component": "events",
                                "store": "sqlite",
                                "namespace": "orders",
                            },
                            "exp_annotations": {
                                "summary": "Dead letters of sqlite/orders are growing",
                                "description": "30 more dead letters in the last 15m (api, "
                                "component events): events keep failing their handler or "
                                "their rules.",
                                "runbook_url": "docs/troubleshooting.md"
                                "#coordinationdeadlettersgrowing",
                            },
                        }
                    ],
                },
            ],
        }
    ]
    unit_test(tmp_path, tests)


def test_every_runbook_is_a_section_of_troubleshooting() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    headings = {line[4:].strip() for line in text.splitlines() if line.startswith("### ")}
    (group,) = alert_rules()["groups"]
    for rule in group["rules"]:
        assert rule["alert"] in headings, f"no '### {rule['alert']}' in troubleshooting.md"
        assert rule["annotations"]["runbook_url"] == (
            f"docs/troubleshooting.md#{rule['alert'].lower()}"
        )


@given(st.integers(1, 7 * 86400))
def test_a_duration_reads_back_as_written(seconds: int) -> None:
    assert parse_duration(format_duration(seconds), field="window") == seconds


@given(st.text(max_size=20) | st.from_regex(r"\A[0-9]{1,6}[ywdhms]{1,2}\Z"))
def test_any_duration_text_is_seconds_in_range_or_a_config_error(text: str) -> None:
    seconds, refused = attempt(lambda: parse_duration(text, field="breaker_open_for"))
    if refused is not None:
        assert refused.field == "breaker_open_for"
        assert str(refused).startswith("--breaker-open-for: ")
        assert "\n" not in str(refused)
    else:
        assert 1 <= seconds <= 7 * 86400


_durations = st.sampled_from(["5m", "1h30m", "90s", "7d", "0s", "8d", "5", "-1m", "1.5m", "5m "])
_ratios = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 200), st.booleans()
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "breaker_open_for": _durations,
            "window": _durations,
            "error_ratio": _ratios,
            "retry_ratio": _ratios,
            "runbook_url": st.text(max_size=30),
        },
    )
)
def test_any_options_make_a_file_promtool_accepts_or_a_config_error(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    text, refused = attempt(lambda: rules_text(AlertOptions(**options)))
    if refused is not None:
        assert refused.field in options, (refused.field, options)
        assert str(refused).startswith(f"--{str(refused.field).replace('_', '-')}: ")
        return
    done = check_rules(text, tmp_path)
    assert done.returncode == 0, (options, done.stdout + done.stderr)


def coordination(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordination", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["alerts", "--breaker-open-for", "five minutes"],
            "--breaker-open-for: expected a duration",
        ),
        (["alerts", "--error-ratio", "1.5"], "--error-ratio: must be a number above 0"),
        (["alerts", "--error-ratio", "lots"], "argument --error-ratio: invalid float value"),
        (["alerts", "--runbook-url", "a b"], "--runbook-url: expected the address"),
        (["alerts", "--output", "/nonexistent/dir/rules.yml"], "--output: cannot write"),
        (["alerts", "--prometheus-config", "p.yml"], "--prometheus-config: needs --output"),
        (
            ["alerts", "-o", "r.yml", "--prometheus-config", "p.yml", "--scrape", "a b:80"],
            "--scrape: expected host:port",
        ),
        (
            ["alerts", "-o", "r.yml", "--prometheus-config", "p.yml", "--scrape", "h:99999"],
            "--scrape: expected host:port",
        ),
        (["dashboard", "--uid", "../../etc"], "--uid: must be 1 to 40 letters"),
        (["dashboard", "--output", "/nonexistent/dir/d.json"], "--output: cannot write"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = coordination(*args)
    assert done.returncode == 2, done
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "r.yml").exists()  # nothing half-written


def test_the_command_prints_the_file_and_writes_it(tmp_path: Path) -> None:
    printed = coordination("alerts", "--breaker-open-for", "10m", "--runbook-url", "https://d/t.md")
    assert printed.returncode == 0, printed.stderr
    rules = yaml.safe_load(printed.stdout)["groups"][0]["rules"]
    assert rules[0]["for"] == "10m"
    assert rules[0]["annotations"]["runbook_url"] == "https://d/t.md#coordinationcircuitbreakeropen"
    path = tmp_path / "rules.yml"
    assert coordination("alerts", "-o", str(path)).returncode == 0
    assert path.read_text(encoding="utf-8") == rules_text()


def test_the_prometheus_config_loads_the_rules_and_passes_promtool(tmp_path: Path) -> None:
    rules, config = tmp_path / "rules.yml", tmp_path / "prometheus.yml"
    done = coordination(
        *("alerts", "-o", str(rules), "--prometheus-config", str(config)),
        *("--scrape", "127.0.0.1:8000", "--scrape", "[::1]:9000", "--scrape-interval", "30s"),
    )
    assert done.returncode == 0, done.stderr
    loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert loaded["rule_files"] == [str(rules)]
    assert loaded["global"]["scrape_interval"] == "30s"
    (job,) = loaded["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000", "[::1]:9000"]}]
    checked = subprocess.run(
        [promtool(), "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in checked.stdout
