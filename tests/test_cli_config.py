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
