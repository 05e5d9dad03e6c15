"""The sync and async runners drive one retry loop: every door must tell the same story.

A Hypothesis-made script says what each attempt of a sequence of calls does (succeed, fail
in a way that is retried, fail in a way that is not, ask for a retry by its result, cancel
the caller's scope). The same script runs through a decorated sync function,
``execute_with_error_handling``, a decorated coroutine function and
``aexecute_with_error_handling``, each with its own handler on its own fake clock. They
must agree on every call's outcome, on the attempts made, on the waits, on the counts and
on the breaker's state: the decisions are the plan's, only the doing differs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from coordination import CircuitOpenError, OperationCancelled
from coordination.error_handling import Cancellation, CoordinationErrorHandler

from .conftest import FakeClock

OUTCOMES = ("ok", "again", "retryable", "fatal", "cancel")


@dataclass
class Script:
    """What each attempt does, call after call; attempts past a call's list succeed."""

    calls: list[list[str]]
    made: list[int] = field(default_factory=list)  # attempts made, per call
    _call: int = -1
    _scope: Cancellation | None = None

    def start(self, scope: Cancellation | None) -> None:
        self._call += 1
        self._scope = scope
        self.made.append(0)

    def attempt(self) -> str:
        index = self.made[self._call]
        self.made[self._call] += 1
        steps = self.calls[self._call]
        outcome = steps[index] if index < len(steps) else "ok"
        if outcome == "ok":
            return f"value {self._call}.{index}"
        if outcome == "again":
            return "again"  # retry_if_result asks for another attempt
        if outcome == "fatal":
            raise TypeError(f"fatal {self._call}.{index}")  # never retried by default
        if outcome == "cancel":
            assert self._scope is not None
            self._scope.cancel("the caller left")
        raise ConnectionError(f"down {self._call}.{index}")


@dataclass
class Story:
    outcomes: list[tuple[str, ...]]
    attempts: list[int]
    sleeps: list[float]
    stats: dict[str, Any]
    state: str


def _outcome(run: Callable[[], Any]) -> tuple[str, ...]:
    try:
        return ("value", repr(run()))
    except CircuitOpenError as exc:
        return ("rejected", exc.operation, type(exc.__cause__).__name__)
    except OperationCancelled as exc:
        return ("cancelled", str(exc), type(exc.__cause__).__name__)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def _handler(clock: FakeClock, max_retries: int, threshold: int) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {
            "max_retries": max_retries,
            "base_delay": 0.5,
            "jitter": "none",
            "circuit_breaker_threshold": threshold,
            "circuit_breaker_timeout": 4.0,
        },
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


def _options(fallback: bool, check_result: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"operation_name": "dep"}
    if fallback:
        options["fallback"] = "fallen back"
    if check_result:
        options["retry_if_result"] = _asks_again
    return options


def _asks_again(result: object) -> bool:
    return result == "again"


def _story(door: str, calls: list[list[str]], retries: int, threshold: int, **flags: bool) -> Story:
    clock = FakeClock()
    handler = _handler(clock, retries, threshold)
    script = Script(calls)
    options = _options(**flags)
    outcomes = []

    def sync_op() -> str:
        return script.attempt()

    async def async_op() -> str:
        return script.attempt()

    decorated = handler.decorate(sync_op, **options)
    adecorated = handler.decorate(async_op, **options)
    execute = handler.aexecute_with_error_handling
    for steps in calls:
        # a scope only where the script cancels: outside one, the breakers' guards take calls
        with Cancellation() if "cancel" in steps else contextlib.nullcontext() as scope:
            script.start(scope)
            if door == "decorated":
                outcomes.append(_outcome(decorated))
            elif door == "execute":
                outcomes.append(
                    _outcome(lambda: handler.execute_with_error_handling(sync_op, **options))
                )
            elif door == "async decorated":
                # asyncio.run copies the context: the task runs in the caller's scope
                outcomes.append(_outcome(lambda: asyncio.run(adecorated())))
            else:
                outcomes.append(_outcome(lambda: asyncio.run(execute(async_op, **options))))
        clock.advance(1.0)  # time passes between calls: an open breaker may admit trials
    stats = handler.operation_stats()["dep"]
    state = handler.circuit_breaker("dep").state.value
    return Story(outcomes, script.made, clock.sleeps, stats, state)


DOORS = ("decorated", "execute", "async decorated", "async execute")


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(st.lists(st.sampled_from(OUTCOMES), max_size=5), min_size=1, max_size=6),
    retries=st.integers(0, 3),
    threshold=st.integers(1, 4),
    fallback=st.booleans(),
    check_result=st.booleans(),
)
def test_every_door_tells_the_same_story(
    calls: list[list[str]], retries: int, threshold: int, fallback: bool, check_result: bool
) -> None:
    stories = {
        door: _story(door, calls, retries, threshold, fallback=fallback, check_result=check_result)
        for door in DOORS
    }
    reference = stories["decorated"]
    for door, story in stories.items():
        assert story == reference, door


def test_the_story_is_the_one_the_rules_tell() -> None:
    """One script checked by hand, so the agreement above is not agreement on nonsense."""
    story = _story(
        "decorated",
        [["retryable", "retryable", "ok"], ["fatal"], ["cancel", "ok"], ["retryable"] * 4],
        retries=2,
        threshold=3,
        fallback=False,
        check_result=False,
    )
    assert story.outcomes == [
        ("value", "'value 0.2'"),  # two retries, after 0.5 s and 1 s
        ("error", "TypeError", "fatal 1.0"),  # not retried (but counted by the breaker)
        ("cancelled", "operation 'dep' stopped: the caller left", "ConnectionError"),
        # the third failure in a row opens the breaker: the retry is refused, not waited for
        ("rejected", "dep", "ConnectionError"),
    ]
    assert story.attempts == [3, 1, 1, 1]
    assert story.sleeps == [0.5, 1.0]
    assert story.stats["retries"] == 2
    assert (story.stats["successes"], story.stats["failures"]) == (1, 3)
    assert story.stats["rejections"] == 1
    assert story.state == "OPEN"


@pytest.mark.parametrize("door", DOORS)
def test_a_rejection_says_which_operation_and_counts_once(door: str) -> None:
    story = _story(
        door, [["retryable"], [], []], retries=0, threshold=1, fallback=False, check_result=False
    )
    assert story.outcomes[1:] == [("rejected", "dep", "NoneType")] * 2
    assert story.attempts == [1, 0, 0]
    assert story.stats["rejections"] == 2
