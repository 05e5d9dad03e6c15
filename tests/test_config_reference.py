"""docs/configuration.md lists exactly the fields of CoordinationConfig."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reference_table_matches_the_dataclass() -> None:
    spec = importlib.util.spec_from_file_location(
        "config_reference", ROOT / "tools" / "config_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert module.render(text) == text, (
        "docs/configuration.md is out of date: run .venv/bin/python tools/config_reference.py"
    )
