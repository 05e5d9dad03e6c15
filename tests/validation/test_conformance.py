"""Rule sets carrying a raw JSON Schema pass the official JSON-Schema-Test-Suite (2020-12).

The suite lives beside the repository (``../shared/conformance/json-schema-test-suite``).
Every required file runs except ``refRemote.json`` and the cases that need the suite's
remote-reference server (``localhost:1234``); ``optional/format`` runs too. The required
``format.json`` expects formats to be annotations "by default", the optional ones expect
assertions: a rule set chooses with ``formats: annotate`` or ``formats: assert`` (default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coordination.validation import CoordinationValidator

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO.parent / "shared" / "conformance" / "json-schema-test-suite" / "tests" / "draft2020-12"
REMOTE_SERVER = "localhost:1234"


def _cases() -> list[Any]:
    if not SUITE.is_dir():
        return [
            pytest.param(None, None, marks=pytest.mark.skip(reason=f"suite not found at {SUITE}"))
        ]
    files = [(p, "annotate") for p in sorted(SUITE.glob("*.json")) if p.name != "refRemote.json"]
    files += [(p, "assert") for p in sorted((SUITE / "optional" / "format").glob("*.json"))]
    cases = []
    for path, formats in files:
        for group in json.loads(path.read_text(encoding="utf-8")):
            if REMOTE_SERVER in json.dumps(group["schema"]):
                continue
            name = f"{path.relative_to(SUITE)}: {group['description']}"
            cases.append(pytest.param(group, formats, id=name))
    return cases


@pytest.fixture(scope="module")
def validator() -> CoordinationValidator:
    # the suite's documents are deeper than a message would be
    return CoordinationValidator(config={"validation_max_depth": 1000})


@pytest.mark.parametrize(("group", "formats"), _cases())
def test_suite_case(group: dict[str, Any], formats: str, validator: CoordinationValidator) -> None:
    rule_set = validator.compile({"schema": group["schema"], "formats": formats}, name="suite")
    wrong = []
    for test in group["tests"]:
        data = test["data"]
        engine_says = rule_set.is_valid(data)
        if isinstance(data, dict):  # messages are mappings: the full path, issues included
            result = validator.validate(data, rule_set)
            assert result.is_valid == engine_says
            assert bool(result.errors) != result.is_valid
        if engine_says != test["valid"]:
            wrong.append(test["description"])
    assert not wrong, f"disagrees with the suite on: {wrong}"


def test_the_suite_is_present_in_ci() -> None:
    """Beside a CI checkout the suite must be found, so the test above cannot silently skip."""
    if not (REPO.parent / "shared").is_dir():
        pytest.skip(f"no shared/ folder beside {REPO}")
    assert SUITE.is_dir(), f"shared/ exists but the JSON-Schema-Test-Suite is missing at {SUITE}"
