"""The `coordination` command's own parts (capabilities test their subcommands)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coordination._cli import main

pytestmark = pytest.mark.usefixtures("clean_environment")


def test_config_shows_values_and_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("max_retries: 5\n", encoding="utf-8")
    monkeypatch.setenv("COORDINATION_BASE_DELAY", "0.5")
    assert main(["config", "--file", str(path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["max_retries"] == {"value": 5, "source": f"{path}, line 1"}
    assert shown["base_delay"]["source"] == "environment variable COORDINATION_BASE_DELAY"


def test_bad_config_is_a_clean_error_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("max_retires: 5\n", encoding="utf-8")
    assert main(["config", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'max_retries'" in err
    assert "Traceback" not in err


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coordination", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("coordination ")


def test_config_shows_each_operation_option_with_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "operations:\n  payments:\n    max_retries: 5\n    timeout: 2\n", encoding="utf-8"
    )
    monkeypatch.setenv("COORDINATION_OPERATIONS", '{"payments": {"timeout": 3}}')
    assert main(["config", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    table, _, below = out.partition("\noperations (")
    assert "<1 operation(s), below>" in table
    lines = [line.split() for line in below.splitlines()[1:] if line.strip()]
    assert ["payments", "max_retries", "5", str(path) + ",", "line", "3"] in lines
    assert lines[1][:5] == ["payments", "timeout", "3.0", "environment", "variable"]

    assert main(["config", "--file", str(path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["operations"]["value"]
    assert shown == {
        "payments": {
            "max_retries": {"value": 5, "source": f"{path}, line 3"},
            "timeout": {"value": 3.0, "source": "environment variable COORDINATION_OPERATIONS"},
        }
    }


def test_config_without_operations_shows_the_empty_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["operations"] == {"value": {}, "source": "default"}


def test_config_lists_the_deprecated_variables_that_are_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORDINATION_OPERATION_TIMEOUT", "4")
    monkeypatch.setenv("COORDINATION_CIRCUIT_BREAKER_HALF_OPEN_CALLS", "2")
    monkeypatch.setenv("COORDINATION_HALF_OPEN_CALLS", "3")
    assert main(["config"]) == 0
    captured = capsys.readouterr()
    section = captured.out.partition("deprecated environment variables")[2]
    assert "COORDINATION_OPERATION_TIMEOUT  use COORDINATION_TIMEOUT  (read)" in section
    assert (
        "COORDINATION_CIRCUIT_BREAKER_HALF_OPEN_CALLS  use COORDINATION_HALF_OPEN_CALLS  "
        "(ignored: COORDINATION_HALF_OPEN_CALLS is set)"
    ) in section
    assert "COORDINATION_OPERATION_TIMEOUT" not in captured.err  # listed, not warned twice
    assert main(["config", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["deprecated_environment_variables"] == [
        {
            "name": "COORDINATION_CIRCUIT_BREAKER_HALF_OPEN_CALLS",
            "use": "COORDINATION_HALF_OPEN_CALLS",
            "read": False,
        },
        {"name": "COORDINATION_OPERATION_TIMEOUT", "use": "COORDINATION_TIMEOUT", "read": True},
    ]


def test_config_warns_of_an_old_spelling_in_the_file_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("operations:\n  payments:\n    operation_timeout: 4\n", encoding="utf-8")
    assert main(["config", "--file", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.count("coordination: warning: 'operation_timeout'") == 1
    assert "line 3 (operations.payments)" in err
