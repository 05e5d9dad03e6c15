"""What counts against the breaker: trip_on, breaker_ignores, give_up_on, trip_if_result.

Every outcome is checked against one small model (``expected``: the rule order of
``_outcomes``), through every door (decorator and per-call API, sync and async, the
breaker's guard and the full pipeline), on the memory breaker here and on Redis in
``tests/backends/test_what_counts_redis.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from coordination import CircuitOpenError, ConfigError, CoordinationConfig, handle_errors
from coordination.error_handling import (
    BreakerSettings,
    CircuitBreaker,
    CircuitState,
    CoordinationErrorHandler,
)
from coordination.error_handling._outcomes import FAILURE, NEITHER, SUCCESS
from fakes import FakeClock


class Base(Exception):
    """The dependency's errors; ``status`` like an HTTP answer's."""

    def __init__(self, status: int = 500) -> None:
        super().__init__(status)
        self.status = status


class Unavailable(Base):
    pass


class NotFound(Base):
    pass


class Declined(Exception):
    pass


def server_side(exc: Exception) -> bool:
    """A predicate that looks at the instance, not the type: no per-type cache may hold it."""
    return getattr(exc, "status", 500) >= 500


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, NotFound) or getattr(exc, "status", 0) == 404


# Errors the operations raise: two instances of one type with different statuses, a
# library's own verdict (a ConfigError is a ValueError too) and a plain KeyError.
ERRORS: list[Callable[[], Exception]] = [
    lambda: Unavailable(503),
    lambda: Unavailable(404),
    lambda: NotFound(404),
    lambda: Declined(),
    lambda: KeyError("k"),
    lambda: ConfigError("a library verdict"),
]
RULES: dict[str, Any] = {
    "trip_on": [None, (Base,), (Unavailable, KeyError), server_side, ()],
    "breaker_ignores": [None, (NotFound,), is_not_found],
    "give_up_on": [None, (Declined,), (Unavailable,)],
}


def matches(rule: Any, exc: Exception) -> bool:
    return isinstance(exc, rule) if isinstance(rule, tuple) else bool(rule(exc))


def expected(exc: Exception, trip_on: Any, ignores: Any, give_up_on: Any) -> int:
    """The documented order, written independently of ``_outcomes``."""
    if isinstance(exc, ConfigError):
        return NEITHER
    if ignores is not None and matches(ignores, exc):
        return NEITHER
    if trip_on is not None:
        return FAILURE if matches(trip_on, exc) else SUCCESS
    if give_up_on is not None and matches(give_up_on, exc):
        return SUCCESS
    return FAILURE


class Recording(CircuitBreaker):
    """The memory breaker, recording what the pipeline tells it (its guard's closed
    success stores 0 without calling ``record_success``: only explicit outcomes here)."""

    __slots__ = ("told",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.told: list[int] = []

    def record_failure(self, duration: float) -> None:
        self.told.append(FAILURE)
        super().record_failure(duration)

    def record_success(self, duration: float) -> None:
        self.told.append(SUCCESS)
        super().record_success(duration)

    def release(self) -> None:
        self.told.append(NEITHER)
        super().release()


def recording_handler(config: dict[str, Any] | None = None) -> CoordinationErrorHandler:
    clock = FakeClock()
    return CoordinationErrorHandler(
        CoordinationConfig(
            **{"base_delay": 0.0, "max_retries": 0, "circuit_breaker_threshold": 10**6}
            | (config or {})
        ),
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        breaker_factory=lambda name, s, *, clock, on_transition: Recording(
            name, s, clock=clock, on_transition=on_transition
        ),
    )


def told(handler: CoordinationErrorHandler, name: str) -> list[int]:
    breaker = handler.circuit_breaker(name)
    assert isinstance(breaker, Recording)
    return breaker.told


DOORS = ["decorated", "execute", "async decorated", "aexecute", "timeout", "async timeout"]


def call_through(
    door: str,
    handler: CoordinationErrorHandler,
    name: str,
    options: dict[str, Any],
    outcomes: list[Any],
) -> list[Any]:
    """Each outcome (an exception made by a maker, or a value) once through ``door``;
    what each call ended with (its exception or value)."""
    pending = list(outcomes)

    def next_outcome() -> Any:
        made = pending.pop(0)
        if callable(made):
            raise made()
        return made

    async def anext_outcome() -> Any:
        return next_outcome()

    options = {"operation_name": name, **options}
    if door.endswith("timeout"):
        options["timeout"] = 30.0
    asynchronous = door.startswith("a")
    func: Any = anext_outcome if asynchronous else next_outcome
    per_call = door in ("execute", "aexecute")
    decorated = None if per_call else handle_errors(handler=handler, **options)(func)
    ended: list[Any] = []
    for _ in outcomes:
        try:
            if door == "execute":
                ended.append(handler.execute_with_error_handling(func, **options))
            elif door == "aexecute":
                ended.append(asyncio.run(handler.aexecute_with_error_handling(func, **options)))
            elif asynchronous:
                ended.append(asyncio.run(decorated()))  # type: ignore[misc]
            else:
                ended.append(decorated())  # type: ignore[misc]
        except Exception as exc:
            ended.append(exc)
    return ended


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    door=st.sampled_from(DOORS),
    trip_on=st.sampled_from(RULES["trip_on"]),
    ignores=st.sampled_from(RULES["breaker_ignores"]),
    give_up_on=st.sampled_from(RULES["give_up_on"]),
    errors=st.lists(st.sampled_from(range(len(ERRORS))), min_size=1, max_size=8),
)
def test_every_door_tells_the_breaker_what_the_rules_say(
    door: str, trip_on: Any, ignores: Any, give_up_on: Any, errors: list[int]
) -> None:
    handler = recording_handler()
    options = {
        key: value
        for key, value in (
            ("trip_on", trip_on),
            ("breaker_ignores", ignores),
            ("give_up_on", give_up_on),
        )
        if value is not None
    }
    makers = [ERRORS[i] for i in errors]
    ended = call_through(door, handler, "op", options, makers)
    want = [expected(make(), trip_on, ignores, give_up_on) for make in makers]
    assert told(handler, "op") == want
    # the caller always gets the operation's own error: the rules only change the breaker
    assert [type(e) for e in ended] == [type(make()) for make in makers]
    handler.close()


@settings(max_examples=40, deadline=None)
@given(
    first=st.sampled_from(RULES["trip_on"]),
    second=st.sampled_from(RULES["trip_on"]),
    ignores=st.sampled_from(RULES["breaker_ignores"]),
    sequence=st.lists(
        st.tuples(st.sampled_from(["p", "q", "default"]), st.sampled_from(range(len(ERRORS)))),
        min_size=1,
        max_size=20,
    ),
)
def test_two_plans_classify_the_same_type_each_by_its_own_rules(
    first: Any, second: Any, ignores: Any, sequence: list[tuple[str, int]]
) -> None:
    """The per-type answers of one plan never leak into another (they once were per type
    for the whole process): interleaved calls of three plans, one of them the default."""
    handler = recording_handler()
    rules = {
        "p": {"trip_on": first},
        "q": {"trip_on": second, "breaker_ignores": ignores},
        "default": {},
    }
    wrapped = {}
    for name, options in rules.items():
        given_options = {k: v for k, v in options.items() if v is not None}

        def raising(exc: Exception) -> None:
            raise exc

        wrapped[name] = handle_errors(handler=handler, operation_name=name, **given_options)(
            raising
        )
    want: dict[str, list[int]] = {name: [] for name in rules}
    for name, index in sequence:
        exc = ERRORS[index]()
        with pytest.raises(type(exc)):
            wrapped[name](exc)
        options = rules[name]
        want[name].append(
            expected(exc, options.get("trip_on"), options.get("breaker_ignores"), None)
        )
    for name in rules:
        assert told(handler, name) == want[name], name


# --- the breaker's states under the rules: a state machine against a model -------------

THRESHOLD = 2
OPEN_SECONDS = 10.0
OUTCOMES: list[Any] = [*ERRORS, "ok", "bad"]  # makers raise; "bad" is a result that may trip
OPERATIONS: dict[str, dict[str, Any]] = {
    # trips on the dependency's errors but not on its 404s; a "bad" result trips
    "p": {
        "trip_on": (Base,),
        "breaker_ignores": (NotFound,),
        "trip_if_result": lambda r: r == "bad",
    },
    # the default rule, but the declined card is the dependency's answer, a 404 neither
    "q": {"give_up_on": (Declined,), "breaker_ignores": is_not_found},
    # a predicate on the instance: only 5xx trip
    "r": {"trip_on": server_side},
    # the defaults: every error but the library's own trips
    "s": {},
}


def model_verdict(options: dict[str, Any], outcome: Any) -> int:
    if callable(outcome):
        return expected(
            outcome(),
            options.get("trip_on"),
            options.get("breaker_ignores"),
            options.get("give_up_on"),
        )
    trips = options.get("trip_if_result")
    return FAILURE if trips is not None and trips(outcome) else SUCCESS


class WhatCountsMachine(RuleBasedStateMachine):
    """Four operations with different rules, one clock; each breaker (the real memory
    breaker, behind the decorators' guard or the full pipeline) must be where a
    consecutive-failure model says."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.handler = CoordinationErrorHandler(
            {
                "base_delay": 0,
                "max_retries": 0,
                "circuit_breaker_threshold": THRESHOLD,
                "circuit_breaker_timeout": OPEN_SECONDS,
            },
            clock=self.clock,
            sleep=self.clock.sleep,
            async_sleep=self.clock.async_sleep,
        )
        self.calls: dict[str, Callable[[Any], Any]] = {}
        for name, options in OPERATIONS.items():

            def run(outcome: Any) -> Any:
                if callable(outcome):
                    raise outcome()
                return outcome

            self.calls[name] = handle_errors(handler=self.handler, operation_name=name, **options)(
                run
            )
        self.state = dict.fromkeys(OPERATIONS, "CLOSED")
        self.failures = dict.fromkeys(OPERATIONS, 0)
        self.opened_at = dict.fromkeys(OPERATIONS, 0.0)
        # half-open: when the period's first trial came (its half_open_max_wait starts then)
        self.trial_at: dict[str, float | None] = dict.fromkeys(OPERATIONS)

    def model_state(self, name: str) -> str:
        now = self.clock.now
        while True:
            if self.state[name] == "OPEN" and now >= self.opened_at[name] + OPEN_SECONDS:
                self.state[name], self.trial_at[name] = "HALF_OPEN", None
            elif self.state[name] == "HALF_OPEN" and self.trial_at[name] is not None:
                deadline = cast(float, self.trial_at[name]) + OPEN_SECONDS  # the default wait
                if now < deadline:
                    break
                # trials not concluded within half_open_max_wait: re-opened as of then
                self.state[name], self.opened_at[name] = "OPEN", deadline
                self.trial_at[name] = None
            else:
                break
        return self.state[name]

    @rule(name=st.sampled_from(sorted(OPERATIONS)), outcome=st.sampled_from(range(len(OUTCOMES))))
    def call(self, name: str, outcome: int) -> None:
        made = OUTCOMES[outcome]
        state = self.model_state(name)
        try:
            self.calls[name](made)
        except CircuitOpenError:
            assert state == "OPEN", (name, state)
            return
        except Exception as exc:
            assert callable(made)
            assert type(exc) is type(made())  # noqa: PT017 - the operation's own error
        else:
            assert not callable(made)
        assert state != "OPEN", (name, state)
        verdict = model_verdict(OPERATIONS[name], made)
        if state == "HALF_OPEN":  # one trial: its outcome decides, "neither" leaves it open
            if self.trial_at[name] is None:
                self.trial_at[name] = self.clock.now
            if verdict == FAILURE:
                self.state[name], self.opened_at[name] = "OPEN", self.clock.now
            elif verdict == SUCCESS:
                self.state[name], self.failures[name] = "CLOSED", 0
            else:
                self.state[name] = "HALF_OPEN"
            return
        if verdict == FAILURE:
            self.failures[name] += 1
            if self.failures[name] >= THRESHOLD:
                self.state[name], self.opened_at[name] = "OPEN", self.clock.now
        elif verdict == SUCCESS:
            self.failures[name] = 0

    @rule(seconds=st.sampled_from([1.0, 5.0, OPEN_SECONDS]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def breakers_agree(self) -> None:
        for name in OPERATIONS:
            assert self.handler.circuit_breaker(name).state.value == self.model_state(name), name

    def teardown(self) -> None:
        self.handler.close()


WhatCountsMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=40, deadline=None
)
test_what_counts_machine = WhatCountsMachine.TestCase


# --- give_up_on, trip_if_result and retry_if_result, one by one ------------------------


def test_give_up_on_errors_no_longer_trip_the_breaker_unless_trip_on_names_them() -> None:
    handler = recording_handler({"circuit_breaker_threshold": 2})

    def declined() -> None:
        raise Declined()

    for _ in range(3):
        with pytest.raises(Declined):
            handler.execute_with_error_handling(declined, give_up_on=Declined, operation_name="a")
    assert handler.circuit_breaker("a").state is CircuitState.CLOSED
    assert told(handler, "a") == [SUCCESS] * 3
    for _ in range(2):
        with pytest.raises(Declined):
            handler.execute_with_error_handling(
                declined, give_up_on=Declined, trip_on=Declined, operation_name="b"
            )
    assert handler.circuit_breaker("b").state is CircuitState.OPEN


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_result_that_trips_is_recorded_as_a_failure_and_returned(asynchronous: bool) -> None:
    handler = recording_handler({"circuit_breaker_threshold": 3})
    answers = iter([503, 200, 503, 503, 503])

    def fetch() -> int:
        return next(answers)

    async def afetch() -> int:
        return next(answers)

    decorated: Any = handle_errors(
        handler=handler, operation_name="fetch", trip_if_result=lambda r: r >= 500
    )(afetch if asynchronous else fetch)

    def call() -> Any:
        return asyncio.run(decorated()) if asynchronous else decorated()

    assert [call() for _ in range(5)] == [503, 200, 503, 503, 503]
    assert told(handler, "fetch") == [FAILURE, SUCCESS, FAILURE, FAILURE, FAILURE]
    assert handler.circuit_breaker("fetch").state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        call()
    stats = handler.operation_stats()["fetch"]
    assert stats["successes"] == 5  # the caller got each value: the call succeeded
    assert stats["rejections"] == 1


def test_trip_if_result_and_retry_if_result_each_do_their_own_part() -> None:
    """A 503 both trips (the breaker records each attempt's failure) and is retried; the
    last result is returned when retries run out, or the breaker refuses once it opens."""
    handler = recording_handler({"circuit_breaker_threshold": 10, "max_retries": 2})
    calls = 0

    def fetch() -> int:
        nonlocal calls
        calls += 1
        return 503

    unavailable = {"trip_if_result": lambda r: r == 503, "retry_if_result": lambda r: r == 503}
    assert handler.execute_with_error_handling(fetch, operation_name="f", **unavailable) == 503
    assert calls == 3
    assert told(handler, "f") == [FAILURE] * 3
    # only retried, not tripping: each attempt a success for the breaker
    assert (
        handler.execute_with_error_handling(
            fetch, operation_name="g", retry_if_result=lambda r: r == 503
        )
        == 503
    )
    # every attempt's outcome is told, the first one's too (the guard leaves it to the
    # plan when the plan looks at results)
    assert told(handler, "g") == [SUCCESS] * 3
    # tripping opens the breaker in the middle of the retries: the call ends refused
    small = recording_handler({"circuit_breaker_threshold": 2, "max_retries": 5})
    with pytest.raises(CircuitOpenError):
        small.execute_with_error_handling(fetch, operation_name="h", **unavailable)
    assert told(small, "h") == [FAILURE, FAILURE]


def test_a_non_tripping_error_closes_a_half_open_breaker_and_an_ignored_one_does_not() -> None:
    clock = FakeClock()
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "max_retries": 0, "circuit_breaker_threshold": 1},
        clock=clock,
        sleep=clock.sleep,
    )
    options = {"trip_on": Unavailable, "breaker_ignores": NotFound, "operation_name": "x"}

    def raising(exc: Exception) -> None:
        raise exc

    call = handle_errors(handler=handler, **options)(raising)
    with pytest.raises(Unavailable):
        call(Unavailable())
    clock.advance(60)
    assert handler.circuit_breaker("x").state is CircuitState.HALF_OPEN
    with pytest.raises(NotFound):
        call(NotFound())  # neither: the trial slot is given back
    assert handler.circuit_breaker("x").state is CircuitState.HALF_OPEN
    with pytest.raises(Declined):
        call(Declined())  # not named by trip_on: the dependency answered
    assert handler.circuit_breaker("x").state is CircuitState.CLOSED


