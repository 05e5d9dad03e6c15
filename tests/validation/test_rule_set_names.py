"""A rule-set name is never a path of its own: names come from data (an event type, a
header, a route), so ``validate({}, "/etc/passwd")`` must not open that file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination.validation import CoordinationValidator, RuleSetError

SECRET_LINE = "name: stolen\nrequired_fields: [never_shown]\n"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    (rules / "billing").mkdir(parents=True)
    (rules / "users.yaml").write_text("name: users\nrequired_fields: [id]\n")
    (rules / "billing" / "invoice.yaml").write_text("name: invoice\nrequired_fields: [total]\n")
    outside = tmp_path / "outside.yaml"
    outside.write_text(SECRET_LINE)
    (rules / "billing" / "link.yaml").symlink_to(outside)  # (subfolders are not loaded)
    return rules, outside


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "/etc/hostname",
        "../outside.yaml",
        "billing/../../outside.yaml",
        "billing/link.yaml",  # a symlink out of the folder
        "{outside}",  # the absolute path of a real rule file, as a str
        "users",
        "users.json",
        "nul\x00.yaml",
        "\ud800.yaml",
        "x" * 5000 + ".yaml",
    ],
)
def test_names_that_look_like_paths_open_nothing(layout: tuple[Path, Path], name: str) -> None:
    rules, outside = layout
    validator = CoordinationValidator(rules, config={})
    name = name.replace("{outside}", str(outside))
    if name == "users":
        assert not validator.validate({}, name).is_valid  # a loaded name
        return
    with pytest.raises(RuleSetError, match="unknown rule set") as caught:
        validator.validate({}, name)
    text = str(caught.value)
    assert "never_shown" not in text
    assert "stolen" not in text
    assert len(text) < 1000


def test_a_file_inside_the_rules_folder_and_a_path_object(layout: tuple[Path, Path]) -> None:
    rules, outside = layout
    validator = CoordinationValidator(rules, config={})
    # a subfolder is not loaded by name, but its file can be named relative to the folder
    assert not validator.validate({}, "billing/invoice.yaml").is_valid
    assert validator.validate({"total": 1}, "billing/invoice.yaml").is_valid
    # any location, when the program says it is a path
    result = validator.validate({}, outside)
    assert [e.code for e in result.errors] == ["required"]
    with pytest.raises(RuleSetError, match="does not exist"):
        validator.validate({}, rules / "missing.yaml")


@settings(max_examples=100, deadline=None)
@given(name=st.text(max_size=60))
def test_any_name_is_found_or_an_unknown_rule_set(name: str) -> None:
    validator = CoordinationValidator(Path("/nonexistent-rules"), config={})
    with pytest.raises(RuleSetError, match="unknown rule set"):
        validator.validate({}, name)
