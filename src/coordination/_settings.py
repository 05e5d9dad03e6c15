"""Every setting of the library, declared once: name, type, default, check, doc, variable.

``CoordinationConfig``'s fields (code, YAML, ``COORDINATION_*`` variables) and the
per-call options of ``handle_errors`` / ``execute_with_error_handling`` are both read from
the ``SETTINGS`` below, so a value is accepted or refused the same way, in the same words,
wherever it enters::

    invalid window_size = 0 from keyword argument: must be at least 1
    invalid window_size = '0' from environment variable COORDINATION_WINDOW_SIZE: must be at least 1
    invalid window_size = 0 from config/coordination.yaml, line 3: must be at least 1

Each setting has one spelling; an old one (``aliases``) is still accepted, for one
release, with a ``DeprecationWarning`` naming the new one.

>>> SETTINGS["window_size"].default
100
>>> SETTINGS["window_size"].coerce(0, "keyword argument")
Traceback (most recent call last):
...
coordination._errors.ConfigError: invalid window_size = 0 from keyword argument: must be at least 1
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._operations import ANNOTATION, EMPTY, parse_operations_text, read_operations
from ._quote import quote
from ._rate import read_rate_limit, read_route_limits
from ._threshold_grammar import THRESHOLD_KEYS, read_operation_thresholds

__all__ = [
    "ALIASES",
    "BREAKER_MODES",
    "CONCURRENCY_ALGORITHMS",
    "JITTER_KINDS",
    "MAX_SECONDS",
    "SETTINGS",
    "SEVERITIES",
    "Setting",
    "canonical_name",
    "default_of",
    "read_hedge_after",
]

JITTER_KINDS = ("none", "full", "equal", "decorrelated")
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
WINDOW_TYPES = ("count", "time")
BREAKER_MODES = ("normal", "metrics_only", "disabled")
CONCURRENCY_ALGORITHMS = ("gradient2", "vegas", "aimd")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")
# A dead-letter namespace: a row value in a shared store, kept short and printable.
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}\Z")
ENVIRONMENT_PREFIX = "COORDINATION_"
# How the middleware names a client: its address, or a header (an RFC 9110 token name).
_CLIENT_KEY = re.compile(r"^(address|header:[!#$%&'*+\-.^_`|~0-9A-Za-z]+)$")
# ``tuple``: dotted class names ("myapp.errors.Declined"), the data form of trip_on & co.
_KINDS = {bool: "bool", int: "int", float: "float", str: "str", tuple: "tuple[str, ...]"}
_EXPECTED = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    tuple: "dotted class names (a list, or one string with commas)",
}
# One dotted name: a module path and the class in it ("builtins.LookupError").
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_MAX_NAMES = 64  # class names one setting may hold (bounded input)
# hedge_after's percentile form: "p95", "p99", "p99.9" (of the operation's own latencies)
# (three digits, so that "p100" is told the range rather than the grammar)
_PERCENTILE = re.compile(r"^p(\d{1,3}(\.\d{1,3})?)$")
_MAX_NAME_LENGTH = 200
# The longest duration any setting takes (about 11.6 days). Longer is a typo (ms for s),
# and past what a thread's wait accepts on some platforms (threading.TIMEOUT_MAX is
# about 49.7 days on Windows): 1e300 reached ``Event.wait`` as an OverflowError.
MAX_SECONDS = 1_000_000.0


def read_class_names(value: str | Sequence[str]) -> tuple[str, ...]:
    """Dotted class names, from a comma-separated string or a list of strings: checked for
    their grammar only (they are imported when a plan is built, not here).

    >>> read_class_names("builtins.LookupError, myapp.errors.Declined")
    ('builtins.LookupError', 'myapp.errors.Declined')
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    if isinstance(value, str) and not value.strip():
        raise ValueError("expected at least one dotted class name (an empty list names none)")
    if len(items) > _MAX_NAMES:
        raise ValueError(f"at most {_MAX_NAMES} class names, not {len(items)}")
    names: list[str] = []
    for position, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise ValueError(f"item {position} is not a string ({type(item).__name__})")
        name = item.strip()
        if len(name) > _MAX_NAME_LENGTH or not _DOTTED.match(name):
            raise ValueError(
                f"item {position} ({quote(name)}) is not a dotted class name such as "
                '"myapp.errors.Declined" (a built-in one: "builtins.LookupError")'
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def read_hedge_after(text: str) -> float | str:
    """``hedge_after``: seconds (a number greater than 0) or a percentile of the
    operation's own latencies ("p95", "p99", "p99.9"), answered as a float or as the
    percentile's name.

    >>> read_hedge_after("0.02"), read_hedge_after("p99")
    (0.02, 'p99')
    """
    stripped = text.strip().lower()
    match = _PERCENTILE.match(stripped)
    if match is not None:
        if not 0 < float(match.group(1)) < 100:
            raise ValueError("a percentile must be above p0 and below p100, such as p95")
        return stripped
    try:
        seconds = float(stripped)
    except ValueError:
        raise ValueError(
            "expected seconds (such as 0.05) or a percentile of the operation's latencies "
            '(such as "p95" or "p99")'
        ) from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError("seconds must be a finite number greater than 0")
    if seconds > MAX_SECONDS:
        raise ValueError(f"seconds must be at most {MAX_SECONDS:g}")
    return seconds


@dataclass(frozen=True, slots=True)
class Setting:
    """How one setting is parsed, checked and documented, wherever its value comes from."""

    name: str
    kind: type
    default: Any
    doc: str
    group: str
    env: str = ""  # "": COORDINATION_<NAME>
    optional: bool = False  # None ("none" in the environment) is a value: "not set"
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] | None = None
    fold_case: bool = False  # choices in any case (stored in the case of ``choices``)
    pattern: re.Pattern[str] | None = None
    pattern_hint: str = ""
    # A grammar of the value's own (a core parser): raises ValueError saying the problem.
    grammar: Callable[[str], object] | None = None
    per_call: bool = False  # also a per-call option of handle_errors & co, same name
    # Per call, None means "not set" (no timeout, ...) rather than "the configuration's".
    none_unsets: bool = False
    aliases: tuple[str, ...] = ()  # old spellings, accepted with a DeprecationWarning
    # A structured value (the operations: mapping) is read by its own reader:
    # (value, source, **where) -> the checked value, else ConfigError; JSON in the
    # environment. ``annotation`` is then its field's type.
    reader: Callable[..., Any] | None = None
    annotation: str = ""
    # A str setting that also takes a number (hedge_after: 0.05 or "p95"), kept as text.
    numbers_as_text: bool = False

    def __post_init__(self) -> None:
        if not self.env:
            object.__setattr__(self, "env", f"{ENVIRONMENT_PREFIX}{self.name.upper()}")

    @property
    def type_name(self) -> str:
        if self.annotation:
            return self.annotation
        base = _KINDS[self.kind]
        return f"{base} | None" if self.optional else base

    @property
    def alias_variables(self) -> tuple[str, ...]:
        return tuple(f"{ENVIRONMENT_PREFIX}{alias.upper()}" for alias in self.aliases)

    def coerce(self, value: Any, source: str) -> Any:
        """``value`` (from code or YAML) as this setting's type, checked; else ``ConfigError``."""
        if self.reader is not None:
            return self.reader(value, source)
        if self._plainly_valid(value):
            return value
        if value is None:
            if self.optional:
                return None
            raise self.error(value, source, f"expected {self.expected()}")
        if self.numbers_as_text and isinstance(value, int | float) and not isinstance(value, bool):
            value = repr(value)
        problem = self._type_problem(value)
        if problem is not None:
            raise self.error(value, source, problem)
        if self.kind is tuple:
            try:
                return read_class_names(value)
            except ValueError as exc:
                raise self.error(value, source, str(exc)) from None
        if self.kind is float:
            try:
                value = float(value)
            except OverflowError:  # an int too large for a float
                raise self.error(value, source, "expected a finite number") from None
        problem = self._range_problem(value)
        if problem is not None:
            raise self.error(value, source, problem)
        if self.fold_case:
            return value.strip().upper()
        return value

    def parse_text(self, text: str, source: str) -> Any:
        """``text`` (an environment variable's value) as this setting's type, checked."""
        stripped = text.strip()
        if self.reader is not None:
            return self.reader(parse_operations_text(text, source), source, data=True)
        if self.optional and stripped.lower() in ("", "none", "null"):
            return None
        if self.kind is tuple:  # comma-separated names
            try:
                return read_class_names(stripped)
            except ValueError as exc:
                raise self.error(text, source, str(exc)) from None
        try:
            if self.kind is bool:
                value: Any = _parse_bool(stripped)
            elif self.kind is int:
                value = int(stripped)
            elif self.kind is float:
                value = float(stripped)
            else:
                value = text
        except ValueError:
            raise self.error(text, source, f"expected {self.expected()}") from None
        problem = self._range_problem(value)
        if problem is not None:
            # Quote the variable's text as written, not the parsed number.
            raise self.error(text, source, problem)
        return value.strip().upper() if self.fold_case else value

    def check(self, value: Any, source: str) -> None:
        """Raise ``ConfigError`` unless ``value`` is of the right type and in range."""
        if self._plainly_valid(value):  # the common case, without building a message
            return
        problem = self.problem(value)
        if problem is not None:
            raise self.error(value, source, problem)

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, or None."""
        if self.reader is not None:
            try:
                self.reader(value, "value")
            except ConfigError as exc:
                return str(exc)
            return None
        if value is None:
            return None if self.optional else f"expected {self.expected()}"
        problem = self._type_problem(value)
        if problem is not None:
            return problem
        if self.kind is tuple:
            try:
                read_class_names(value)
            except ValueError as exc:
                return str(exc)
            return None
        if self.kind is float:
            try:
                value = float(value)
            except OverflowError:
                return "expected a finite number"
        return self._range_problem(value)

    def _plainly_valid(self, value: Any) -> bool:
        """True for a value of exactly the setting's type, in range, with no grammar to
        consult; False means "ask ``problem``", not "invalid"."""
        if value is None:
            return self.optional
        if self.reader is not None:
            return False
        kind = type(value)
        if kind is not self.kind or self.grammar is not None or self.pattern is not None:
            return False
        if kind is tuple:  # its names are read (and stripped) by read_class_names
            return False
        if kind is bool:
            return True
        if kind is str:
            return self.choices is None or (not self.fold_case and value in self.choices)
        if kind is float and not math.isfinite(value):
            return False
        low = self.minimum
        if low is not None and (value <= low if self.exclusive_minimum else value < low):
            return False
        return self.maximum is None or value <= self.maximum

    def _type_problem(self, value: Any) -> str | None:
        kind = self.kind
        ok = (
            (kind is bool and isinstance(value, bool))
            or (kind is int and isinstance(value, int) and not isinstance(value, bool))
            or (kind is float and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind is str and isinstance(value, str))
            or (kind is tuple and isinstance(value, str | list | tuple))
        )
        return None if ok else f"expected {self.expected()}"

    def _range_problem(self, value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        if self.minimum is not None:
            if self.exclusive_minimum and value <= self.minimum:
                return f"must be greater than {self.minimum:g}"
            if value < self.minimum:
                return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        if self.choices is not None:
            given = value.strip().upper() if self.fold_case else value
            if given not in self.choices:
                case = " (any case)" if self.fold_case else ""
                return f"must be one of {', '.join(self.choices)}{case}"
        if self.pattern is not None and not self.pattern.match(value):
            return f"expected {self.pattern_hint}"
        if self.grammar is not None:
            try:
                self.grammar(value)
            except ValueError as exc:
                return str(exc)
        return None

    def expected(self) -> str:
        what = _EXPECTED[self.kind]
        return f"{what} (or none)" if self.optional else what

    def error(self, value: Any, source: str, problem: str) -> ConfigError:
        return ConfigError(
            f"invalid {self.name} = {quote(value)} from {source}: {problem}",
            field=self.name,
            value=value,
            source=source,
        )


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(text)


def _seconds(name: str, default: float | None, doc: str, group: str, **more: Any) -> Setting:
    """A duration in seconds, at most ``MAX_SECONDS``; optional ones (default None) must
    be greater than 0."""
    if default is None:
        more.setdefault("optional", True)
        more.setdefault("exclusive_minimum", True)
    more.setdefault("maximum", MAX_SECONDS)
    return Setting(name, float, default, doc, group, minimum=0, **more)


def _fraction(name: str, doc: str, group: str, **more: Any) -> Setting:
    """An optional fraction in (0, 1]."""
    return Setting(
        name,
        float,
        None,
        doc,
        group,
        optional=True,
        minimum=0,
        exclusive_minimum=True,
        maximum=1,
        **more,
    )


_SPEC = "spec"
_RETRY = "retry"
_BREAKER = "circuit breaker"
_LIMITS = "timeout, bulkhead and rate limit"
_MONITOR = "performance monitoring"
_VALIDATION = "validation limits"
_EVENTS = "events"
_HTTP = "HTTP middleware"
_OBSERVE = "observability and endpoints"
_SCALE = "scale-out"
_RELOAD = "live reload"
_DIAGNOSTICS = "diagnostics"
_OPERATIONS = "per operation"
_EXPECTED[dict] = "a mapping"  # the operations: mapping (read by its reader)


def _read_operations(value: Any, source: str, **where: Any) -> Any:
    """The ``operations:`` mapping, each option checked by its per-call setting."""
    return read_operations(
        value, source, settings=SETTINGS, aliases=ALIASES, warn_renamed=warn_renamed, **where
    )


_DECLARED = (
    # --- the first nine fields (names, defaults, variables kept from the integration spec) ---
    Setting(
        "enable_validation",
        bool,
        True,
        "Validate inputs against rule sets; off turns validation into a no-op everywhere.",
        _SPEC,
    ),
    Setting(
        "validation_rules_path",
        str,
        "src/core/validation/rules",
        "File or folder of YAML rule sets loaded by CoordinationValidator "
        "(a missing path loads none).",
        _SPEC,
        env="COORDINATION_RULES_PATH",
    ),
    Setting(
        "max_retries",
        int,
        3,
        "Retries after the first attempt (3 means at most 4 calls).",
        _SPEC,
        minimum=0,
        per_call=True,
    ),
    _seconds("base_delay", 1.0, "Seconds to wait before the first retry.", _SPEC, per_call=True),
    Setting(
        "backoff_multiplier",
        float,
        2.0,
        "Each retry waits this many times longer than the one before.",
        _SPEC,
        minimum=1,
        per_call=True,
    ),
    Setting(
        "circuit_breaker_threshold",
        int,
        5,
        "Consecutive failures that open an operation's circuit breaker.",
        _SPEC,
        minimum=1,
        per_call=True,
    ),
    Setting(
        "enable_performance_monitoring",
        bool,
        True,
        "Record latency and outcomes; off turns monitoring into a no-op everywhere.",
        _SPEC,
        env="COORDINATION_ENABLE_PERFORMANCE",
    ),
    Setting(
        "collection_interval",
        float,
        5.0,
        "Seconds between resource samples taken by the monitor's background thread.",
        _SPEC,
        minimum=0,
        exclusive_minimum=True,
    ),
    Setting(
        "max_data_points",
        int,
        1000,
        "Resource samples (and windowed points) kept in memory at most.",
        _SPEC,
        minimum=1,
    ),
    # --- retry ---
    _seconds("max_delay", 60.0, "Cap on one backoff wait, in seconds.", _RETRY, per_call=True),
    Setting(
        "jitter",
        str,
        "full",
        "Randomisation of backoff waits: none, full (uniform 0..wait), equal "
        "(wait/2 + uniform 0..wait/2) or decorrelated.",
        _RETRY,
        choices=JITTER_KINDS,
        per_call=True,
    ),
    _seconds(
        "retry_time_budget",
        None,
        "Overall seconds a call may take with its retries, counted from the start of its "
        "first attempt: a retry whose wait would end past it is not made (none: no budget).",
        _RETRY,
        per_call=True,
        none_unsets=True,
    ),
    Setting(
        "retry_budget",
        float,
        None,
        "Retries (and hedged attempts) allowed as a fraction of an operation's calls over "
        "retry_budget_window, such as 0.2 for 20 %, above the floor of "
        "retry_budget_min_per_second; a failure past it is raised at once instead of "
        "retried. Shared by every process when redis_url is set (none: no budget).",
        _RETRY,
        optional=True,
        minimum=0,
        maximum=1,
        per_call=True,
        none_unsets=True,
    ),
    _seconds(
        "retry_budget_window",
        10.0,
        "Seconds of calls and retries the retry budget looks back over.",
        _RETRY,
        exclusive_minimum=True,
        per_call=True,
    ),
    Setting(
        "retry_budget_min_per_second",
        float,
        10.0,
        "Retries per second always allowed by the retry budget, however few calls there "
        "were, so a quiet operation can still retry.",
        _RETRY,
        minimum=0,
        per_call=True,
    ),
    Setting(
        "hedge_after",
        str,
        None,
        "For idempotent reads: start another attempt when the first has not answered after "
        'this many seconds, or after a percentile of the operation\'s own latencies ("p95", '
        '"p99"); the first success wins, the others are cancelled (none: no hedging).',
        _RETRY,
        optional=True,
        grammar=read_hedge_after,
        numbers_as_text=True,
        per_call=True,
        none_unsets=True,
    ),
    Setting(
        "max_hedged_attempts",
        int,
        1,
        "Hedged attempts a call may start beside its first (with hedge_after).",
        _RETRY,
        minimum=1,
        maximum=10,
        per_call=True,
    ),
    Setting(
        "error_severity",
        str,
        "MEDIUM",
        "How much an operation's failures matter: LOW, MEDIUM, HIGH or CRITICAL (any case); "
        "sets the log level of a final failure, and CRITICAL fires the alert hooks.",
        _RETRY,
        choices=SEVERITIES,
        fold_case=True,
        per_call=True,
    ),
    # --- circuit breaker ---
    Setting(
        "circuit_breaker_timeout",
        float,
        30.0,
        "Seconds an open breaker rejects calls before admitting trial calls.",
        _BREAKER,
        minimum=0,
        exclusive_minimum=True,
        per_call=True,
    ),
    Setting(
        "half_open_calls",
        int,
        1,
        "Trial calls a half-open breaker admits; all must succeed to close it.",
        _BREAKER,
        minimum=1,
        per_call=True,
        aliases=("circuit_breaker_half_open_calls",),
    ),
    _seconds(
        "half_open_max_wait",
        None,
        "Seconds a half-open breaker waits, from its first trial call, for its trials to "
        "conclude; not concluded by then, it opens again (none: circuit_breaker_timeout).",
        _BREAKER,
        per_call=True,
        none_unsets=True,
        aliases=("half_open_trial_timeout",),
    ),
    Setting(
        "open_backoff_multiplier",
        float,
        1.0,
        "Each re-open without closing in between keeps the breaker open this many times "
        "longer than the last (1: every open period lasts circuit_breaker_timeout).",
        _BREAKER,
        minimum=1,
        per_call=True,
    ),
    _seconds(
        "max_open_seconds",
        None,
        "Longest open period, however often the breaker re-opens (none: no cap; below "
        "circuit_breaker_timeout it shortens every open period).",
        _BREAKER,
        per_call=True,
        none_unsets=True,
    ),
    Setting(
        "breaker_mode",
        str,
        "normal",
        "normal (the breaker rejects calls while open), metrics_only (it counts, changes "
        "state and reports, but never rejects: what it would have rejected is counted) or "
        "disabled (no breaker at all).",
        _BREAKER,
        choices=BREAKER_MODES,
        per_call=True,
    ),
    _fraction(
        "failure_rate_threshold",
        "Failure rate (0..1] over the window at which the breaker also opens, "
        "resilience4j-style (none: consecutive failures only).",
        _BREAKER,
        per_call=True,
        none_unsets=True,
    ),
    _seconds(
        "slow_call_duration",
        None,
        "Seconds above which a call counts as slow for slow_call_rate_threshold "
        "(none: no call is slow).",
        _BREAKER,
        per_call=True,
        none_unsets=True,
    ),
    _fraction(
        "slow_call_rate_threshold",
        "Rate (0..1] of slow calls over the window at which the breaker opens "
        "(none: slowness never opens it).",
        _BREAKER,
        per_call=True,
        none_unsets=True,
    ),
    Setting(
        "window_type",
        str,
        "count",
        "The breaker's sliding window: count (the last window_size calls) or time "
        "(the last window_size seconds).",
        _BREAKER,
        choices=WINDOW_TYPES,
        per_call=True,
    ),
    Setting(
        "window_size",
        int,
        100,
        "Calls (or seconds, for a time window) the breaker's failure rates are taken over.",
        _BREAKER,
        minimum=1,
        per_call=True,
    ),
    Setting(
        "minimum_calls",
        int,
        10,
        "Outcomes the window must hold before a failure or slow-call rate can open the breaker.",
        _BREAKER,
        minimum=1,
        per_call=True,
    ),
    Setting(
        "trip_on",
        tuple,
        None,
        "Exception classes that count as failures for the breaker, as dotted names such as "
        '"myapp.errors.Unavailable" (comma-separated in the environment); any other '
        "exception counts as a success (none: every exception but this library's own "
        "verdicts and give_up_on's). In code also a type, a tuple of types or a predicate.",
        _BREAKER,
        optional=True,
        per_call=True,
    ),
    Setting(
        "breaker_ignores",
        tuple,
        None,
        "Exception classes that count as neither failure nor success (a 404, a business "
        'rule), as dotted names such as "builtins.LookupError"; they win over trip_on '
        "(none: no such class). In code also a type, a tuple of types or a predicate.",
        _BREAKER,
        optional=True,
        per_call=True,
    ),
    # --- timeout, bulkhead, rate limit ---
    _seconds(
        "timeout",
        None,
        "Seconds one attempt may take (none: no timeout).",
        _LIMITS,
        per_call=True,
        none_unsets=True,
        aliases=("operation_timeout",),
    ),
    Setting(
        "timeout_workers",
        int,
        None,
        "Worker threads of an operation's sync attempts with a timeout "
        "(none: max_concurrent, or max_concurrency with adaptive_concurrency, else "
        "min(32, CPUs + 4)).",
        _LIMITS,
        optional=True,
        minimum=1,
        per_call=True,
        none_unsets=True,
    ),
    Setting(
        "max_concurrent",
        int,
        None,
        "Bulkhead: concurrent calls allowed per operation (none: unlimited).",
        _LIMITS,
        optional=True,
        minimum=1,
        per_call=True,
    ),
    _seconds(
        "bulkhead_wait",
        0.0,
        "Seconds a call waits for a bulkhead slot before BulkheadFullError (0: none).",
        _LIMITS,
        per_call=True,
    ),
    Setting(
        "rate_limit",
        str,
        None,
        'Calls allowed per operation, such as "100/s", "20/m" or "5/10s", or several windows '
        'at once, such as "100/s;5000/h" (allowed only when every window allows it; none: '
        "unlimited).",
        _LIMITS,
        optional=True,
        grammar=read_rate_limit,
        per_call=True,
    ),
    _seconds(
        "rate_limit_wait",
        0.0,
        "Seconds a call may wait for a rate-limit permit, queued in the order calls arrive, "
        "before RateLimitExceeded (0: refuse at once).",
        _LIMITS,
        per_call=True,
    ),
    Setting(
        "adaptive_concurrency",
        bool,
        False,
        "Replace max_concurrent with a concurrency limit that follows the dependency's "
        "latency (concurrency_algorithm, between min_concurrency and max_concurrency, "
        "starting at min_concurrency); calls beyond it are refused with BulkheadFull, or "
        "wait up to bulkhead_wait.",
        _LIMITS,
        per_call=True,
    ),
    Setting(
        "concurrency_algorithm",
        str,
        "gradient2",
        "How the adaptive limit moves, as in Netflix's concurrency-limits: gradient2 "
        "(a long-term average latency against each window's, Gradient2Limit), vegas (the "
        "queue estimated from the fastest latency seen, VegasLimit) or aimd (one more while "
        "the limit is in use, a tenth less on a timeout or an overload answer, AIMDLimit).",
        _LIMITS,
        choices=CONCURRENCY_ALGORITHMS,
        per_call=True,
    ),
    Setting(
        "min_concurrency",
        int,
        1,
        "Lowest value of the adaptive concurrency limit, and where it starts: it climbs "
        "while latency holds, so the first latencies it learns are the unloaded ones.",
        _LIMITS,
        minimum=1,
        per_call=True,
    ),
    Setting(
        "max_concurrency",
        int,
        200,
        "Highest value of the adaptive concurrency limit.",
        _LIMITS,
        minimum=1,
        per_call=True,
    ),
    Setting(
        "concurrency_group",
        str,
        None,
        'Operations with the same group (such as "orders-db") share one adaptive limit, '
        "which sheds lower severities first: LOW before MEDIUM before HIGH, CRITICAL last "
        "(while a more severe call is about, LOW may fill 50 % of it, MEDIUM 70 %, HIGH "
        "85 %; none: the operation's own limit).",
        _LIMITS,
        optional=True,
        pattern=_GROUP_NAME,
        pattern_hint="a name of letters, digits and . _ - : (at most 100)",
        per_call=True,
        none_unsets=True,
    ),
    # --- performance monitoring ---
    Setting(
        "max_operation_names",
        int,
        1000,
        "Distinct operation names tracked; later names share the overflow name __overflow__.",
        _MONITOR,
        minimum=1,
    ),
    Setting(
        "latency_p95_threshold_ms",
        float,
        None,
        "p95 latency above which an operation is DEGRADED (none: no threshold).",
        _MONITOR,
        optional=True,
        minimum=0,
        exclusive_minimum=True,
    ),
    Setting(
        "latency_p99_threshold_ms",
        float,
        None,
        "p99 latency above which an operation is UNHEALTHY (none: no threshold).",
        _MONITOR,
        optional=True,
        minimum=0,
        exclusive_minimum=True,
    ),
    Setting(
        "error_rate_threshold",
        float,
        None,
        "Recent error rate (0..1) above which an operation is UNHEALTHY (none: no threshold).",
        _MONITOR,
        optional=True,
        minimum=0,
        maximum=1,
    ),
    Setting(
        "operation_thresholds",
        str,
        None,
        'Thresholds for named operations over the defaults above, such as "checkout: '
        'p95_ms=250 p99_ms=800 error_rate=0.05; search: p99_ms=1000" '
        f"(keys: {', '.join(THRESHOLD_KEYS)}).",
        _MONITOR,
        optional=True,
        grammar=read_operation_thresholds,
    ),
    # --- validation limits on messages (checked before any rule runs) ---
    Setting(
        "validation_max_depth",
        int,
        64,
        "Deepest nesting of mappings and lists a message may have.",
        _VALIDATION,
        minimum=1,
    ),
    Setting(
        "validation_max_string_length",
        int,
        1_000_000,
        "Longest string (in characters) a message may contain.",
        _VALIDATION,
        minimum=1,
    ),
    Setting(
        "validation_max_items",
        int,
        100_000,
        "Most entries one mapping or list in a message may have.",
        _VALIDATION,
        minimum=1,
    ),
    Setting(
        "validation_fail_fast",
        bool,
        False,
        "Stop at the first validation error instead of collecting all.",
        _VALIDATION,
    ),
    # --- events ---
    Setting(
        "dead_letter_path",
        str,
        None,
        'Where events that could not be processed are kept: a SQLite file (":memory:" '
        "keeps them in memory only; none: dead-letters.sqlite3 in the platform's state "
        "directory, ~/.local/state/coordination on Linux), or a postgresql:// URL for a "
        "store every host of a fleet shares (the postgres extra).",
        _EVENTS,
        optional=True,
    ),
    Setting(
        "dead_letter_namespace",
        str,
        "default",
        "Keeps services apart in a shared (PostgreSQL) dead-letter store: each sees, "
        "replays and purges only its own namespace's letters.",
        _EVENTS,
        pattern=_NAMESPACE,
        pattern_hint="1-64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
    ),
    # --- HTTP middleware: structural request limits (checked before the app runs) ---
    Setting(
        "max_request_body_bytes",
        int,
        10_485_760,
        "Largest request body the WSGI/ASGI middleware lets through (larger: 413).",
        _HTTP,
        minimum=0,
    ),
    Setting(
        "max_header_bytes",
        int,
        32_768,
        "Largest total size of a request's header names and values (larger: 431).",
        _HTTP,
        minimum=1,
    ),
    Setting(
        "map_resilience_errors",
        bool,
        True,
        "Answer resilience errors raised inside the app as problem+json: an open circuit "
        "or a full bulkhead 503, a spent rate limit 429 (both with Retry-After), a "
        "timeout 504 (off: they reach the framework's own error handling).",
        _HTTP,
    ),
    Setting(
        "client_rate_limit",
        str,
        None,
        'Requests allowed per client through the WSGI/ASGI middleware, such as "100/s" or '
        '"600/m", or several windows such as "100/s;5000/h" (none: unlimited); beyond it: 429 '
        "with Retry-After. Shared through Redis when redis_url is set.",
        _HTTP,
        optional=True,
        grammar=read_rate_limit,
    ),
    Setting(
        "client_rate_limit_key",
        str,
        "address",
        'How the middleware tells clients apart for client_rate_limit: "address" (the peer '
        'address) or "header:<Name>", such as "header:X-API-Key" (its value is hashed, '
        "never stored; requests without the header fall back to their address).",
        _HTTP,
        pattern=_CLIENT_KEY,
        pattern_hint='"address" or "header:<Name>", such as "header:X-API-Key"',
    ),
    Setting(
        "route_limits",
        str,
        None,
        "Requests allowed per client on each route template through the WSGI/ASGI "
        'middleware, such as "POST /orders=5/s, GET /items/{id}=100/s;5000/h" (in code the '
        'middleware also takes a mapping, {"POST /orders": "5/s"}); a key without a method '
        "applies to every method; beyond it: 429 with Retry-After. Shared through Redis "
        "when redis_url is set.",
        _HTTP,
        optional=True,
        grammar=read_route_limits,
    ),
    Setting(
        "rate_limit_headers",
        str,
        "rejected",
        "When the middleware sends the RateLimit-Policy / RateLimit headers of its client "
        'and route limits: "rejected" (on a 429), "always" (on every response of a limited '
        'request) or "never".',
        _HTTP,
        choices=("rejected", "always", "never"),
    ),
    Setting(
        "rate_limit_header_style",
        str,
        "ietf",
        'Which rate-limit headers: "ietf" (RateLimit-Policy and RateLimit, '
        'draft-ietf-httpapi-ratelimit-headers), "x-ratelimit" (X-RateLimit-Limit, '
        '-Remaining and -Reset, of the window with the least left) or "both".',
        _HTTP,
        choices=("ietf", "x-ratelimit", "both"),
    ),
    Setting(
        "app_adaptive_concurrency",
        bool,
        False,
        "Put one adaptive concurrency limit in front of the whole app in the WSGI/ASGI "
        "middleware (load shedding): requests beyond it (after waiting up to bulkhead_wait) "
        "get 503 with Retry-After; it moves by concurrency_algorithm between "
        "min_concurrency and max_concurrency.",
        _HTTP,
    ),
    # --- observability and built-in HTTP endpoints ---
    Setting(
        "expose_endpoints",
        bool,
        False,
        "Serve the metrics, health and status-page endpoints from the middleware.",
        _OBSERVE,
    ),
    Setting("metrics_path", str, "/metrics", "Path of the Prometheus metrics endpoint.", _OBSERVE),
    Setting(
        "health_path",
        str,
        "/health",
        "Path of the health endpoint (with /live and /ready below it).",
        _OBSERVE,
    ),
    Setting("status_page_path", str, "/coordination", "Path of the live status page.", _OBSERVE),
    Setting(
        "health_details",
        bool,
        False,
        "Show component details in the /health document (off: status only).",
        _OBSERVE,
    ),
    _seconds("health_cache_seconds", 1.0, "Seconds a health check's result is reused.", _OBSERVE),
    Setting(
        "health_check_timeout",
        float,
        2.0,
        "Seconds a custom health check may take before it counts as failed.",
        _OBSERVE,
        minimum=0,
        exclusive_minimum=True,
        maximum=MAX_SECONDS,
    ),
    # --- scale-out ---
    Setting(
        "redis_url",
        str,
        None,
        "Redis URL for shared breaker state and rate limits (none: state stays in-process).",
        _SCALE,
        optional=True,
    ),
    Setting(
        "redis_namespace",
        str,
        "coordination",
        "Prefix of every Redis key this library writes.",
        _SCALE,
    ),
    Setting(
        "redis_outage_policy",
        str,
        "local",
        "What shared breakers and rate limits do while Redis is unreachable: local (use "
        "this process's own state), allow (admit every call) or raise (StoreError).",
        _SCALE,
        choices=("local", "allow", "raise"),
    ),
    Setting(
        "redis_cluster",
        bool,
        False,
        "Treat redis_url as one node of a Redis Cluster: breakers and rate limits go "
        "through redis-py's cluster client, each script to the master of its keys' slot.",
        _SCALE,
    ),
    # --- live reload ---
    _seconds(
        "config_watch_interval",
        None,
        "Seconds between checks of the config file and the rule files for changes (mtime "
        "and size, then SHA-256); a change that held still for one interval reloads them "
        "as reload_config() does, a daemon thread of the Coordination set (none: no "
        "watching).",
        _RELOAD,
    ),
    Setting(
        "reload_on_sighup",
        bool,
        False,
        "Reload the config file and the rule files on SIGHUP, as reload_config() does "
        "(installed when the Coordination set is made on the main thread; the handler it "
        "replaced is restored on close()).",
        _RELOAD,
    ),
    # --- diagnostics ---
    Setting(
        "debug",
        bool,
        False,
        "Turn on DEBUG logging for every component's coordination.* logger.",
        _DIAGNOSTICS,
    ),
    # --- per operation: the per-call settings again, for named operations ---
    Setting(
        "operations",
        dict,
        EMPTY,
        "Per-call options of named operations, over the settings above and under the "
        "options the code gives for the operation, such as "
        '{"payments": {"max_retries": 5, "timeout": 2}} (in the environment: JSON; '
        "see Per-operation settings).",
        _OPERATIONS,
        reader=_read_operations,
        annotation=ANNOTATION,
    ),
)

SETTINGS: Mapping[str, Setting] = {setting.name: setting for setting in _DECLARED}
# Old spelling -> the setting it names now.
ALIASES: Mapping[str, Setting] = {
    alias: setting for setting in _DECLARED for alias in setting.aliases
}
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def default_of(name: str) -> Any:
    """The default of setting ``name`` (the one place defaults are written)."""
    return SETTINGS[name].default


def canonical_name(key: str, source: str) -> str | None:
    """``key``'s setting name: itself, or (with a ``DeprecationWarning``) the new spelling
    of an old one; None when ``key`` names no setting."""
    if key in SETTINGS:
        return key
    setting = ALIASES.get(key)
    if setting is None:
        return None
    warn_renamed(key, setting.name, source)
    return setting.name


def warn_renamed(old: str, new: str, source: str) -> None:
    """The ``DeprecationWarning`` for an old spelling, pointing at the caller's line."""
    message = (
        f"{old!r} (in {source}) is deprecated and will be removed in the next release: use {new!r}"
    )
    if sys.version_info >= (3, 12):
        warnings.warn(message, DeprecationWarning, skip_file_prefixes=(_PACKAGE_DIR,))
    else:  # pragma: no cover - exercised on 3.11 only
        warnings.warn(message, DeprecationWarning, stacklevel=_outside_level())


def _outside_level() -> int:
    """The ``stacklevel`` of the first caller outside this package (3.11 has no
    ``skip_file_prefixes``); walked only when an old spelling is used."""
    import inspect  # only here: the module is not small, and this runs on 3.11 only

    level, frame = 1, inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # warn_renamed's own frame
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        level += 1
        frame = frame.f_back
    return level
