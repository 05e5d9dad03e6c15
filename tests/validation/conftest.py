"""Fixtures for the validation tests: a rules folder and validators reading it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coordination.validation import CoordinationValidator

USER_EVENT_YAML = """\
name: user_event
fields:
  user_id:   {type: string, required: true, min_length: 1, max_length: 64}
  action:    {type: string, required: true, allowed: [login, logout]}
  timestamp: {type: datetime, required: true}
  amount:    {type: number, min: 0}
  tags:      {type: list, items: {type: string}, max_items: 10}
  address:   {type: object, fields: {city: {type: string, required: true}}}
additional_fields: allow
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "user_event.yaml").write_text(USER_EVENT_YAML)
    return folder


@pytest.fixture
def validator(rules_dir: Path) -> CoordinationValidator:
    return CoordinationValidator(rules_dir, config={})


@pytest.fixture
def make_validator(tmp_path: Path) -> Callable[..., CoordinationValidator]:
    """A validator over ``rules`` (YAML text) with config overrides."""

    def make(rules: str = "", **config: Any) -> CoordinationValidator:
        path = tmp_path / "made.yaml"
        path.write_text(rules)
        return CoordinationValidator(path, config=config)

    return make
