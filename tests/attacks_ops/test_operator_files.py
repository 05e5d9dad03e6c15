"""``coordination dashboard`` / ``coordination alerts`` run by a careless operator: the
files are whole or untouched, two outputs never one file, and a runbook link is a web one.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def coordination(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordination", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def refused(done: subprocess.CompletedProcess[str], needle: str) -> None:
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert needle in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_one_file_for_both_outputs_is_refused(tmp_path: Path) -> None:
    # was exit 0: the Prometheus configuration overwrote the rule file it loads
    rules = tmp_path / "rules.yml"
    done = coordination("alerts", "-o", str(rules), "--prometheus-config", str(rules))
    refused(done, "--prometheus-config:")
    assert not rules.exists()
    link = tmp_path / "link.yml"
    link.symlink_to(rules)
    refused(coordination("alerts", "-o", str(rules), "--prometheus-config", str(link)), "also")


def test_an_unwritable_configuration_leaves_the_rule_file_untouched(tmp_path: Path) -> None:
    # was: the rule file written, then exit 2 for the configuration (half the job done)
    rules = tmp_path / "rules.yml"
    rules.write_text("# the operator's rules\n")
    done = coordination(
        "alerts", "-o", str(rules), "--prometheus-config", str(tmp_path / "no" / "p.yml")
    )
    refused(done, "--prometheus-config: cannot write")
    assert rules.read_text() == "# the operator's rules\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rules.yml"]  # no temporary left


def test_a_file_replaced_keeps_its_permissions_and_is_whole(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("old\n")
    rules.chmod(0o644)
    config = tmp_path / "prometheus.yml"
    done = coordination("alerts", "-o", str(rules), "--prometheus-config", str(config))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(rules.stat().st_mode) == 0o644
    assert yaml.safe_load(rules.read_text())["groups"]
    assert yaml.safe_load(config.read_text())["rule_files"] == [os.path.abspath(rules)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prometheus.yml", "rules.yml"]
    dashboard = tmp_path / "d.json"
    assert coordination("dashboard", "-o", str(dashboard)).returncode == 0
    assert json.loads(dashboard.read_text())["panels"]


def test_a_device_is_written_in_place_not_replaced() -> None:
    done = coordination("dashboard", "-o", "/dev/stdout")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["panels"]
    assert Path("/dev/null").exists()
    assert coordination("alerts", "-o", "/dev/null").returncode == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(document.cookie)", "data:text/html,<script>x</script>", "JaVaScRiPt:x"],
)
def test_a_runbook_link_that_would_run_in_the_browser_is_refused(url: str) -> None:
    # Alertmanager and Grafana show runbook_url as a link: was accepted as it was
    refused(coordination("alerts", "--runbook-url", url), "--runbook-url: expected the address")


@pytest.mark.parametrize("url", ["https://docs.example/t.md", "HTTP://d/t", "docs/t.md", "/t.md"])
def test_web_and_relative_runbook_links_are_kept(url: str) -> None:
    done = coordination("alerts", "--runbook-url", url)
    assert done.returncode == 0, done.stderr
    rule = yaml.safe_load(done.stdout)["groups"][0]["rules"][0]
    assert rule["annotations"]["runbook_url"].startswith(url + "#")
