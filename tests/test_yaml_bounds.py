"""Hostile YAML — alias bombs, deep nesting, odd tags, bad bytes, huge scalars — in rule
files, configuration files and the CLI's input: a clear RuleSetError/ConfigError (exit 2
on the command line) naming the file and line, fast, never anything else."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from coordination import ConfigError, RuleSetError, load_coordination_config
from coordination._cli import main
from coordination._quote import quote
from coordination._yaml import MAX_YAML_DEPTH
from coordination.validation import CoordinationValidator
from coordination.validation._loader import read_rule_sources
from coordination.validation._validator import compile_rule_file

pytestmark = pytest.mark.usefixtures("clean_environment")

SECRET_LINE = "root:SECRET-CONTENT:0:0"


def billion_laughs(levels: int = 9, width: int = 9, key: str = "lol") -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    lines.append(f"{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 30) -> str:
    lines = ["m0: &m0 {k: v}"]
    for level in range(1, levels):
        below = f"*m{level - 1}"
        lines.append(f"m{level}: &m{level} {{<<: [{below}, {below}, {below}], x{level}: 1}}")
    return "\n".join(lines) + "\n"


def deep(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels + "\n"


def deep_block(levels: int = 2_000) -> str:
    return "".join(f"{' ' * n}k:\n" for n in range(levels))


def write(tmp_path: Path, text: str | bytes, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    with contextlib.suppress(ConfigError):  # RuleSetError is a ConfigError
        call()
    return time.perf_counter() - started


HOSTILE = {
    "billion laughs": billion_laughs(),
    "merge-key bomb": merge_bomb(),
    "cyclic alias": "a: &a [1, *a]\n",
    "100 000 deep, flow": deep(),
    "2 000 deep, block": deep_block(),
}


# --- rule files ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", HOSTILE)
def test_rule_file_bombs_are_refused_fast_with_file_and_line(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, HOSTILE[kind], "rules.yaml")
    started = time.perf_counter()
    with pytest.raises(RuleSetError) as caught:
        CoordinationValidator(path, config={})
    assert time.perf_counter() - started < 3.0
    message = str(caught.value)
    assert message.startswith(f"malformed YAML in rule file {path}, line ")
    assert len(message) < 400


def test_a_bomb_under_the_bound_is_compiled_fast_and_quoted_short(tmp_path: Path) -> None:
    # 8 levels of 4, under the node bound, used where a type name goes.
    text = f"name: r\nfields:\n  f:\n    type: {inline_bomb(8, 4)}\n"
    path = write(tmp_path, text, "rules.yaml")
    assert timed(lambda: compile_rule_file(path)) < 3.0
    with pytest.raises(RuleSetError, match="unknown type") as caught:
        compile_rule_file(path)
    assert len(str(caught.value)) < 400


def test_an_allowed_rule_using_aliases_still_loads(tmp_path: Path) -> None:
    text = (
        "name: orders\n"
        "fields:\n"
        "  sku: &text {type: string, min_length: 1}\n"
        "  note: *text\n"
        "  base: &base {type: integer, min: 0}\n"
        "  qty: {<<: *base, max: 10}\n"
    )
    validator = CoordinationValidator(write(tmp_path, text, "orders.yaml"), config={})
    result = validator.validate({"sku": "", "note": "n", "qty": 11}, "orders")
    assert sorted(e.pointer for e in result.errors) == ["/qty", "/sku"]


def test_unparsable_rule_file_content_is_never_quoted(tmp_path: Path) -> None:
    for text in (
        f"{SECRET_LINE}\n  - : [\n",
        f'"{SECRET_LINE}\\q"\n',
        f"a: !{SECRET_LINE} 1\n",
        f"- {SECRET_LINE}\n",
    ):
        path = write(tmp_path, text, "system-file")
        with pytest.raises(RuleSetError) as caught:
            read_rule_sources(path)
        assert "SECRET-CONTENT" not in str(caught.value), text


def test_non_utf8_rule_file_names_the_byte_not_its_neighbours(tmp_path: Path) -> None:
    path = write(tmp_path, b"name: r\nnote: SECRET\xff\xfe\n", "rules.yaml")
    with pytest.raises(RuleSetError, match=r"not UTF-8 text \(byte 21\)") as caught:
        read_rule_sources(path)
    assert "SECRET" not in str(caught.value)


def test_lone_surrogate_in_a_rule_file_is_a_rule_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'name: r\nfields:\n  a: {pattern: "\\ud800"}\n', "rules.yaml")
    with pytest.raises(RuleSetError, match="line 3, column 16: a lone surrogate"):
        compile_rule_file(path)


# --- configuration files and variables ---------------------------------------------------


@pytest.mark.parametrize("kind", HOSTILE)
def test_config_file_bombs_are_refused_fast_with_file_and_line(tmp_path: Path, kind: str) -> None:
    text = HOSTILE[kind].replace("lol: ", "operation_thresholds: ")
    path = write(tmp_path, text, "coordination.yaml")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_coordination_config(path)
    assert time.perf_counter() - started < 3.0
    assert str(caught.value).startswith(f"malformed YAML in configuration file {path}, line ")


def inline_bomb(levels: int, width: int) -> str:
    """A flow list of the levels of a bomb, anchors defined inside the value itself."""
    items = [f"&a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        items.append(f"&a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "[" + ", ".join(items) + "]"


def test_a_bomb_value_under_the_bound_is_refused_fast_and_quoted_short(tmp_path: Path) -> None:
    # 8 levels of 4: about 87 000 nodes expanded, under the node bound.
    path = write(tmp_path, f"operation_thresholds: {inline_bomb(8, 4)}\n", "coordination.yaml")
    assert timed(lambda: load_coordination_config(path)) < 3.0
    with pytest.raises(ConfigError, match="invalid operation_thresholds = ") as caught:
        load_coordination_config(path)
    assert len(str(caught.value)) < 300
    path = write(tmp_path, f"operation_thresholds: {deep(60)}", "coordination.yaml")
    with pytest.raises(ConfigError, match="invalid operation_thresholds = ") as caught:
        load_coordination_config(path)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("max_retries: " + "9" * 5000 + "\n", "line 1, column 14: cannot read this int value"),
        ("max_retries: 2001-13-45\n", "cannot read this timestamp value"),
        ('redis_namespace: "\\udfff"\n', "a lone surrogate"),
        ("? [a, b]\n: 1\n", "found unhashable key"),
        ("max_retries: !!python/object:os.system 1\n", "could not determine a constructor"),
        ('max_retries: !!int ""\n', "cannot read this int value"),
        ('max_delay: !!float ""\n', "cannot read this float value"),
        ("debug: !!bool maybe\n", "cannot read this bool value"),
        ("max_retries: !!int abc\n", "cannot read this int value: invalid literal"),
        ("max_retries: !!timestamp 0\n", "cannot read this timestamp value"),
    ],
)
def test_values_python_cannot_build_are_config_errors(
    tmp_path: Path, text: str, words: str
) -> None:
    path = write(tmp_path, text, "coordination.yaml")
    with pytest.raises(ConfigError, match=words) as caught:
        load_coordination_config(path)
    assert len(str(caught.value)) < 400


def test_huge_values_are_quoted_short(tmp_path: Path) -> None:
    path = write(tmp_path, f"jitter: {'x' * 1_000_000}\n", "coordination.yaml")
    with pytest.raises(ConfigError, match="invalid jitter = 'x") as caught:
        load_coordination_config(path)
    assert "[1000000 characters]" in str(caught.value)
    assert len(str(caught.value)) < 300
    assert caught.value.value == "x" * 1_000_000  # the attribute keeps the value itself
    with pytest.raises(ConfigError, match="integer of about 5001 digits") as caught:
        CoordinationValidator(config={"error_rate_threshold": 10**5000})
    with pytest.raises(ConfigError) as caught:
        CoordinationConfig_from_env({"COORDINATION_MAX_RETRIES": "9" * 100_000})
    assert len(str(caught.value)) < 300
    with pytest.raises(ConfigError) as caught:
        CoordinationValidator(config={"x" * 1_000_000: 1})
    assert len(str(caught.value)) < 300


def CoordinationConfig_from_env(environ: dict[str, str]) -> Any:
    from coordination import CoordinationConfig

    return CoordinationConfig.from_environment(environ)


def test_non_utf8_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"max_retries: 3\xff\n", "coordination.yaml")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 15\)"):
        load_coordination_config(path)


# --- the command line: exit 2 with one line, never a traceback ---------------------------


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("kind", HOSTILE)
def test_cli_exits_2_with_one_line_for_hostile_yaml_anywhere(tmp_path: Path, kind: str) -> None:
    hostile = write(tmp_path, HOSTILE[kind], "hostile.yaml")
    rules = write(tmp_path, "name: r\nrequired_fields: [a]\n", "r.yaml")
    good = write(tmp_path, '{"a": 1}', "good.json")
    for argv in (
        ["config", "--file", str(hostile)],
        ["validate", "--rules", str(hostile), "--rule-set", "r", str(good)],
        ["validate", "--rules", str(rules), "--rule-set", "r", str(hostile)],
    ):
        started = time.perf_counter()
        status, out, err = run(argv)
        assert time.perf_counter() - started < 5.0, argv
        assert status == 2, argv
        assert out == "", argv
        assert len(err.splitlines()) == 1, (argv, err)
        assert "Traceback" not in err
    status, out, _ = run(["rules", "check", str(hostile)])
    assert status == 2
    assert "ERROR" in out


def test_cli_input_100_000_deep_json_exits_2(tmp_path: Path) -> None:
    rules = write(tmp_path, "name: r\nrequired_fields: [a]\n", "r.yaml")
    for name, text in (("deep.json", '{"a": ' * 100_000 + "1" + "}" * 100_000), ("x.json", deep())):
        document = write(tmp_path, text, name)
        status, _, err = run(["validate", "--rules", str(rules), "--rule-set", "r", str(document)])
        assert status == 2
        assert "nests too deeply" in err
        assert len(err.splitlines()) == 1


# --- generated YAML: the loaders return or raise their own error, fast -------------------

SCALARS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True).map(repr),
    st.sampled_from(
        [
            "~",
            "null",
            "yes",
            "2001-12-14t21:59:43.10-05:00",
            "2001-13-45",
            "0x_ff",
            "0o8",
            "1:20:30",
            ".inf",
            "9" * 5000,
            "x" * 50_000,
            '"\\ud800"',
            '"\\x00"',
            "'it''s'",
            "|\n  block",
            "\\t",
            "@",
            "`",
            "%",
            "name",
            "fields",
            "type",
            "schema",
            "rule_sets",
            "max_retries",
            "string",
        ]
    ),
    st.text(max_size=12).map(json.dumps),
    st.text(alphabet="abc:-?[]{}#&*!|>'\"%@`, \n\t", max_size=12),
)
TAGS = st.sampled_from(
    [
        "!!str ",
        "!!int ",
        "!!float ",
        "!!bool ",
        "!!null ",
        "!!binary ",
        "!!timestamp ",
        "!!seq ",
        "!!map ",
        "!!set ",
        "!!omap ",
        "!!pairs ",
        "!!python/object:os.system ",
        "!local ",
        "!<tag:example.com,2000:x> ",
    ]
)


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    """Flow-style YAML with anchors, aliases (cyclic ones too), merge keys and tags."""
    anchors: list[str] = []

    def node(depth: int) -> str:
        choice = draw(st.integers(0, 11))
        if anchors and choice <= 2:
            return "*" + draw(st.sampled_from(anchors))
        prefix = ""
        if choice == 3:
            prefix = draw(TAGS)
        if choice in (4, 5):
            name = f"a{len(anchors)}"
            prefix += f"&{name} "
            if choice == 5:  # registered before its content: aliases to it become cyclic
                anchors.append(name)
        kind = draw(st.integers(0, 2)) if depth < 6 else 0
        if kind == 0:
            body = draw(SCALARS)
        elif kind == 1:
            body = "[" + ", ".join(node(depth + 1) for _ in range(draw(st.integers(0, 5)))) + "]"
        else:
            pairs = []
            for _ in range(draw(st.integers(0, 5))):
                key = "<<" if draw(st.integers(0, 5)) == 0 else draw(SCALARS)
                pairs.append(f"{key}: {node(depth + 1)}")
            body = "{" + ", ".join(pairs) + "}"
        if choice == 4:
            anchors.append(prefix.split("&")[1].strip())
        return prefix + body

    text = node(0)
    nesting = draw(st.sampled_from([0, 0, 0, 3, MAX_YAML_DEPTH - 2, MAX_YAML_DEPTH + 5, 20_000]))
    text = "[" * nesting + text + "]" * nesting
    if draw(st.booleans()):
        text = "name: r\nfields: " + text
    if draw(st.integers(0, 4)) == 0:
        text += "\n---\n" + node(0)
    return text


@st.composite
def file_contents(draw: st.DrawFn) -> bytes:
    data = draw(yaml_documents()).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 5)) == 0:  # splice in bytes that are not UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


FAST = 5.0  # seconds, generous for a loaded machine; a bomb took ~50 s before


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No "explain" phase: it traces every line, which under load outlasts the timeout.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
@given(content=file_contents())
def test_generated_yaml_gives_a_result_or_our_error_fast(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.yaml"
        path.write_bytes(content)
        for load, allowed in (
            (lambda: compile_rule_file(path), RuleSetError),
            (lambda: load_coordination_config(path), ConfigError),
        ):
            started = time.perf_counter()
            message = ""
            try:
                load()
            except allowed as exc:
                message = str(exc)
            assert time.perf_counter() - started < FAST
            assert len(message) < 600
        rules = Path(folder) / "r.yaml"
        rules.write_text("name: r\nrequired_fields: [a]\n", encoding="utf-8")
        for argv, statuses in (
            (["validate", "--rules", str(rules), "--rule-set", "r", str(path)], {0, 1, 2}),
            (["validate", "--rules", str(path), "--rule-set", "r", str(rules)], {0, 1, 2}),
            (["rules", "check", str(path)], {0, 2}),
            (["config", "--file", str(path)], {0, 2}),
        ):
            started = time.perf_counter()
            status, _, err = run(argv)
            assert status in statuses, (argv, err)
            assert time.perf_counter() - started < FAST
            if status == 2:
                assert len(err.splitlines()) <= 1, err


# --- quoting any value in a message ------------------------------------------------------

JSON_LIKE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**4400, max_value=10**4400 + 1),
        st.floats(),
        st.text(),
        st.binary(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=8),
        st.dictionaries(st.text(max_size=5), children, max_size=8),
        st.tuples(children, children),
    ),
    max_leaves=40,
)


@given(value=JSON_LIKE, limit=st.integers(10, 300))
def test_quote_is_short_for_any_value(value: Any, limit: int) -> None:
    assert len(quote(value, limit)) <= limit + 40


def test_quote_is_bounded_work_for_shared_and_cyclic_values() -> None:
    shared: Any = ["lol"] * 9
    for _ in range(30):  # 9**30 leaves if expanded
        shared = [shared] * 9
    cyclic: list[Any] = []
    cyclic.append(cyclic)

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    started = time.perf_counter()
    for value in (shared, {"k": shared}, cyclic, Hostile(), "x" * 10_000_000, b"\xff" * 10**7):
        assert len(quote(value)) < 150
    assert time.perf_counter() - started < 0.5


def test_cli_input_from_stdin_is_bounded_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = write(tmp_path, "name: r\nrequired_fields: [a]\n", "r.yaml")
    for text, words in (
        (deep(), "nests too deeply"),
        (billion_laughs(levels=12, width=9), "expands to more than 1000000 nodes"),
        ("a: [1\n", "neither JSON nor YAML"),
    ):
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        status, out, err = run(["validate", "--rules", str(rules), "--rule-set", "r", "-"])
        assert (status, out) == (2, "")
        assert words in err
        assert len(err.splitlines()) == 1
