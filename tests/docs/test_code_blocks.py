"""Every code block in README.md and docs/ works as written.

A ```python block is a whole program: it runs in a fresh interpreter, in an empty
folder, with no ``COORDINATION_*`` variables, and must exit 0. A block that cannot run
alone (it continues the block above it, or needs the reader's own application) says so
with an HTML comment on the line before it::

    <!-- fragment -->
    ```python
    app.wsgi_app = CoordinationMiddleware(app.wsgi_app)
    ```

and is then only compiled. Anything that serves forever sits behind
``if __name__ == "__main__":``; blocks run under another ``__name__``, so the guard
keeps them finite while a reader's copy still serves. ```yaml and ```json blocks must
parse. Shell blocks are not run (they install packages or start servers).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from loopback import require_redis

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<word>[\w-]+)(?::[^>]*)?\s*-->\s*$")

# Runs a block the way `python block.py` would, except for __name__ (see the docstring).
_RUNNER = """\
import runpy, sys
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__docs__")
"""


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    marker: str | None
    source: str

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def needs_redis(self) -> bool:
        return "redis://" in self.source


def extract_blocks(document: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, with the marker comment before each."""
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or not opening["lang"]:
            index += 1
            continue
        start = index
        indent = len(opening["indent"])
        marker = None
        previous = index - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0 and (found := _MARKER.match(lines[previous])):
            marker = found["word"]
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index][indent:])
            index += 1
        if index >= len(lines):
            raise AssertionError(f"{document}:{len(lines)}: unclosed code block")
        source = "\n".join(body) + "\n"
        blocks.append(Block(document, start + 1, opening["lang"], marker, source))
        index += 1
    return blocks


ALL_BLOCKS = [block for document in DOCUMENTS for block in extract_blocks(document)]
PYTHON = [block for block in ALL_BLOCKS if block.language == "python"]
DATA = [block for block in ALL_BLOCKS if block.language in ("yaml", "json")]
KNOWN_MARKERS = {None, "fragment"}


def test_the_documents_have_python_blocks() -> None:
    # A parsing slip that found nothing would make every test below pass vacuously.
    assert len(PYTHON) >= 25
    assert {block.document.name for block in PYTHON} >= {"README.md", "quickstart.md"}


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda block: block.id)
def test_markers_are_known(block: Block) -> None:
    assert block.marker in KNOWN_MARKERS, f"{block.id}: unknown marker {block.marker!r}"


@pytest.mark.parametrize("block", DATA, ids=lambda block: block.id)
def test_data_blocks_parse(block: Block) -> None:
    if block.marker == "fragment":
        pytest.skip("a marked fragment of a larger document")
    if block.language == "json":
        json.loads(block.source)
    else:
        list(yaml.safe_load_all(block.source))


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: block.id)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    code = compile(block.source, block.id, "exec")  # a fragment must still be Python
    assert code is not None
    if block.marker == "fragment":
        return
    if block.needs_redis:
        require_redis()
    script = tmp_path / "block.py"
    script.write_text(block.source, encoding="utf-8")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("COORDINATION_")
    }
    environment["PYTHONWARNINGS"] = "error::DeprecationWarning"
    completed = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{block.id} exited {completed.returncode}\n--- stdout\n{completed.stdout[-3000:]}"
        f"\n--- stderr\n{completed.stderr[-3000:]}"
    )
