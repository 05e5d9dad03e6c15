"""docs/configuration.md lists exactly the fields of CoordinationConfig."""

from __future__ import annotations

from pathlib import Path

from tool_modules import load_tool

ROOT = Path(__file__).resolve().parent.parent


def test_reference_table_matches_the_dataclass() -> None:
    module = load_tool("config_reference")
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert module.render(text) == text, (
        "docs/configuration.md is out of date: run .venv/bin/python tools/config_reference.py"
    )
