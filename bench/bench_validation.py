"""Validation speed: coordination beside pydantic v2, fastjsonschema, jsonschema, voluptuous, Cerberus.

Run:  .venv/bin/python bench/bench_validation.py [--quick]

The issue's message and rules: user_id a string of length ≥ 1, action one of login/logout,
timestamp a date-time, amount a number ≥ 0. coordination loads the rule set by name from a
YAML file. "invalid" is a message with two errors (empty user_id, unknown action), all
errors collected and turned into error objects (pydantic: ``.errors()``). fastjsonschema
stops at the first error: it has no all-errors mode, so its invalid figure does less work.
"+ text" rows also read every error's message (coordination phrases the message of a
flat message's failing field when it is first read). All figures come from this one run on
this machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

VALID = {"user_id": "123", "action": "login", "timestamp": "2024-01-01T12:00:00Z", "amount": 12.5}
INVALID = {"user_id": "", "action": "jump", "timestamp": "2024-01-01T12:00:00Z", "amount": 12.5}

RULES_YAML = """\
name: user_event
fields:
  user_id:   {type: string, required: true, min_length: 1}
  action:    {type: string, required: true, allowed: [login, logout]}
  timestamp: {type: datetime, required: true}
  amount:    {type: number, min: 0}
"""

JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string", "minLength": 1},
        "action": {"type": "string", "enum": ["login", "logout"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "amount": {"type": "number", "minimum": 0},
    },
    "required": ["user_id", "action", "timestamp"],
}


def coordination_case(folder: Path) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from coordination.validation import CoordinationValidator

    (folder / "user_event.yaml").write_text(RULES_YAML)
    validator = CoordinationValidator(folder, config={})
    assert validator.validate(VALID, "user_event").is_valid
    assert len(validator.validate(INVALID, "user_event").errors) == 2
    return (
        lambda: validator.validate(VALID, "user_event"),
        lambda: validator.validate(INVALID, "user_event").errors,
    )


def messages_read(
    case: tuple[Callable[[], Any], Callable[[], Any]], text: Callable[[Any], str]
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The same case, with every error's message read (coordination phrases a flat
    message's texts when first read; pydantic's ``errors()`` builds them at once)."""
    valid, invalid = case
    return valid, lambda: [text(error) for error in invalid()]


def pydantic_case() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import pydantic

    class UserEvent(pydantic.BaseModel):
        user_id: Annotated[str, pydantic.StringConstraints(min_length=1)]
        action: Literal["login", "logout"]
        timestamp: datetime
        amount: Annotated[float, pydantic.Field(ge=0)] | None = None

    validate = UserEvent.model_validate

    def invalid() -> Any:
        try:
            validate(INVALID)
        except pydantic.ValidationError as exc:
            return exc.errors()
        raise AssertionError("pydantic accepted the invalid message")

    assert len(invalid()) == 2
    return (lambda: validate(VALID)), invalid


def fastjsonschema_case() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import fastjsonschema

    validate = fastjsonschema.compile(JSON_SCHEMA)

    def invalid() -> Any:
        try:
            validate(INVALID)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc
        raise AssertionError("fastjsonschema accepted the invalid message")

    return (lambda: validate(VALID)), invalid


def jsonschema_case() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        JSON_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert len(list(validator.iter_errors(INVALID))) == 2
    return (lambda: validator.is_valid(VALID)), (lambda: list(validator.iter_errors(INVALID)))


def voluptuous_case() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import voluptuous as v

    schema = v.Schema(
        {
            v.Required("user_id"): v.All(str, v.Length(min=1)),
            v.Required("action"): v.In(["login", "logout"]),
            v.Required("timestamp"): v.Datetime("%Y-%m-%dT%H:%M:%SZ"),
            "amount": v.All(v.Any(int, float), v.Range(min=0)),
        }
    )

    def invalid() -> Any:
        try:
            schema(INVALID)
        except v.MultipleInvalid as exc:
            return exc.errors
        raise AssertionError("voluptuous accepted the invalid message")

    assert len(invalid()) == 2
    return (lambda: schema(VALID)), invalid


def cerberus_case() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import cerberus

    rfc3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"
    validator = cerberus.Validator(
        {
            "user_id": {"type": "string", "minlength": 1, "required": True},
            "action": {"type": "string", "allowed": ["login", "logout"], "required": True},
            "timestamp": {"type": "string", "regex": rfc3339, "required": True},
            "amount": {"type": "number", "min": 0},
        }
    )

    def invalid() -> Any:
        assert not validator.validate(INVALID)
        return validator.errors

    assert len(invalid()) == 2
    return (lambda: validator.validate(VALID)), invalid


def measure(
    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]],
    numbers: dict[str, int],
    repeat: int,
) -> dict[str, tuple[float, float, float, float]]:
    """Best and median µs per call, valid then invalid, for every case.

    The rounds are interleaved (each round times every library once), so a burst of load
    on the shared machine falls on all of them alike rather than on whoever ran then.
    """
    runs: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for _ in range(repeat):
        for name, (valid, invalid) in cases.items():
            number = numbers[name]
            runs[name][0].append(timeit.timeit(valid, number=number) / number * 1e6)
            half = max(1, number // 2)
            runs[name][1].append(timeit.timeit(invalid, number=half) / half * 1e6)
    return {
        name: (min(v), statistics.median(v), min(i), statistics.median(i))
        for name, (v, i) in runs.items()
    }


def _message(issue: Any) -> str:
    return str(issue.message)


def _msg(error: Any) -> str:
    return str(error["msg"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (less precise)")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    repeat = 5 if args.quick else 25

    with tempfile.TemporaryDirectory() as folder:
        cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "coordination": coordination_case(Path(folder)),
            "pydantic v2": pydantic_case(),
            "coord. + text": messages_read(coordination_case(Path(folder)), _message),
            "pydantic + text": messages_read(pydantic_case(), _msg),
            "fastjsonschema": fastjsonschema_case(),
            "jsonschema": jsonschema_case(),
            "voluptuous": voluptuous_case(),
            "cerberus": cerberus_case(),
        }
        # Slow validators get fewer calls so each timing run lasts about the same.
        calls = {"jsonschema": 0.05, "voluptuous": 0.1, "cerberus": 0.01}
        numbers = {name: max(50, int(20_000 * scale * calls.get(name, 1.0))) for name in cases}
        results = measure(cases, numbers, repeat)

    ours = results["coordination"]
    print(f"Python {sys.version.split()[0]}; µs per call (best / median of {repeat} runs)")
    print(
        f"{'library':<16}{'valid best':>12}{'median':>10}{'× ours':>9}"
        f"{'invalid best':>15}{'median':>10}{'× ours':>9}"
    )
    for name, (vb, vm, ib, im) in results.items():
        print(
            f"{name:<16}{vb:>12.3f}{vm:>10.3f}{vb / ours[0]:>9.2f}"
            f"{ib:>15.3f}{im:>10.3f}{ib / ours[2]:>9.2f}"
        )
    print("targets for coordination: valid ≤ 1.0 µs, invalid (two errors) ≤ 4 µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
