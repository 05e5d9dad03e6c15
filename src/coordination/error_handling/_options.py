"""The keys of ``handle_errors(...)``, ``error_config`` dicts and per-call overrides.

They are resolved once, when a function is decorated or an operation's plan is built,
over the handler's ``CoordinationConfig``; a wrong key or value raises ``ConfigError``
naming it (with a did-you-mean hint for typos), never a traceback from inside a call.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._config import CoordinationConfig, check_concurrency_bounds
from .._errors import ConfigError
from .._quote import quote
from .._rate import Rate, RateLimit
from .._settings import ALIASES, SETTINGS, Setting, read_hedge_after, warn_renamed
from ._backends import BreakerSettings
from ._details import RetryHook, RetryWait, as_hooks, as_wait
from ._outcomes import NO_RULES, Counting, ErrorTest, error_test, imported_classes, is_code_form
from ._retry import Backoff, ErrorMatcher, as_matcher
from ._severity import ErrorSeverity

__all__ = ["CALL_ONLY_OPTIONS", "MISSING", "OPTION_KEYS", "Options", "resolve_options"]

MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<no fallback>"})()

# Per-call options that are no setting of the configuration: code, not data.
CALL_ONLY_OPTIONS: Mapping[str, str] = {
    "retry_on": "an exception type, a tuple of them, or a predicate: the errors retried",
    "give_up_on": "an exception type, a tuple of them, or a predicate: never retried",
    "retry_if_result": "a predicate on the result: true retries the call",
    "trip_if_result": "a predicate on the result: true records a failure with the breaker",
    "fallback": "a value, or a callable given a FallbackDetails, answering after the last failure",
    "wait": "a callable given a RetryDetails, returning the seconds before the retry (None: "
    "the backoff's); replaces the backoff, a Retry-After hint still comes first",
    "on_retry": "a callable given a RetryDetails, or a sequence of them: run before each "
    "retry's wait",
    "operation_name": "the operation's name (default: the function's qualified name)",
}
# The settings that are also per-call options, under the same name (the schema says which).
_PER_CALL: Mapping[str, Setting] = {s.name: s for s in SETTINGS.values() if s.per_call}
_OLD_PER_CALL: Mapping[str, Setting] = {
    old: setting for old, setting in ALIASES.items() if setting.per_call
}
OPTION_KEYS = frozenset(_PER_CALL) | frozenset(CALL_ONLY_OPTIONS)
# Settings whose per-call value may also be code (a class, classes, a predicate).
_RULES = frozenset({"trip_on", "breaker_ignores"})
_SOURCE = "keyword argument"


@dataclass(frozen=True, slots=True)
class Options:
    """Everything one operation's pipeline needs, checked."""

    max_retries: int
    severity: ErrorSeverity
    backoff: Backoff
    retry_on: ErrorMatcher | None
    give_up_on: ErrorMatcher | None
    retry_if_result: Callable[[Any], bool] | None
    time_budget: float | None
    timeout: float | None
    timeout_workers: int | None
    max_concurrent: int | None
    bulkhead_wait: float
    fallback: Any
    rate_limit: RateLimit | None
    rate_limit_wait: float
    breaker: BreakerSettings
    wait: RetryWait | None = None
    on_retry: tuple[RetryHook, ...] = ()
    counting: Counting = NO_RULES  # what the breaker counts (_outcomes)
    # retry budget (none: no budget), hedging (none: no hedging), adaptive concurrency
    retry_budget: float | None = None
    retry_budget_window: float = 10.0
    retry_budget_min_per_second: float = 10.0
    hedge_after: float | str | None = None  # seconds, or a percentile's name ("p95")
    max_hedged_attempts: int = 1
    adaptive_concurrency: bool = False
    concurrency_algorithm: str = "gradient2"
    min_concurrency: int = 1
    max_concurrency: int = 200
    concurrency_group: str | None = None


