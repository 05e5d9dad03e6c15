"""PyYAML's safe loader with bounds, for every YAML document this library reads.

The safe loader refuses arbitrary objects but not two ways of making a small file huge:

- **aliases**: ``a: &a [x, x, x]`` then ``b: &b [*a, *a, *a]`` and so on ("billion
  laughs"). PyYAML shares the aliased node, so loading is cheap, but everything that later
  walks the data (compiling a rule set, formatting a message) expands it: nine levels of
  nine took ~50 s and ended in ``MemoryError``. Merge keys (``<<: [*a, *a]``) expand the
  same way.
- **nesting**: ``[[[[...]]]]`` 100 000 levels deep overflows the composer's recursion
  with a bare ``RecursionError``.

``BoundedSafeLoader`` counts, while composing, how many nodes the document holds once
every alias is expanded, and how deep it nests; past ``max_nodes`` or ``max_depth`` it
raises ``YAMLLimitError`` (a ``yaml.YAMLError``) at the offending node, so callers report
it with file, line and column like any other malformed YAML. The cost of the check is a
counter per node: a bomb is refused after reading only its own (small) text.

>>> load_yaml("a: [1, 2]")
{'a': [1, 2]}
>>> try:
...     load_yaml("a: [[[[1]]]]", max_depth=3)
... except YAMLLimitError as exc:
...     print(exc.problem)
YAML nested deeper than 3 levels
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = [
    "MAX_YAML_CHARACTERS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "BoundedSafeLoader",
    "YAMLLimitError",
    "load_yaml",
    "yaml_problem",
]

# Rule sets nest fields at most 32 levels (two YAML levels each), messages 64 by default:
# 100 leaves room for both while keeping PyYAML's recursive composer and constructor
# (about four frames a level) far below Python's default recursion limit of 1000.
MAX_YAML_DEPTH = 100
# Nodes of one stream once aliases are expanded. A file without aliases this large would
# be ~5 MB and take PyYAML's pure-Python parser tens of seconds, so only amplification
# by aliases can reach it; what gets past it costs well under a second to walk.
MAX_YAML_NODES = 200_000
# Characters of scalar text once aliases are expanded: a 50 kB string aliased 100 000
# times is few nodes but 5 GB for whatever copies the strings (the JSON Schema engine).
MAX_YAML_CHARACTERS = 20_000_000


_SURROGATE = re.compile("[\ud800-\udfff]")


class YAMLLimitError(yaml.composer.ComposerError):
    """A YAML document is too deep, or expands through aliases to too many nodes."""


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses alias bombs, merge-key bombs and deep nesting."""

    max_depth = MAX_YAML_DEPTH
    max_nodes = MAX_YAML_NODES
    max_characters = MAX_YAML_CHARACTERS
    # Rule and configuration files refuse lone surrogates; data to validate may carry
    # them, for the validator to report as an issue like any other bad value.
    allow_surrogates = False

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0  # in the whole stream, aliases expanded
        self._characters = 0  # of scalar text, likewise
        self._anchor_sizes: dict[str, tuple[int, int]] = {}

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # Checked in the scanner too: it keeps a possible simple key per open bracket and
        # walks them all for every token it reads ahead (up to 1024 characters), which
        # costs seconds at a few thousand open brackets before the composer sees any.
        if self.flow_level >= self.max_depth:
            raise YAMLLimitError(
                None, None, f"YAML nested deeper than {self.max_depth} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_document(self) -> yaml.Node | None:
        self._anchor_sizes = {}  # anchors are scoped to their document, as PyYAML's are
        node: yaml.Node | None = super().compose_document()
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node: yaml.Node | None = super().compose_node(parent, index)  # undefined: error
            size = self._anchor_sizes.get(event.anchor or "")
            if size is None:
                # The anchor is still being composed: the alias is inside its own anchor,
                # which would make the data cyclic.
                raise YAMLLimitError(
                    None,
                    None,
                    "an alias is inside the node it refers to (a cyclic alias)",
                    _mark(event),
                )
            self._count(*size, event.start_mark)
            return node
        self._depth += 1
        if self._depth > self.max_depth:
            raise YAMLLimitError(
                None, None, f"YAML nested deeper than {self.max_depth} levels", _mark(event)
            )
        nodes_before, characters_before = self._nodes, self._characters
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        self._count(1, len(text), event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._anchor_sizes[anchor] = (
                self._nodes - nodes_before,
                self._characters - characters_before,
            )
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A scalar may match YAML's int or timestamp pattern and still be no value Python
        # can build (an int past the int-to-string limit, month 13), or carry an explicit
        # tag that does not fit it (!!int "", !!bool maybe, !!timestamp 0): PyYAML's
        # constructors then let ValueError, IndexError, KeyError or, where a pattern did
        # not match, AttributeError out bare. Make each a YAML error at the
        # node, like any other (yaml_problem drops any text of the file it quotes).
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, LookupError, TypeError, AttributeError) as exc:
            detail = f": {_short(str(exc), 100)}" if isinstance(exc, ValueError) else ""
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read this {node.tag.rsplit(':', 1)[-1]} value{detail}",
                node.start_mark,
            ) from exc

    def construct_scalar(self, node: yaml.ScalarNode | yaml.MappingNode) -> Any:
        value = super().construct_scalar(node)
        # "\ud800" in a double-quoted YAML string is a lone surrogate: no character at
        # all, and it breaks every encoder downstream (regex engines, JSON, logs).
        if (
            not self.allow_surrogates
            and isinstance(value, str)
            and not value.isascii()
            and _SURROGATE.search(value)
        ):
            raise yaml.constructor.ConstructorError(
                None, None, "a lone surrogate (\\ud800-\\udfff) is not a character", node.start_mark
            )
        return value

    def _count(self, nodes: int, characters: int, mark: Any) -> None:
        self._nodes += nodes
        self._characters += characters
        if self._characters > self.max_characters:
            raise YAMLLimitError(
                None,
                None,
                f"YAML expands to more than {self.max_characters} characters of text "
                "(aliases repeat too much, or the document is too large)",
                mark,
            )
        if self._nodes > self.max_nodes:
            raise YAMLLimitError(
                None,
                None,
                f"YAML expands to more than {self.max_nodes} nodes "
                "(aliases or merge keys repeat too much)",
                mark,
            )


