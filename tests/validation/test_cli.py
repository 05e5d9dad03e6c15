"""`coordination validate` and `coordination rules check`: exit 0 valid, 1 invalid, 2 errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coordination._cli import main

GOOD = '{"user_id": "1", "action": "login", "timestamp": "2024-01-01T12:00:00Z"}'
BAD = (
    '{"user_id": "", "action": "jump", "timestamp": "2024-01-01T12:00:00Z", "password": "s3cr3t!"}'
)


@pytest.fixture
def documents(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "good": tmp_path / "good.json",
        "bad": tmp_path / "bad.json",
        "yaml": tmp_path / "event.yaml",
        "broken": tmp_path / "broken.json",
    }
    paths["good"].write_text(GOOD)
    paths["bad"].write_text(BAD)
    # unquoted YAML timestamps stay strings, as they would be in JSON
    paths["yaml"].write_text("user_id: '1'\naction: logout\ntimestamp: 2024-01-01T12:00:00Z\n")
    paths["broken"].write_text("{not: [json, or yaml")
    return paths


def test_valid_file(
    rules_dir: Path, documents: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["validate", "--rules", str(rules_dir), "--rule-set", "user_event", str(documents["good"])]
    )
    assert status == 0
    assert "valid:" in capsys.readouterr().out


def test_yaml_input(rules_dir: Path, documents: dict[str, Path]) -> None:
    assert (
        main(
            [
                "validate",
                "--rules",
                str(rules_dir),
                "--rule-set",
                "user_event",
                str(documents["yaml"]),
            ]
        )
        == 0
    )


def test_invalid_file_prints_a_table(
    rules_dir: Path, documents: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["validate", "--rules", str(rules_dir), "--rule-set", "user_event", str(documents["bad"])]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "invalid:" in out
    assert "(2 errors)" in out
    assert "min_length  /user_id" in out
    assert "allowed     /action" in out
    assert "s3cr3t!" not in out


def test_invalid_file_as_json(
    rules_dir: Path, documents: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["validate", "--rules", str(rules_dir), "--rule-set", "user_event", "--format", "json"]
    assert main([*argv, str(documents["bad"])]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["is_valid"] is False
    assert [e["pointer"] for e in document["errors"]] == ["/user_id", "/action"]


@pytest.mark.parametrize(
    ("rule_set", "document", "words"),
    [
        ("nope", "good", "unknown rule set 'nope'"),
        ("user_event", "missing", "cannot read"),
        ("user_event", "broken", "neither JSON nor YAML"),
    ],
)
def test_usage_errors_exit_2(
    rules_dir: Path,
    documents: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    rule_set: str,
    document: str,
    words: str,
) -> None:
    path = documents.get(document, rules_dir / "missing.json")
    assert main(["validate", "--rules", str(rules_dir), "--rule-set", rule_set, str(path)]) == 2
    assert words in capsys.readouterr().err


def test_missing_rules_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--rules", str(tmp_path / "none"), "--rule-set", "x", "-"]) == 2
    assert "no rule files" in capsys.readouterr().err


def test_bad_rule_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.yaml").write_text("name: r\nfields: {a: {min_lenght: 1}}\n")
    assert main(["validate", "--rules", str(tmp_path), "--rule-set", "r", "-"]) == 2
    assert "did you mean 'min_length'" in capsys.readouterr().err


def test_stdin_through_a_real_process(rules_dir: Path) -> None:
    command = [sys.executable, "-m", "coordination", "validate", "--rules", str(rules_dir)]
    command += ["--rule-set", "user_event", "--format", "json", "-"]
    good = subprocess.run(
        command, input=GOOD, capture_output=True, text=True, timeout=60, check=False
    )
    bad = subprocess.run(
        command, input=BAD, capture_output=True, text=True, timeout=60, check=False
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["is_valid"] is True
    assert bad.returncode == 1, bad.stderr
    assert len(json.loads(bad.stdout)["errors"]) == 2


def test_rules_check(tmp_path: Path, rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(rules_dir)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out
    assert "user_event" in out

    (rules_dir / "typo.yaml").write_text(
        "name: typo\nfields:\n  a: {type: string, min_lenght: 1}\n"
    )
    (rules_dir / "copy.yaml").write_text("name: user_event\n")
    assert main(["rules", "check", str(rules_dir), "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    by_file = {Path(f["file"]).name: f for f in report["files"]}
    assert "min_lenght" in by_file["typo.yaml"]["error"]
    assert "typo.yaml, line 3" in by_file["typo.yaml"]["error"]
    assert "already defined" in (
        by_file["user_event.yaml"]["error"] or by_file["copy.yaml"]["error"]
    )
    assert by_file["copy.yaml"]["rule_sets"] == ["user_event"]

    assert main(["rules", "check", str(tmp_path / "absent")]) == 2
