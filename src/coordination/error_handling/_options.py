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

from .._config import CoordinationConfig
from .._errors import ConfigError
from ._backends import BreakerSettings, Rate
from ._retry import Backoff, ErrorMatcher, as_matcher
from ._severity import ErrorSeverity

__all__ = ["MISSING", "OPTION_KEYS", "Options", "resolve_options"]

MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<no fallback>"})()

OPTION_KEYS = frozenset(
    {
        "max_retries",
        "error_severity",
        "base_delay",
        "backoff_multiplier",
        "max_delay",
        "jitter",
        "retry_on",
        "give_up_on",
        "retry_if_result",
        "retry_time_budget",
        "timeout",
        "timeout_workers",
        "max_concurrent",
        "bulkhead_wait",
        "fallback",
        "rate_limit",
        "circuit_breaker_threshold",
        "circuit_breaker_timeout",
        "half_open_calls",
        "half_open_trial_timeout",
        "failure_rate_threshold",
        "slow_call_duration",
        "slow_call_rate_threshold",
        "window_type",
        "window_size",
        "minimum_calls",
        "operation_name",
    }
)


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
    rate_limit: Rate | None
    breaker: BreakerSettings


def resolve_options(config: CoordinationConfig, overrides: Mapping[str, Any]) -> Options:
    for key in overrides:
        if key not in OPTION_KEYS:
            close = difflib.get_close_matches(str(key), sorted(OPTION_KEYS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown error-handling option {key!r}{hint} "
                f"(known: {', '.join(sorted(OPTION_KEYS))})",
                field=str(key),
                value=overrides[key],
                source="keyword argument",
            )

    def get(key: str, default: Any) -> Any:
        value = overrides.get(key)
        return default if value is None else value

    max_retries = get("max_retries", config.max_retries)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ConfigError(
            f"invalid max_retries = {max_retries!r}: expected a whole number of at least 0 "
            "(the retries after the first attempt)",
            field="max_retries",
            value=max_retries,
            source="keyword argument",
        )
    result_predicate = overrides.get("retry_if_result")
    if result_predicate is not None and not callable(result_predicate):
        raise ConfigError(
            f"invalid retry_if_result = {result_predicate!r}: expected a callable taking the "
            "result and returning a bool",
            field="retry_if_result",
            value=result_predicate,
            source="keyword argument",
        )
    timeout = _optional_seconds(overrides, "timeout", config.operation_timeout)
    budget = _optional_seconds(overrides, "retry_time_budget", config.retry_time_budget)
    bulkhead_wait = _optional_seconds(overrides, "bulkhead_wait", None, allow_zero=True) or 0.0
    max_concurrent = get("max_concurrent", config.max_concurrent)
    if max_concurrent is not None and (
        not isinstance(max_concurrent, int)
        or isinstance(max_concurrent, bool)
        or max_concurrent < 1
    ):
        raise ConfigError(
            f"invalid max_concurrent = {max_concurrent!r}: expected a whole number of at least 1",
            field="max_concurrent",
            value=max_concurrent,
            source="keyword argument",
        )
    timeout_workers = overrides.get("timeout_workers")
    if timeout_workers is not None and (
        not isinstance(timeout_workers, int)
        or isinstance(timeout_workers, bool)
        or timeout_workers < 1
    ):
        raise ConfigError(
            f"invalid timeout_workers = {timeout_workers!r}: expected a whole number of at "
            "least 1 (worker threads for the operation's sync attempts with a timeout)",
            field="timeout_workers",
            value=timeout_workers,
            source="keyword argument",
        )
    rate = get("rate_limit", config.rate_limit)
    return Options(
        max_retries=max_retries,
        severity=ErrorSeverity.parse(get("error_severity", "MEDIUM")),
        backoff=Backoff(
            base_delay=get("base_delay", config.base_delay),
            multiplier=get("backoff_multiplier", config.backoff_multiplier),
            max_delay=get("max_delay", config.max_delay),
            jitter=get("jitter", config.jitter),
        ),
        retry_on=as_matcher(overrides.get("retry_on"), "retry_on"),
        give_up_on=as_matcher(overrides.get("give_up_on"), "give_up_on"),
        retry_if_result=result_predicate,
        time_budget=budget,
        timeout=timeout,
        timeout_workers=timeout_workers,
        max_concurrent=max_concurrent,
        bulkhead_wait=bulkhead_wait,
        fallback=overrides.get("fallback", MISSING),
        rate_limit=None if rate is None else Rate.parse(rate),
        breaker=BreakerSettings(
            failure_threshold=get("circuit_breaker_threshold", config.circuit_breaker_threshold),
            open_seconds=get("circuit_breaker_timeout", config.circuit_breaker_timeout),
            half_open_calls=get("half_open_calls", config.circuit_breaker_half_open_calls),
            trial_timeout=overrides.get("half_open_trial_timeout"),
            failure_rate_threshold=overrides.get("failure_rate_threshold"),
            slow_call_duration=overrides.get("slow_call_duration"),
            slow_call_rate_threshold=overrides.get("slow_call_rate_threshold"),
            window_type=get("window_type", "count"),
            window_size=get("window_size", 100),
            minimum_calls=get("minimum_calls", 10),
        ),
    )


def _optional_seconds(
    overrides: Mapping[str, Any], key: str, default: float | None, *, allow_zero: bool = False
) -> float | None:
    value = overrides.get(key, default)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if (
        not ok
        or value != value
        or value == float("inf")
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        bound = "at least 0" if allow_zero else "greater than 0"
        raise ConfigError(
            f"invalid {key} = {value!r}: expected a finite number of seconds {bound} (or None)",
            field=key,
            value=value,
            source="keyword argument",
        )
    return float(value)