# --- the configuration's dotted names ------------------------------------------------


def test_dotted_names_from_yaml_and_the_environment_reach_the_breaker(
    tmp_path: Any, clean_environment: None
) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_text(
        "max_retries: 0\n"
        "circuit_breaker_threshold: 1\n"
        "trip_on:\n"
        f"  - {__name__}.Unavailable\n"
        "  - builtins.ConnectionError\n",
        encoding="utf-8",
    )
    config = CoordinationConfig.load(
        path, environ={"COORDINATION_BREAKER_IGNORES": f" {__name__}.NotFound , builtins.KeyError"}
    )
    assert config.trip_on == (f"{__name__}.Unavailable", "builtins.ConnectionError")
    assert config.breaker_ignores == (f"{__name__}.NotFound", "builtins.KeyError")
    handler = CoordinationErrorHandler(config)

    def raising(exc: Exception) -> None:
        raise exc

    for exc in (KeyError("ignored"), Declined(), NotFound()):
        with pytest.raises(type(exc)):
            handler.execute_with_error_handling(raising, args=(exc,), operation_name="c")
        assert handler.circuit_breaker("c").state is CircuitState.CLOSED
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(raising, args=(ConnectionError(),), operation_name="c")
    assert handler.circuit_breaker("c").state is CircuitState.OPEN


