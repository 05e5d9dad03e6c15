"""``CoordinationValidator``: rule sets loaded from YAML, validation, and its report."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from .._bounded import BoundedNames
from .._config import CoordinationConfig, resolve_config
from .._counting import ReadableCount, count_value
from .._errors import RuleSetError, ValidationError
from .._logging import component_logger, log_extra
from .._redact import safe_repr, truncate
from .._status import HealthStatus
from ._compiler import compile_rules
from ._limits import (
    MessageLimits,
    check_structure,
    flat_checker,
    lone_surrogate_at,
    tree_checker,
)
from ._loader import RULE_FILE_SUFFIXES, read_rule_sources, rule_files
from ._messages import secret_part
from ._result import ValidationIssue, ValidationResult
from ._ruleset import RuleSet, SchemaRetriever
from ._stats import BATCH as FAILURE_BATCH
from ._stats import FailureStats, now

__all__ = [
    "STRUCTURE_RULE_SET",
    "CoordinationValidator",
    "RuleSetLike",
    "compile_rule_file",
    "load_rule_sets",
]

RuleSetLike = str | os.PathLike[str] | Mapping[str, Any] | RuleSet
STRUCTURE_RULE_SET = "message_structure"  # the report's name for rule-less structure checks

_VALID = ValidationResult(True, ())
_new_result = object.__new__
_INLINE_CACHE_SIZE = 256


def _secret_by_name(path: tuple[str | int, ...]) -> bool:
    return any(secret_part(part, _NO_NAMES) for part in path)


_NO_NAMES: frozenset[str] = frozenset()


def _clean_names(names: frozenset[str]) -> frozenset[str]:
    # exact str, no lone surrogate: what is_flat_and_clean would have checked a key for
    return frozenset(n for n in names if n.__class__ is str and lone_surrogate_at(n) is None)


class _Entry:
    """A rule set as this validator uses it: the rule set and its counter of valid results.

    Valid results are counted with a ``ReadableCount`` (an ``itertools.count``): ``next()``
    on it is one C call, atomic under the GIL, so the fast path needs no lock.
    """

    __slots__ = ("is_clean", "name", "rule_set", "valid")

    def __init__(
        self,
        rule_set: RuleSet | None,
        name: str,
        valid: ReadableCount,
        limits: MessageLimits,
    ) -> None:
        self.rule_set = rule_set
        self.name = name
        self.valid = valid
        # the flat check, with the limits and the rule set's own (clean) field names bound
        known = _clean_names(rule_set.field_names) if rule_set else frozenset()
        self.is_clean = flat_checker(limits, known)


class CoordinationValidator:
    """Validates messages against rule sets written in YAML, inline, or as JSON Schema.

    >>> validator = CoordinationValidator(config={})
    >>> validator.validate({"name": "Ann"}, {"required_fields": ["name", "email"]}).errors[0].code
    'required'
    """

    def __init__(
        self,
        rules_path: str | os.PathLike[str] | None = None,
        *,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        debug: bool = False,
        schema_retriever: SchemaRetriever | None = None,
    ) -> None:
        self.config = resolve_config(config)
        # Resolves a raw schema's $ref to a document outside it (``uri -> schema``); without
        # one, no rule set ever fetches anything.
        self._retriever = schema_retriever
        self.rules_path = Path(
            rules_path if rules_path is not None else self.config.validation_rules_path
        )
        self._logger = component_logger("validation", debug=debug or self.config.debug)
        self._limits = MessageLimits.from_config(self.config)
        self._tree_is_clean = tree_checker(self._limits)
        self._enabled = self.config.enable_validation
        self._lock = threading.Lock()
        self._names = BoundedNames(self.config.max_operation_names, logger=self._logger)
        self._counters: dict[str, ReadableCount] = {}
        self._entries: dict[object, _Entry] = {}
        self._inline: OrderedDict[str, RuleSet] = OrderedDict()
        self._rule_sets: dict[str, RuleSet] = {}
        self._stats = FailureStats(self.config.max_operation_names, self._names.admit)
        self._failures = self._stats.pending
        self._load_error: str | None = None
        self._structure = self._new_entry(None, STRUCTURE_RULE_SET)
        self.reload_rules()

    # --- rule sets ----------------------------------------------------------------------

    @property
    def rule_set_names(self) -> list[str]:
        """The names of the rule sets loaded from ``rules_path``, sorted."""
        return sorted(self._rule_sets)

    def reload_rules(self) -> list[str]:
        """Read ``rules_path`` again; on any error the rules in use stay as they were.

        Returns the loaded names; raises ``RuleSetError`` naming file, line and problem.
        """
        try:
            loaded = load_rule_sets(self.rules_path, schema_retriever=self._retriever)
        except RuleSetError as exc:
            self._load_error = str(exc)
            self._logger.error(
                "rule sets not reloaded: %s",
                exc,
                extra=log_extra(rules_path=str(self.rules_path), error_type=type(exc).__name__),
            )
            raise
        with self._lock:
            # a new table swapped in whole: validations running meanwhile never miss a name
            entries = {k: e for k, e in self._entries.items() if not isinstance(k, str)}
            entries.update((name, self._new_entry(rs, name)) for name, rs in loaded.items())
            self._entries = entries
            self._rule_sets = loaded
            self._load_error = None
        self._logger.debug(
            "loaded %d rule sets from %s",
            len(loaded),
            self.rules_path,
            extra=log_extra(rules_path=str(self.rules_path), rule_sets=sorted(loaded)),
        )
        return sorted(loaded)

    def compile(self, rules: Mapping[str, Any], *, name: str | None = None) -> RuleSet:
        """``rules`` compiled once (vocabulary, ``required_fields`` or ``schema``).

        Raises ``RuleSetError`` naming the rule set, the field and the problem.
        """
        if not isinstance(rules, Mapping):
            raise RuleSetError(
                f"rules must be a mapping, not {type(rules).__name__}", field="rules"
            )
        if name is None:
            declared = rules.get("name")
            name = declared if isinstance(declared, str) else _inline_name(rules)
        return _compiled(rules, name=name, source=None, where=None, retriever=self._retriever)

    def rule_set(self, rule_set: RuleSetLike) -> RuleSet:
        """The compiled rule set for a loaded name, inline rules, a rule file or a RuleSet."""
        try:
            entry = self._entries[rule_set]
        except (KeyError, TypeError):
            entry = self._entry_for(rule_set)
        if entry.rule_set is None:  # only the structure entry has none, and it is not keyed
            raise RuleSetError(f"no rule set for {rule_set!r}", field="rule_set")
        return entry.rule_set

    def _new_entry(self, rule_set: RuleSet | None, name: str) -> _Entry:
        admitted = self._names.admit(name)
        counter = self._counters.setdefault(admitted, ReadableCount())
        return _Entry(rule_set, admitted, counter, self._limits)

    def _entry_for(self, rule_set: object) -> _Entry:
        """The slow lookup: a compiled RuleSet, inline rules, a path, or an unknown name."""
        if isinstance(rule_set, RuleSet):
            target = rule_set
        elif isinstance(rule_set, Mapping):
            target = self._inline_rule_set(rule_set)
        elif isinstance(rule_set, str):
            target = self._rule_set_by_name(rule_set)
        elif isinstance(rule_set, os.PathLike):
            target = self._rule_set_from_file(Path(os.fspath(rule_set)))
        else:
            raise RuleSetError(
                "rule_set must be a rule set name, a mapping of rules, a path or a RuleSet, "
                f"not {type(rule_set).__name__}",
                field="rule_set",
            )
        with self._lock:
            entry = self._entries.get(target)
            if entry is None:
                entry = self._new_entry(target, target.name)
                if len(self._entries) < 4 * self.config.max_operation_names:
                    self._entries[target] = entry
        return entry

    def _inline_rule_set(self, rules: Mapping[str, Any]) -> RuleSet:
        key = _rules_key(rules)
        if key is None:  # rules no JSON text can stand for: compiling says what is wrong
            return self.compile(rules)
        with self._lock:
            cached = self._inline.get(key)
            if cached is not None:
                self._inline.move_to_end(key)
                return cached
        rule_set = self.compile(rules)
        self._remember(key, rule_set)
        return rule_set

    def _remember(self, key: str, rule_set: RuleSet) -> None:
        with self._lock:
            self._inline[key] = rule_set
            if len(self._inline) > _INLINE_CACHE_SIZE:
                self._inline.popitem(last=False)

    def _rule_set_by_name(self, name: str) -> RuleSet:
        """A name that is not loaded: a rule file inside the rules folder, or an error.

        A str is never opened as a path of its own: names often come from data (an event
        type, a header), and ``"/etc/passwd"`` must not read that file. Only a relative
        file name (``*.yaml``/``*.yml``) that stays inside ``rules_path`` is read; any
        other file must be passed as a ``pathlib.Path``.
        """
        inside = self._file_in_rules_folder(name)
        if inside is not None:
            return self._rule_set_from_file(inside)
        known = self.rule_set_names
        close = difflib.get_close_matches(name, known, n=1) if len(name) <= 200 else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RuleSetError(
            f"unknown rule set {safe_repr(name, 80)}{hint}; loaded from {self.rules_path}: "
            f"{truncate(', '.join(known), 400) or 'none'} (a rule file elsewhere is passed as "
            "a pathlib.Path)",
            field="rule_set",
            value=truncate(name, 200),
        )

    def _file_in_rules_folder(self, name: str) -> Path | None:
        relative = PurePath(name)
        if (
            relative.is_absolute()
            or relative.anchor
            or ".." in relative.parts
            or relative.suffix not in RULE_FILE_SUFFIXES
            or "\x00" in name
            or lone_surrogate_at(name) is not None
        ):
            return None
        try:
            root = self.rules_path.resolve()
            candidate = (root / relative).resolve()
            if not root.is_dir() or not candidate.is_relative_to(root) or not candidate.is_file():
                return None
        except (OSError, ValueError):  # too long, unreadable folder, ...
            return None
        return candidate

    def _rule_set_from_file(self, path: Path) -> RuleSet:
        try:
            is_file = path.is_file()
            mtime = path.stat().st_mtime_ns if is_file else 0
        except (OSError, ValueError) as exc:
            raise RuleSetError(f"cannot read rule file {path}: {exc}", source=str(path)) from exc
        if not is_file:
            raise RuleSetError(
                f"rule file {path} does not exist (or is not a file)", source=str(path)
            )
        key = f"path:{path.resolve()}:{mtime}"
        with self._lock:
            cached = self._inline.get(key)
        if cached is not None:
            return cached
        loaded = load_rule_sets(path, schema_retriever=self._retriever)
        if len(loaded) != 1:
            raise RuleSetError(
                f"rule file {path} holds {len(loaded)} rule sets ({', '.join(loaded)}); "
                "load it as rules_path and pick one by name",
                source=str(path),
            )
        found = next(iter(loaded.values()))
        self._remember(key, found)
        return found

    # --- validating ---------------------------------------------------------------------

    def validate(self, data: Any, rule_set: RuleSetLike) -> ValidationResult:
        """``data`` checked against ``rule_set``: a mapping of rules, a ``RuleSet``, a rule
        file as a ``pathlib.Path``, or a ``str``, which names a loaded rule set or a
        ``*.yaml``/``*.yml`` file inside ``rules_path`` and is never opened as a path
        otherwise.

        The message is first checked for depth, cycles, sizes, number sizes, valid Unicode
        and JSON-compatibility; anything wrong with ``data`` is an issue of the result.
        Rule sets written in the vocabulary check mappings; a ``schema:`` rule set checks
        any JSON value (an array, a string, a number, null) as JSON Schema says.
        Raises ``RuleSetError`` only for a rule set that cannot be found or compiled.
        """
        try:
            entry = self._entries[rule_set]
        except (KeyError, TypeError):
            entry = self._entry_for(rule_set)
        if not self._enabled:
            return _VALID
        rules = entry.rule_set
        if data.__class__ is dict and rules is not None and entry.is_clean(data):
            if rules.is_valid(data):
                next(entry.valid)
                return _VALID
            return self._failed(entry, rules.dict_issues(data, self._limits.fail_fast))
        return self._validate_slowly(data, entry)

    def validate_message_structure(
        self, data: Any, rules: RuleSetLike | None = None
    ) -> ValidationResult:
        """With ``rules``, the same as ``validate``. Without, only the message's shape:
        a mapping with string keys and JSON-compatible values within the size limits."""
        if rules is not None:
            return self.validate(data, rules)
        if not self._enabled:
            return _VALID
        entry = self._structure
        if data.__class__ is dict and entry.is_clean(data):  # flat and in limits: valid
            next(entry.valid)
            return _VALID
        return self._validate_slowly(data, entry)

    def ensure_valid(self, data: Any, rule_set: RuleSetLike) -> None:
        """Raise ``ValidationError`` (carrying every issue) unless ``data`` is valid."""
        result = self.validate(data, rule_set)
        if not result.is_valid:
            raise ValidationError(result.errors, rule_set=result.rule_set)

    def _validate_slowly(self, data: Any, entry: _Entry) -> ValidationResult:
        rules = entry.rule_set
        name = rules.name if rules else STRUCTURE_RULE_SET
        if data.__class__ is dict and self._tree_is_clean(data):
            issues: list[ValidationIssue] = []  # nothing check_structure would find
        else:
            issues = check_structure(
                data,
                self._limits,
                rule_set=name,
                is_secret_path=rules.is_secret_path if rules else _secret_by_name,
                require_mapping=rules is None or not rules.raw,
            )
        if not issues and rules is not None and not rules.is_valid(data):
            issues = rules.issues(data, fail_fast=self._limits.fail_fast)
        if not issues:
            next(entry.valid)
            return _VALID
        return self._failed(entry, issues)

    def _failed(self, entry: _Entry, issues: list[ValidationIssue]) -> ValidationResult:
        name = entry.rule_set.name if entry.rule_set else STRUCTURE_RULE_SET
        errors = tuple(issues)
        # FailureStats.record, inlined: the invalid path's bookkeeping is one C-level append
        pending = self._failures
        pending.append((now(), entry.name, name, errors))
        if len(pending) >= FAILURE_BATCH:
            self._stats.flush()
        if self._logger.isEnabledFor(logging.DEBUG):
            text = "; ".join(map(str, errors))
            self._logger.debug(
                "validation against %r failed: %s",
                name,
                text,
                extra=log_extra(rule_set=name, issues=len(errors)),
            )
        # invalid_result(errors, name), inlined: one call fewer on the invalid path
        result: ValidationResult = _new_result(ValidationResult)
        result._is_valid = False
        result._errors = errors
        result._rule_set = name
        return result

    # --- reading state ------------------------------------------------------------------

    def get_validation_report(self) -> dict[str, Any]:
        """Totals, counts per rule set, code and field, and recent failures (redacted):
        ``status``, ``rule_sets`` (the names loaded from files), ``total_validations``,
        ``valid``, ``invalid``, ``by_rule_set`` (``{name: {"valid": n, "invalid": n}}``),
        ``by_error_code``, ``by_field``, ``failures_by_rule_set_and_code``
        (``[{"rule_set", "code", "count"}]``, most frequent first), ``recent_failures``
        (``[{"timestamp", "rule_set", "errors", "error_count"}]``, newest last) and
        ``limits``."""
        stats = self._stats
        stats.flush()
        with self._lock:
            valid = {name: count_value(counter) for name, counter in self._counters.items()}
        invalid = dict(stats.invalid)
        report: dict[str, Any] = {
            "status": self._status(),
            "rule_sets": sorted(self._rule_sets),
            "by_error_code": stats.by_error_code(),
            "by_field": dict(stats.by_field),
            "failures_by_rule_set_and_code": [
                {"rule_set": rs, "code": code, "count": count}
                for (rs, code), count in stats.by_rule_set_and_code.most_common()
            ],
            "recent_failures": stats.recent(),
        }
        names = sorted(set(valid) | set(invalid))
        report["by_rule_set"] = {
            n: {"valid": valid.get(n, 0), "invalid": invalid.get(n, 0)}
            for n in names
            if valid.get(n, 0) or invalid.get(n, 0)
        }
        report["valid"] = sum(valid.values())
        report["invalid"] = sum(invalid.values())
        report["total_validations"] = report["valid"] + report["invalid"]
        report["limits"] = {
            "max_depth": self._limits.max_depth,
            "max_string_length": self._limits.max_string_length,
            "max_items": self._limits.max_items,
            "fail_fast": self._limits.fail_fast,
        }
        return report

    def get_health_status(self) -> dict[str, Any]:
        """``{"status": ...}``: DEGRADED while the last reload of rule files failed.

        ``rule_sets`` counts every rule set this validator knows: loaded from
        ``rules_path`` or compiled elsewhere (route rules, decorators, events) and used;
        ``loaded_rule_sets`` those from files; ``validations`` the messages checked.
        """
        self._stats.flush()
        with self._lock:
            entries = list(self._entries.values())
            counters = list(self._counters.values())
        in_use = {e.name for e in entries if e.rule_set is not None} | set(self._rule_sets)
        status: dict[str, Any] = {
            "status": self._status(),
            "enabled": self._enabled,
            "rule_sets": len(in_use),
            "loaded_rule_sets": len(self._rule_sets),
            "validations": sum(map(count_value, counters)) + sum(self._stats.invalid.values()),
        }
        if self._load_error:
            status["error"] = self._load_error
        return status

    def _status(self) -> HealthStatus:
        return HealthStatus.DEGRADED if self._load_error else HealthStatus.HEALTHY


def load_rule_sets(
    path: str | os.PathLike[str], *, schema_retriever: SchemaRetriever | None = None
) -> dict[str, RuleSet]:
    """Every rule set in the file or folder ``path``, compiled; {} when it does not exist."""
    loaded: dict[str, RuleSet] = {}
    for file in rule_files(path):
        for rule_set in compile_rule_file(file, schema_retriever=schema_retriever):
            if rule_set.name in loaded:
                raise RuleSetError(
                    f"rule set {rule_set.name!r} at {rule_set.source} is already defined at "
                    f"{loaded[rule_set.name].source}",
                    source=rule_set.source,
                )
            loaded[rule_set.name] = rule_set
    return loaded


def compile_rule_file(
    file: Path, *, schema_retriever: SchemaRetriever | None = None
) -> list[RuleSet]:
    """The rule sets written in one file, compiled (``RuleSetError`` on the first problem)."""
    compiled: list[RuleSet] = []
    for source in read_rule_sources(file):
        where = f"{source.file}, line {source.line}" if source.line else source.file
        name = source.rules.get("name", source.default_name)
        if not isinstance(name, str) or not name:
            raise RuleSetError(
                f"rule set at {where} needs a 'name' (a non-empty string)", source=where
            )
        if any(r.name == name for r in compiled):
            raise RuleSetError(f"rule set {name!r} at {where} is defined twice", source=where)
        compiled.append(
            _compiled(
                source.rules, name=name, source=source.file, where=where, retriever=schema_retriever
            )
        )
    return compiled


def _compiled(
    rules: Mapping[Any, Any],
    *,
    name: str,
    source: str | None,
    where: str | None,
    retriever: SchemaRetriever | None,
) -> RuleSet:
    """``rules`` compiled; whatever is wrong with them is a ``RuleSetError``, never another
    exception (rules may come from hostile or generated input, like messages)."""
    try:
        compiled = compile_rules(rules, name=name, source=source)
        return RuleSet(name, compiled, source=where, retriever=retriever)
    except RuleSetError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # a huge int or a lone surrogate the engine cannot read, keys of mixed types, ...
        raise RuleSetError(
            f"rule set {safe_repr(name, 80)} ({source or 'inline rules'}): cannot compile: "
            f"{type(exc).__name__}: {truncate(str(exc), 200)}",
            source=where or source,
        ) from exc


def _rules_key(rules: Mapping[str, Any]) -> str | None:
    """Inline rules as canonical JSON text (the cache key), or None when they have none."""
    try:
        return json.dumps(rules, sort_keys=True, default=repr)
    except (ValueError, TypeError, RecursionError):
        return None


def _inline_name(rules: Mapping[str, Any]) -> str:
    key = _rules_key(rules)
    if key is None:
        return "inline"
    digest = hashlib.sha1(key.encode(errors="surrogatepass"), usedforsecurity=False).hexdigest()
    return f"inline-{digest[:8]}"
