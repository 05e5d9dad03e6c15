"""Reading rule files: YAML (safe loader) with the line of every key kept for messages.

A file holds one rule set (a mapping with ``name``), several (``rule_sets: [...]``), or
several YAML documents separated by ``---``. A folder is read file by file
(``*.yaml``/``*.yml``, sorted, not recursive). A rule set without a name takes the
file's stem when it is the file's only one.

Files are read with the bounded safe loader (``coordination._yaml``): an alias bomb or a
100 000-deep document is a ``RuleSetError`` naming the file and line, raised at once, and
no message quotes the text of a file that could not be read as rule sets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._errors import RuleSetError
from .._yaml import BoundedSafeLoader, yaml_problem

__all__ = ["LineMapping", "RuleSource", "line_of", "read_rule_sources", "rule_files"]

RULE_FILE_SUFFIXES = (".yaml", ".yml")


class LineMapping(dict[Any, Any]):
    """A dict read from YAML that remembers the line (1-based) of each key."""

    lines: dict[Any, int]


def line_of(mapping: object, key: object) -> int | None:
    """The line ``key`` was written on, when ``mapping`` came from a YAML file."""
    lines = getattr(mapping, "lines", None)
    return lines.get(key) if isinstance(lines, dict) else None


class _LineLoader(BoundedSafeLoader):
    """The bounded safe loader, building ``LineMapping`` instead of dict."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMapping:
    loader.flatten_mapping(node)
    mapping = LineMapping()
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


@dataclass(frozen=True, slots=True)
class RuleSource:
    """One rule set as written: its raw mapping, its file and the line it starts on."""

    rules: dict[Any, Any]
    file: str
    line: int | None
    default_name: str | None


def rule_files(path: str | os.PathLike[str]) -> list[Path]:
    """The rule files at ``path`` (a file, or a folder's YAML files); [] when missing."""
    root = Path(path)
    if root.is_dir():
        return sorted(p for p in root.iterdir() if p.suffix in RULE_FILE_SUFFIXES and p.is_file())
    if root.is_file():
        return [root]
    return []


def read_rule_sources(file: Path) -> list[RuleSource]:
    """Every rule set written in ``file``; ``RuleSetError`` (with file and line) if unreadable."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        # Not str(exc): it quotes the undecodable bytes of a file that may not be ours.
        raise RuleSetError(
            f"cannot read rule file {file}: not UTF-8 text (byte {exc.start + 1})",
            source=str(file),
        ) from exc
    except OSError as exc:
        raise RuleSetError(f"cannot read rule file {file}: {exc}", source=str(file)) from exc
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_LineLoader) if doc is not None]
    except yaml.YAMLError as exc:
        where, problem = yaml_problem(exc)
        raise RuleSetError(
            f"malformed YAML in rule file {file}{where}: {problem}", source=f"{file}{where}"
        ) from exc
    except RecursionError as exc:  # the loader's depth bound makes this unreachable: a net
        raise RuleSetError(f"rule file {file} nests too deeply to read", source=str(file)) from exc
    sources = list(_sources_in(documents, file))
    if len(sources) == 1 and "rule_sets" not in documents[0]:
        only = sources[0]
        return [RuleSource(only.rules, only.file, only.line, file.stem)]
    return sources


def _sources_in(documents: list[Any], file: Path) -> Iterator[RuleSource]:
    for document in documents:
        if not isinstance(document, dict):
            raise RuleSetError(
                f"rule file {file} must hold mappings (rule sets), not a {type(document).__name__}",
                source=str(file),
            )
        if "rule_sets" in document:
            entries = document["rule_sets"]
            where = f"{file}, line {line_of(document, 'rule_sets')}"
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise RuleSetError(
                    f"'rule_sets' in {where} must be a list of rule sets (mappings)", source=where
                )
            extra = sorted(str(k) for k in document if k != "rule_sets")
            if extra:
                raise RuleSetError(
                    f"{where}: a file with 'rule_sets' may hold nothing else, found {extra}",
                    source=where,
                )
            for entry in entries:
                yield RuleSource(entry, str(file), _first_line(entry), None)
        else:
            yield RuleSource(document, str(file), _first_line(document), None)


def _first_line(mapping: dict[Any, Any]) -> int | None:
    lines = getattr(mapping, "lines", None)
    return min(lines.values()) if lines else None