def test_a_bad_dotted_name_in_yaml_names_its_line(tmp_path: Any) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_text("max_retries: 1\n\ntrip_on: [myapp.errors.Declined, Declined]\n")
    with pytest.raises(ConfigError) as caught:
        CoordinationConfig.from_file(path)
    message = str(caught.value)
    assert caught.value.field == "trip_on"
    assert f"{path}, line 3" in message
    assert "item 2 ('Declined') is not a dotted class name" in message


def test_a_bad_dotted_name_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        CoordinationConfig.from_environment({"COORDINATION_TRIP_ON": "a.B,,c.D"})
    assert caught.value.source == "environment variable COORDINATION_TRIP_ON"
    assert "item 2 ('')" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("nowhere_at_all.Error", "cannot import it (No module named 'nowhere_at_all')"),
        (
            "builtins.NoSuchError",
            "cannot import it (module builtins has no attribute 'NoSuchError')",
        ),
        ("os.path.join", "os.path.join is a function, not an exception class"),
    ],
)
def test_a_name_that_does_not_import_is_refused_when_the_plan_is_built(
    name: str, problem: str
) -> None:
    config = CoordinationConfig(trip_on=name)  # the grammar is fine: checked at load
    handler = CoordinationErrorHandler(config)
    with pytest.raises(ConfigError) as caught:
        handler.decorate(lambda: None, operation_name="x")
    assert caught.value.field == "trip_on"
    assert str(caught.value) == f"invalid trip_on = {name!r} from the configuration: {problem}"
    with pytest.raises(ConfigError) as per_call:
        CoordinationErrorHandler().decorate(lambda: None, breaker_ignores=[name])
    assert per_call.value.field == "breaker_ignores"
    assert "from keyword argument" in str(per_call.value)


