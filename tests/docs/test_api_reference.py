"""docs/api.md is what tools/api_reference.py makes from the docstrings of the public API."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

from tool_modules import load_tool

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api.md"
api_reference = load_tool("api_reference")


def test_the_api_page_is_up_to_date() -> None:
    assert API.read_text(encoding="utf-8") == api_reference.render(), (
        "docs/api.md is out of date: run .venv/bin/python tools/api_reference.py > docs/api.md"
    )


def test_every_public_name_has_an_entry_or_a_link() -> None:
    text = API.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `([^`]+)`$", text, re.MULTILINE))
    linked = set(re.findall(r"\[`([^`]+)`\]\(#", text))
    for module_name in ("coordination", "coordination.error_handling", "coordination.testing"):
        module = importlib.import_module(module_name)
        assert f"## `{module_name}`" in text
        for name in module.__all__:
            assert name in headings or name in linked, f"{module_name}.{name} is missing"


def test_each_object_is_described_once() -> None:
    text = API.read_text(encoding="utf-8")
    headings = re.findall(r"^### `([^`]+)`$", text, re.MULTILINE)
    modules = api_reference.public_modules()
    objects = {id(getattr(module, name)) for module in modules for name in module.__all__}
    assert len(headings) == len(objects)


def test_links_point_at_headings() -> None:
    text = API.read_text(encoding="utf-8")
    slugs = api_reference.Slugs()
    anchors = {slugs(heading) for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"no heading for #{target}"


def test_defaults_are_the_same_on_every_machine() -> None:
    text = API.read_text(encoding="utf-8")
    assert " at 0x" not in text
    assert str(ROOT) not in text
    assert str(Path.home()) not in text


def test_the_stubs_render_values_and_names() -> None:
    render = api_reference.default
    assert render(None) == "None"
    assert render("MEDIUM") == '"MEDIUM"'
    assert render(("a", 1)) == "('a', 1)"
    assert render(len) == "len"
    assert render(object()) == "..."
    assert render(lambda: 0) == "..."
    assert render(Path) == "pathlib.Path"  # pathlib._local.Path on 3.13
    assert api_reference.annotation(Path) == "pathlib.Path"
    from coordination.error_handling import ErrorSeverity

    assert render(ErrorSeverity.HIGH) == "ErrorSeverity.HIGH"


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "api_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout
    stale = tmp_path / "api.md"
    stale.write_text(API.read_text(encoding="utf-8").replace("## `coordination`", "## x"))
    assert not api_reference.is_current(stale)
    assert not api_reference.is_current(tmp_path / "missing.md")
