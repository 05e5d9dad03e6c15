"""coordinated_task's first deliveries through the breaker's closed path (``_TaskRunner.
first``): the same retries, counts and breaker permits as the plan's full steps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

celery = pytest.importorskip("celery")

from coordination import Coordination  # noqa: E402
from coordination.integration.celery import TaskDeadLettered, coordinated_task  # noqa: E402
from coordination.integration.celery._task import (  # noqa: E402
    FAILURES,
    STARTED,
    WAIT,
    CoordinatedTask,
    _TaskRunner,
)


@pytest.fixture
def app() -> Iterator[Any]:
    application = celery.Celery("first_tests", broker="memory://", backend="cache+memory://")
    application.conf.task_always_eager = True
    yield application
    application.close()


def _coordination(**config: Any) -> Coordination:
    return Coordination(
        config={"dead_letter_path": ":memory:", "base_delay": 0.5, "jitter": "none", **config}
    )


def _runner(task: Any) -> _TaskRunner:
    door: CoordinatedTask = task.coordination
    return door._task_runner()


def _not_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the plan's steps ran for a first delivery that succeeded")


def test_a_first_delivery_that_succeeds_runs_no_steps(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    coordination = _coordination()

    @coordinated_task(app, error_config={"max_retries": 2}, coordination=coordination)
    def job(n: int) -> int:
        return n

    runner = _runner(job)
    assert runner.first is not None
    monkeypatch.setattr(runner.plan, "steps", _not_called)
    assert job.apply((3,)).get() == 3
    assert job.coordination.stats()["succeeded"] == 1
    assert coordination.error_handler.operation_stats()[job.name]["successes"] == 1
    assert coordination.monitor.snapshot().operations[job.name].successes == 1


@pytest.mark.parametrize(
    "error_config",
    [
        {"timeout": 5.0},
        {"max_concurrent": 2},
        {"rate_limit": "100/s"},
        {"adaptive_concurrency": True},
        {"hedge_after": 1.0},
        {"retry_if_result": lambda result: result is None},
    ],
    ids=["timeout", "bulkhead", "rate_limit", "adaptive", "hedging", "retry_if_result"],
)
def test_plans_with_work_before_the_call_keep_the_full_path(
    app: Any, error_config: dict[str, Any]
) -> None:
    @coordinated_task(app, error_config=error_config, coordination=_coordination())
    def job(n: int) -> int:
        return n

    assert _runner(job).first is None
    assert job.apply((4,)).get() == 4


@pytest.mark.parametrize("budget", [None, 60.0], ids=["guard", "guard_from_start"])
def test_a_first_delivery_that_fails_on_the_closed_path_is_a_celery_retry(
    app: Any, monkeypatch: pytest.MonkeyPatch, budget: float | None
) -> None:
    """The guard's failed attempt goes to the steps: one Celery retry, with the plan's
    wait as its countdown and the attempt count, wait and start in its headers; the
    on_retry hooks hear of it once; the re-sent delivery continues from there."""
    heard: list[tuple[int, float]] = []
    options: dict[str, Any] = {
        "max_retries": 3,
        "on_retry": lambda details: heard.append((details.attempt, details.delay)),
    }
    if budget is not None:
        options["retry_time_budget"] = budget
    coordination = _coordination()
    runs: list[int] = []

    @coordinated_task(app, error_config=options, coordination=coordination)
    def flaky() -> str:
        runs.append(1)
        if len(runs) <= 2:
            raise ConnectionError("down")
        return "ok"

    assert _runner(flaky).first is not None
    retries: list[tuple[float, dict[str, Any]]] = []
    instance = type(flaky._get_current_object())
    resend = instance.retry

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        retries.append((kwargs["countdown"], dict(kwargs["headers"])))
        return resend(self, *args, **kwargs)

    monkeypatch.setattr(instance, "retry", spy)
    assert flaky.apply().get() == "ok"
    assert runs == [1, 1, 1]
    (first_wait, first), (second_wait, second) = retries
    assert (first_wait, first[FAILURES], first[WAIT]) == (0.5, 1, 0.5)
    assert (second_wait, second[FAILURES], second[WAIT]) == (1.0, 2, 1.0)
    assert first[STARTED] == second[STARTED]  # the first failure's time, kept
    assert heard == [(1, 0.5), (2, 1.0)]
    assert flaky.coordination.stats() == {
        "succeeded": 1,
        "failed": 0,
        "retried": 2,
        "requeued": 0,
        "invalid": 0,
        "dead_lettered": 0,
    }
    stats = coordination.error_handler.operation_stats()[flaky.name]
    assert (stats["retries"], stats["successes"], stats["failures"]) == (2, 1, 0)
    assert coordination.monitor.snapshot().operations[flaky.name].failures == 2


def test_a_first_failure_not_retried_is_dead_lettered_with_one_attempt(app: Any) -> None:
    coordination = _coordination()

    @coordinated_task(
        app,
        error_config={"max_retries": 3, "give_up_on": [KeyError]},
        coordination=coordination,
    )
    def lookup() -> None:
        raise KeyError("gone")

    result = lookup.apply()
    assert isinstance(result.result, TaskDeadLettered)
    (letter,) = lookup.coordination.list_dead_letters()
    assert (letter.attempts, letter.error_type) == (1, "KeyError")


def test_an_open_breaker_refused_on_the_closed_path_requeues(app: Any) -> None:
    coordination = _coordination()

    @coordinated_task(
        app, error_config={"max_retries": 0}, max_requeues=2, coordination=coordination
    )
    def guarded() -> str:
        return "ok"

    runner = _runner(guarded)
    assert runner.first is not None
    breaker = runner.plan.op.breaker
    for _ in range(10):  # opened by failures, not forced: the guard's own refusal
        breaker.record_failure(0.0)
    result = guarded.apply()
    assert isinstance(result.result, TaskDeadLettered)
    assert "requeue_limit" in str(result.result)
    assert guarded.coordination.stats()["requeued"] == 2
    stats = coordination.error_handler.operation_stats()[guarded.name]
    assert (stats["rejections"], stats["retries"]) == (3, 0)


_OUTCOMES = st.sampled_from(["ok", "down", "fatal"])


@settings(max_examples=60, deadline=None)
@given(
    schedule=st.lists(_OUTCOMES, max_size=24),
    threshold=st.integers(1, 3),
    half_open_calls=st.integers(1, 2),
    max_retries=st.integers(0, 2),
)
def test_breaker_permits_balance_on_either_path_over_any_schedule(
    schedule: list[str], threshold: int, half_open_calls: int, max_retries: int
) -> None:
    """The same schedule of attempt outcomes through a task whose first deliveries take
    the closed path and through one made to take the full steps: the same deliveries,
    counts and breaker transitions, and after every task no trial permit left taken (an
    open period of a microsecond: every delivery after an opening is a trial, so a
    permit not given back would refuse the next one)."""
    app = celery.Celery("permits", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    coordination = _coordination(
        base_delay=0.01,
        circuit_breaker_threshold=threshold,
        circuit_breaker_timeout=1e-6,
        half_open_calls=half_open_calls,
    )
    seen: dict[str, list[str]] = {}

    def make(name: str) -> Any:
        outcomes = list(schedule)
        seen[name] = []

        @coordinated_task(
            app,
            error_config={"max_retries": max_retries, "give_up_on": [KeyError]},
            coordination=coordination,
            name=name,
        )
        def task() -> str:
            outcome = outcomes.pop(0) if outcomes else "ok"
            seen[name].append(outcome)
            if outcome == "down":
                raise ConnectionError("down")
            if outcome == "fatal":
                raise KeyError("fatal")
            return "ok"

        task.outcomes = outcomes
        return task

    fast, full = make("permits.fast"), make("permits.full")
    assert _runner(fast).first is not None
    _runner(full).first = None
    try:
        for task in (fast, full):
            breaker = _runner(task).plan.op.breaker
            applies = 0
            while task.outcomes or applies == 0:
                task.apply()
                applies += 1
                assert breaker._trials == 0  # every trial permit given back
            stats = task.coordination.stats()
            assert stats["requeued"] == 0  # no delivery refused for a permit held
            assert stats["succeeded"] + stats["dead_lettered"] == applies
        assert seen["permits.fast"] == seen["permits.full"]
        assert fast.coordination.stats() == full.coordination.stats()
        ops = coordination.error_handler.operation_stats()
        keys = ("successes", "failures", "retries", "rejections")
        assert [ops["permits.fast"][k] for k in keys] == [ops["permits.full"][k] for k in keys]
        assert (
            _runner(fast).plan.op.breaker.snapshot().transitions
            == _runner(full).plan.op.breaker.snapshot().transitions
        )
        timed = coordination.monitor.snapshot().operations
        fields = ("count", "successes", "failures", "timed_count", "errors_by_type")
        assert [getattr(timed["permits.fast"], f, None) for f in fields] == [
            getattr(timed["permits.full"], f, None) for f in fields
        ]
    finally:
        fast.coordination.close()
        full.coordination.close()
        app.close()


class _Monitor:
    """A MonitorLike of the user's: told each duration through record_duration."""

    def __init__(self) -> None:
        self.durations: list[tuple[str, bool, Any]] = []

    def record_operation(self, name: str) -> Any:
        raise AssertionError("a task's attempts are timed by the door")

    def record_duration(
        self, name: str, seconds: float, success: bool = True, error: Any = None
    ) -> None:
        assert seconds >= 0
        self.durations.append((name, success, type(error).__name__))

    def get_performance_report(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("library_clock", [False, True], ids=["monitor_like", "own_clock"])
def test_any_monitor_hears_of_each_attempt_on_either_path(app: Any, library_clock: bool) -> None:
    """A monitor that is not the library's, or the library's on a clock of its own, is
    told of each attempt through record_duration, on the closed path as on the steps."""
    coordination = _coordination()
    if library_clock:
        from coordination.performance import CoordinationPerformanceMonitor

        ticks = iter(range(10**6))
        monitor: Any = CoordinationPerformanceMonitor({}, clock=lambda: float(next(ticks)))
    else:
        monitor = _Monitor()
    runs: list[int] = []

    @coordinated_task(
        app,
        error_config={"max_retries": 1},
        performance_monitor=monitor,
        coordination=coordination,
        name="timed.task",
    )
    def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("down")
        return "ok"

    assert _runner(flaky).first is not None
    assert flaky.apply().get() == "ok"
    if library_clock:
        (timed,) = monitor.snapshot().operations.values()
        assert (timed.successes, timed.failures) == (1, 1)
        assert dict(timed.errors_by_type) == {"ConnectionError": 1}
    else:
        assert monitor.durations == [
            ("timed.task", False, "ConnectionError"),
            ("timed.task", True, "NoneType"),
        ]