def resolve_options(config: CoordinationConfig, overrides: Mapping[str, Any]) -> Options:
    """The checked options of one operation: ``overrides`` over ``config``.

    Each setting is checked by its declaration in the schema, so a value is refused here
    exactly as (and in the same words as) in the configuration. ``None`` for a setting
    means "the configuration's value", except for those where it means "not set"
    (``timeout``, ``retry_time_budget``, ...: the schema's ``none_unsets``).
    """
    given: dict[str, Any] = {}
    rules: dict[str, ErrorTest | None] = {}  # trip_on & co. given in code, per call
    for key, value in overrides.items():
        setting = _PER_CALL.get(key)
        if setting is None:
            if key in CALL_ONLY_OPTIONS:
                continue
            setting = _old_or_unknown(key, value)
        if value is None and not setting.none_unsets:
            continue
        if isinstance(value, Rate | RateLimit) and setting.name == "rate_limit":
            given["rate_limit"] = value  # a Rate / RateLimit is accepted per call as it is
            continue
        if setting.name in _RULES and is_code_form(value):
            rules[setting.name] = error_test(value, setting.name)
            continue
        given[setting.name] = setting.coerce(value, _SOURCE)

    def get(name: str) -> Any:
        return given[name] if name in given else getattr(config, name)

    result_predicate = _result_predicate(overrides, "retry_if_result")

    def rule(name: str) -> ErrorTest | None:
        if name in rules:
            return rules[name]
        names = get(name)  # checked dotted names, imported now
        source = _SOURCE if name in given else "the configuration"
        return None if names is None else imported_classes(names, name, source)

    trip_predicate = _result_predicate(overrides, "trip_if_result")
    check_concurrency_bounds(
        get("min_concurrency"),
        get("max_concurrency"),
        get("adaptive_concurrency"),
        _SOURCE if "min_concurrency" in given else "the configuration",
        _SOURCE if "max_concurrency" in given else "the configuration",
    )
    rate = get("rate_limit")
    hedge_after = get("hedge_after")
    return Options(
        max_retries=get("max_retries"),
        severity=ErrorSeverity(get("error_severity")),
        backoff=Backoff(
            base_delay=get("base_delay"),
            multiplier=get("backoff_multiplier"),
            max_delay=get("max_delay"),
            jitter=get("jitter"),
        ),
        retry_on=as_matcher(overrides.get("retry_on"), "retry_on"),
        give_up_on=as_matcher(overrides.get("give_up_on"), "give_up_on"),
        retry_if_result=result_predicate,
        time_budget=get("retry_time_budget"),
        timeout=get("timeout"),
        timeout_workers=get("timeout_workers"),
        max_concurrent=get("max_concurrent"),
        bulkhead_wait=get("bulkhead_wait"),
        fallback=overrides.get("fallback", MISSING),
        rate_limit=None if rate is None else RateLimit.parse(rate),
        rate_limit_wait=get("rate_limit_wait"),
        breaker=BreakerSettings(
            failure_threshold=get("circuit_breaker_threshold"),
            open_seconds=get("circuit_breaker_timeout"),
            half_open_calls=get("half_open_calls"),
            half_open_max_wait=get("half_open_max_wait"),
            open_backoff_multiplier=get("open_backoff_multiplier"),
            max_open_seconds=get("max_open_seconds"),
            mode=get("breaker_mode"),
            failure_rate_threshold=get("failure_rate_threshold"),
            slow_call_duration=get("slow_call_duration"),
            slow_call_rate_threshold=get("slow_call_rate_threshold"),
            window_type=get("window_type"),
            window_size=get("window_size"),
            minimum_calls=get("minimum_calls"),
        ),
        wait=as_wait(overrides.get("wait"), _SOURCE),
        on_retry=as_hooks(overrides.get("on_retry"), _SOURCE),
        counting=Counting(
            trip_on=rule("trip_on"),
            breaker_ignores=rule("breaker_ignores"),
            give_up_on=error_test(overrides.get("give_up_on"), "give_up_on"),
            trip_if_result=trip_predicate,
        ),
        retry_budget=get("retry_budget"),
        retry_budget_window=get("retry_budget_window"),
        retry_budget_min_per_second=get("retry_budget_min_per_second"),
        hedge_after=None if hedge_after is None else read_hedge_after(hedge_after),
        max_hedged_attempts=get("max_hedged_attempts"),
        adaptive_concurrency=get("adaptive_concurrency"),
        concurrency_algorithm=get("concurrency_algorithm"),
        min_concurrency=get("min_concurrency"),
        max_concurrency=get("max_concurrency"),
        concurrency_group=get("concurrency_group"),
    )


def _old_or_unknown(key: object, value: Any) -> Setting:
    """The setting an old spelling names (with a DeprecationWarning), else ``ConfigError``."""
    if isinstance(key, str) and key in _OLD_PER_CALL:
        setting = _OLD_PER_CALL[key]
        warn_renamed(key, setting.name, _SOURCE)
        return setting
    close = difflib.get_close_matches(str(key), sorted(OPTION_KEYS), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown error-handling option {quote(key)}{hint} "
        f"(known: {', '.join(sorted(OPTION_KEYS))})",
        field=str(key),
        value=value,
        source=_SOURCE,
    )


def _result_predicate(overrides: Mapping[str, Any], field: str) -> Callable[[Any], bool] | None:
    """The predicate on a call's result given as ``field``, checked to be callable."""
    predicate = overrides.get(field)
    if predicate is not None and not callable(predicate):
        raise ConfigError(
            f"invalid {field} = {quote(predicate)} from {_SOURCE}: expected a "
            "callable taking the result and returning a bool",
            field=field,
            value=predicate,
            source=_SOURCE,
        )
    return predicate