def load_yaml(
    text: str | bytes,
    *,
    max_depth: int = MAX_YAML_DEPTH,
    max_nodes: int = MAX_YAML_NODES,
    max_characters: int = MAX_YAML_CHARACTERS,
) -> Any:
    """The one YAML document in ``text``, loaded safely within the bounds."""
    loader = BoundedSafeLoader(text)
    loader.max_depth = max_depth
    loader.max_nodes = max_nodes
    loader.max_characters = max_characters
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """``(", line L, column C", problem)`` for a message about ``exc``.

    Only the position and PyYAML's short description: never ``str(exc)``, whose snippet
    would quote the file's content, which may not be the user's to show (a system file
    named by mistake) and is unbounded.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None)
    if isinstance(exc, yaml.reader.ReaderError):
        where = f", character {exc.position + 1}"
        character = exc.character
        problem = (
            f"character #x{character:04x} is not allowed in YAML"
            if isinstance(character, int)
            else "the text is not valid in its encoding"
        )
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if not problem:
        problem = context or type(exc).__name__
    elif context and not context.startswith("while") and context_mark is not None:
        # "found duplicate anchor 'a'; first occurrence" + "second occurrence"
        problem = f"{context} at line {context_mark.line + 1}, {problem}"
    return where, _short(_QUOTED.sub(_grammar_only, str(problem)).strip().rstrip(":"), 160)


# PyYAML's problems quote what they found with %r: grammar tokens ('<block end>', ',',
# '\\t') but also the file's own text (a tag, an alias or anchor name, a directive).
_QUOTED = re.compile(r"\s?'(?:[^'\\]|\\.)*'" + r'|\s?"(?:[^"\\]|\\.)*"')


def _grammar_only(found: re.Match[str]) -> str:
    """Keep a quoted token of YAML's grammar; drop quoted text of the file."""
    inner = found.group().strip()[1:-1]
    if len(inner) <= 2 or (inner.startswith("<") and inner.endswith(">")):
        return found.group()
    return ""


def _mark(event: yaml.Event) -> yaml.Mark | None:
    mark = event.start_mark
    return mark if isinstance(mark, yaml.Mark) else None


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."
