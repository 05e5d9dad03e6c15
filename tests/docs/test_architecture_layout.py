"""docs/architecture.md's layout names every module of the package, so the page a
newcomer reads first stays true when a module is added, moved or split."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "coordination"
# The version string and the package markers say nothing a newcomer needs placed.
UNLISTED = {"__init__", "__main__", "_version"}


def layout_block() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Layout as built", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    assert blocks, "the layout section has no code block"
    return blocks[0]


def listed_modules(block: str) -> set[str]:
    """``folder/module`` for every module named in the layout, by the folder it is under
    (a line that starts a folder, like ``  error_handling/``, opens it)."""
    found: set[str] = set()
    folder = ""
    for line in block.splitlines():
        head = re.match(r"\s*([a-z_]+(?:/[a-z_]+)*)/\s", line + " ")
        if head and not line.strip().startswith("_"):
            name = head.group(1)
            folder = "" if name == "src/coordination" else name
            line = line[head.end() :]  # the rest of the line may name its modules
        for module in re.findall(r"(?<![\w/.])(_[a-z_]+)\.py", line):
            found.add(f"{folder}/{module}" if folder else module)
        if "__init__.py" in line and not folder:
            found.add("__init__")
    return found


def package_modules() -> set[str]:
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        if path.stem in UNLISTED:
            continue
        folder = path.parent.relative_to(PACKAGE).as_posix()
        modules.add(path.stem if folder == "." else f"{folder}/{path.stem}")
    return modules


def test_every_module_is_in_the_layout() -> None:
    missing = sorted(package_modules() - listed_modules(layout_block()))
    assert not missing, f"docs/architecture.md's layout does not name: {missing}"


def test_the_layout_names_no_module_that_is_gone() -> None:
    gone = sorted(listed_modules(layout_block()) - package_modules() - {"__init__"})
    assert not gone, f"docs/architecture.md's layout names modules that do not exist: {gone}"
