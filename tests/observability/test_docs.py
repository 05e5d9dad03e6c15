"""docs/observability.md documents every series the collector can export."""

from __future__ import annotations

from pathlib import Path

from coordination.observability._collector import FAMILIES

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def test_every_series_is_documented_with_its_exposed_name() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, typ in FAMILIES:
        exposed = f"{name}_total" if typ == "counter" else name
        assert f"`{exposed}`" in text, f"{exposed} is missing from {DOC.name}"
