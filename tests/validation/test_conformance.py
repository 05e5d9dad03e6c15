"""Rule sets carrying a raw JSON Schema pass the official JSON-Schema-Test-Suite (2020-12).

The suite lives beside the repository (``shared/conformance/json-schema-test-suite`` in a
parent folder, or ``COORDINATION_CONFORMANCE_SUITE``). Every case of every required file
runs through ``CoordinationValidator.validate(data, {"schema": ...})`` — whatever the
data is (objects, arrays, strings, numbers, null) — and ``optional/format`` runs too. The
remote documents the suite serves at ``localhost:1234`` are read from disk by the
validator's ``schema_retriever`` (the suite's ``remotes/`` folder, kept in
``json_schema_test_suite/``). The required ``format.json`` expects formats to be
annotations "by default", the optional ones expect assertions: a rule set chooses with
``formats: annotate`` or ``formats: assert`` (default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from coordination.validation import CoordinationValidator

REPO = Path(__file__).resolve().parents[2]
SUITE_IN_SHARED = Path("shared", "conformance", "json-schema-test-suite")
REMOTES = Path(__file__).resolve().parent / "json_schema_test_suite" / "remotes"
REMOTE_ROOT = "http://localhost:1234/"


def _suite_root() -> Path | None:
    configured = os.environ.get("COORDINATION_CONFORMANCE_SUITE")
    if configured:
        return Path(configured)
    for folder in REPO.parents:  # the repository may be a worktree, some levels down
        if (folder / SUITE_IN_SHARED).is_dir():
            return folder / SUITE_IN_SHARED
    return None


ROOT = _suite_root()
SUITE = (ROOT / "tests" / "draft2020-12") if ROOT else None


def retrieve(uri: str) -> Any:
    """The suite's remote documents, from disk: nothing is fetched, no case is skipped."""
    if not uri.startswith(REMOTE_ROOT):
        raise LookupError(f"the suite has no remote document {uri}")
    path = (REMOTES / uri.removeprefix(REMOTE_ROOT)).resolve()
    if not path.is_relative_to(REMOTES) or not path.is_file():
        raise LookupError(f"the suite has no remote document {uri}")
    return json.loads(path.read_text(encoding="utf-8"))


def _cases() -> list[Any]:
    if SUITE is None or not SUITE.is_dir():
        reason = f"suite not found (looked for {SUITE_IN_SHARED} above {REPO})"
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=reason))]
    files = [(p, "annotate") for p in sorted(SUITE.glob("*.json"))]
    files += [(p, "assert") for p in sorted((SUITE / "optional" / "format").glob("*.json"))]
    cases = []
    for path, formats in files:
        for group in json.loads(path.read_text(encoding="utf-8")):
            name = f"{path.relative_to(SUITE)}: {group['description']}"
            cases.append(pytest.param(group, formats, id=name))
    return cases


@pytest.fixture(scope="module")
def validator() -> CoordinationValidator:
    # the suite's documents are deeper than a message would be
    return CoordinationValidator(config={"validation_max_depth": 1000}, schema_retriever=retrieve)


@pytest.mark.parametrize(("group", "formats"), _cases())
def test_suite_case(group: dict[str, Any], formats: str, validator: CoordinationValidator) -> None:
    rules = {"schema": group["schema"], "formats": formats}
    wrong = []
    for test in group["tests"]:
        result = validator.validate(test["data"], rules)
        assert bool(result.errors) != result.is_valid, test["description"]
        if result.is_valid != test["valid"]:
            wrong.append(test["description"])
    assert not wrong, f"disagrees with the suite on: {wrong}"


def test_every_remote_the_suite_refers_to_is_served() -> None:
    if SUITE is None or not SUITE.is_dir():
        pytest.skip("suite not found")
    text = "".join(p.read_text(encoding="utf-8") for p in SUITE.glob("*.json"))
    assert REMOTE_ROOT.rstrip("/") in text  # the remote-ref groups are part of the run
    assert retrieve(f"{REMOTE_ROOT}draft2020-12/integer.json") == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "integer",
    }
    with pytest.raises(LookupError):
        retrieve(f"{REMOTE_ROOT}../../test_conformance.py")


def test_the_suite_is_present_in_ci() -> None:
    """Beside a CI checkout the suite must be found, so the test above cannot silently skip."""
    if not any((folder / "shared").is_dir() for folder in REPO.parents):
        pytest.skip(f"no shared/ folder above {REPO}")
    missing = f"shared/ exists but the JSON-Schema-Test-Suite is missing ({SUITE_IN_SHARED})"
    assert SUITE is not None, missing
    assert SUITE.is_dir(), missing