def test_nested_classes_and_an_empty_list_are_understood() -> None:
    handler = recording_handler()
    options = {"trip_on": [f"{__name__}.Holder.Inner"], "operation_name": "n"}

    def raising(exc: Exception) -> None:
        raise exc

    call = handle_errors(handler=handler, **options)(raising)
    for exc in (Holder.Inner(), KeyError()):
        with pytest.raises(type(exc)):
            call(exc)
    assert told(handler, "n") == [FAILURE, SUCCESS]
    nothing = handle_errors(handler=handler, trip_on=[], operation_name="none")(raising)
    with pytest.raises(KeyError):
        nothing(KeyError())
    assert told(handler, "none") == [SUCCESS]


class Holder:
    class Inner(Exception):
        pass


@pytest.mark.parametrize("bad", [42, "LookupError", [KeyError, "builtins.KeyError"], object()])
def test_a_rule_of_the_wrong_form_is_a_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        CoordinationErrorHandler().decorate(lambda: None, trip_on=bad)
    assert caught.value.field == "trip_on"
    with pytest.raises(ConfigError, match="invalid trip_if_result = 3"):
        CoordinationErrorHandler().decorate(lambda: None, trip_if_result=3)


# --- a predicate that raises ------------------------------------------------------------


def test_a_failing_predicate_is_logged_counted_and_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = recording_handler()

    def broken(_: Any) -> bool:
        raise KeyError("the predicate's own bug")

    def fails() -> None:
        raise Unavailable()

    caplog.set_level(logging.DEBUG, logger="coordination.error_handling")
    for _ in range(2):
        with pytest.raises(Unavailable):
            handler.execute_with_error_handling(fails, trip_on=broken, operation_name="t")
    assert told(handler, "t") == [FAILURE, FAILURE]  # as if trip_on were not set
    for _ in range(2):
        with pytest.raises(Unavailable):
            handler.execute_with_error_handling(fails, breaker_ignores=broken, operation_name="i")
    assert told(handler, "i") == [FAILURE, FAILURE]  # not ignored
    assert handler.execute_with_error_handling(lambda: 7, trip_if_result=broken) == 7
    assert handler.execute_with_error_handling(lambda: 8, trip_if_result=broken) == 8
    by_type = handler.get_error_report()["errors_by_type"]
    assert by_type["trip_on:KeyError"] == 2
    assert by_type["breaker_ignores:KeyError"] == 2
    assert by_type["trip_if_result:KeyError"] == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "raised" in r.message]
    assert len(warnings) == 3  # the first failure of each, with its traceback
    assert all(r.exc_info is not None for r in warnings)
    assert "the error counts as a failure" in warnings[0].getMessage()


def test_a_failing_give_up_on_still_reaches_the_caller_from_the_retry_decision() -> None:
    handler = recording_handler({"max_retries": 1})
    mine = KeyError("give_up_on's own")

    def broken(_: Exception) -> bool:
        raise mine

    def fails() -> None:
        raise Unavailable()

    with pytest.raises(KeyError) as caught:
        handler.execute_with_error_handling(fails, give_up_on=broken, operation_name="g")
    assert caught.value is mine  # it decides the call's fate: as before issue 15
    assert told(handler, "g") == [FAILURE]
    # no retry to decide: the call's own error, the predicate's logged and counted
    with pytest.raises(Unavailable):
        handler.execute_with_error_handling(
            fails, give_up_on=broken, max_retries=0, operation_name="h"
        )
    assert told(handler, "h") == [FAILURE]
    assert handler.get_error_report()["errors_by_type"]["give_up_on:KeyError"] == 2


def test_unset_options_keep_the_shared_per_type_answers_and_the_guard() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    plain = handler.plan("plain", {})
    assert plain.verdicts is None
    assert plain.direct
    assert handler.plan("rules", {"trip_on": KeyError}).direct  # the guard still takes it
    results = handler.plan("results", {"trip_if_result": bool})
    assert results.direct  # the guard takes it, and hands its results over
    assert results.looks_at_results
    breaker = handler.circuit_breaker("plain")
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.settings == BreakerSettings()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_predicate_raising_stop_iteration_is_only_a_broken_predicate(asynchronous: bool) -> None:
    """The retry loop is a generator (PEP 479 would turn a StopIteration into a
    RuntimeError): a rule's StopIteration is caught as the predicate's failure."""
    handler = recording_handler()

    def broken(_: Any) -> bool:
        raise StopIteration

    def fails() -> None:
        raise Unavailable()

    async def afails() -> None:
        raise Unavailable()

    options = {"trip_on": broken, "operation_name": "s", "timeout": 5.0}
    decorated: Any = handle_errors(handler=handler, **options)(afails if asynchronous else fails)
    with pytest.raises(Unavailable) as caught:
        asyncio.run(decorated()) if asynchronous else decorated()
    assert not isinstance(caught.value.__context__, RuntimeError)
    assert told(handler, "s") == [FAILURE]
    assert handler.get_error_report()["errors_by_type"]["trip_on:StopIteration"] == 1
    handler.close()


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("mode", ["normal", "metrics_only"])
@pytest.mark.parametrize("window", [False, True])
def test_the_guard_leaves_a_checked_result_to_the_plan_once(
    asynchronous: bool, mode: str, window: bool
) -> None:
    """On the breaker's fast closed path a result that trips is one failure, a result that
    does not is one success: never a success and then a failure for the same attempt."""
    rate = {"failure_rate_threshold": 0.5, "minimum_calls": 4, "window_size": 4} if window else {}
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "circuit_breaker_threshold": 3, "breaker_mode": mode, **rate}
    )
    # a window opens at 2 failures of 4; consecutive counting at the third 503 in a row
    expected = [200, 503, 200, 503] if window else [200, 503, 200, 503, 503, 503]
    answers = iter(expected)

    def fetch() -> int:
        return next(answers)

    async def afetch() -> int:
        return next(answers)

    options = {"trip_if_result": lambda r: r == 503, "max_retries": 0}
    if asynchronous:
        call = handler.decorate(afetch, operation_name="api", **options)
        seen = [asyncio.run(call()) for _ in expected]
    else:
        call = handler.decorate(fetch, operation_name="api", **options)
        seen = [call() for _ in expected]
    assert seen == expected  # tripping results are still returned
    breaker = handler.circuit_breaker("api").snapshot()
    # opened by the last call, not before (a success told twice, or a failure missed,
    # would open it early or never)
    assert breaker.transitions == {"CLOSED->OPEN": 1}
    if window:
        assert (breaker.window_calls, breaker.failure_rate) == (4, 0.5)
