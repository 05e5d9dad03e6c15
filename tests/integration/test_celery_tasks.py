"""coordinated_task in process: Celery's eager mode (``apply()``), no broker, no waits."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

celery = pytest.importorskip("celery")

from coordination import Coordination  # noqa: E402
from coordination.integration.celery import (  # noqa: E402
    CoordinatedTask,
    InvalidTask,
    TaskDeadLettered,
    coordinated_task,
)


@pytest.fixture
def app() -> Iterator[Any]:
    application = celery.Celery("eager_tests", broker="memory://", backend="cache+memory://")
    application.conf.task_always_eager = True
    yield application
    application.close()


@pytest.fixture
def coordination() -> Coordination:
    return Coordination(
        config={"dead_letter_path": ":memory:", "base_delay": 0.01, "jitter": "none"}
    )


def _door(task: Any) -> CoordinatedTask:
    door: CoordinatedTask = task.coordination
    return door


def test_success_keeps_the_signature_and_counts(app: Any, coordination: Coordination) -> None:
    @coordinated_task(app, {"required_fields": ["user_id"]}, coordination=coordination)
    def greet(user_id: str, greeting: str = "hi") -> str:
        """Say hello."""
        return f"{greeting} {user_id}"

    assert greet.apply(("7",)).get() == "hi 7"
    assert greet.delay("8", greeting="yo").get() == "yo 8"
    assert greet.__doc__ == "Say hello."
    assert _door(greet).stats()["succeeded"] == 2
    assert coordination.monitor.snapshot().operations[greet.name].successes == 2
    with pytest.raises(TypeError):  # Celery checks the call by the function's signature
        greet.delay()


def test_invalid_arguments_dead_letter_without_running(
    app: Any, coordination: Coordination
) -> None:
    calls: list[Any] = []

    @coordinated_task(
        app,
        {"fields": {"amount": {"type": "integer", "min": 1}}},
        {"max_retries": 5},
        coordination=coordination,
    )
    def pay(amount: int) -> int:
        calls.append(amount)
        return amount

    result = pay.apply((0,))
    assert isinstance(result.result, InvalidTask)
    assert isinstance(result.result, ValueError)  # a ValidationError, as everywhere
    assert result.result.errors
    assert result.result.rule_set == pay.name
    assert calls == []
    (letter,) = _door(pay).list_dead_letters()
    assert (letter.reason, letter.attempts, letter.event["args"]) == ("invalid", 0, [0])
    assert _door(pay).stats() == {
        "succeeded": 0,
        "failed": 0,
        "retried": 0,
        "requeued": 0,
        "invalid": 1,
        "dead_lettered": 1,
    }


def test_failures_retry_through_celery_then_dead_letter(
    app: Any, coordination: Coordination
) -> None:
    seen: list[int] = []

    @coordinated_task(app, error_config={"max_retries": 3}, coordination=coordination, bind=True)
    def flaky(self: Any, key: str, *, fail_until: int = 99) -> str:
        seen.append(self.request.retries)
        if len(seen) <= fail_until:
            raise ConnectionError("down")
        return key

    result = flaky.apply(("a",), {"fail_until": 2})
    assert result.get() == "a"
    assert seen == [0, 1, 2]  # each attempt a delivery of its own (Celery's retries)
    seen.clear()
    failed = flaky.apply(("b",))
    assert isinstance(failed.result, TaskDeadLettered)
    assert "failed: down" in str(failed.result)
    assert seen == [0, 1, 2, 3]
    (letter,) = _door(flaky).list_dead_letters()
    assert letter.event["args"] == ["b"]
    assert letter.attempts == 4
    stats = coordination.error_handler.operation_stats()[flaky.name]
    assert stats["retries"] == 5  # 2 + 3: each counted once, by the delivery that made it
    assert stats["successes"] == 1
    assert stats["failures"] == 1


def test_on_retry_hooks_hear_of_each_retry_with_its_wait(
    app: Any, coordination: Coordination
) -> None:
    heard: list[tuple[int, float]] = []

    @coordinated_task(
        app,
        error_config={
            "max_retries": 2,
            "base_delay": 0.5,
            "on_retry": lambda details: heard.append((details.attempt, details.delay)),
        },
        coordination=coordination,
    )
    def down() -> None:
        raise ConnectionError("down")

    down.apply()
    assert heard == [(1, 0.5), (2, 1.0)]  # jitter none, multiplier 2


def test_errors_not_retried_are_dead_lettered_at_once(app: Any, coordination: Coordination) -> None:
    calls: list[int] = []

    @coordinated_task(
        app,
        error_config={"max_retries": 3, "give_up_on": [KeyError]},
        coordination=coordination,
    )
    def lookup(key: str) -> str:
        calls.append(1)
        raise KeyError(key)

    assert isinstance(lookup.apply(("x",)).result, TaskDeadLettered)
    assert calls == [1]
    assert _door(lookup).list_dead_letters()[0].attempts == 1


def test_open_breaker_requeues_without_spending_retries(
    app: Any, coordination: Coordination
) -> None:
    runs: list[int] = []

    @coordinated_task(
        app,
        error_config={"max_retries": 0},
        max_requeues=3,
        coordination=coordination,
    )
    def guarded() -> str:
        runs.append(1)
        return "ok"

    coordination.error_handler.force_open(guarded.name)
    result = guarded.apply()
    # eager: Celery re-runs each re-queue at once; the bound ends it, dead-lettered
    assert isinstance(result.result, TaskDeadLettered)
    assert "requeue_limit" in str(result.result)
    assert runs == []
    stats = _door(guarded).stats()
    assert stats["requeued"] == 3
    assert stats["retried"] == 0
    assert stats["dead_lettered"] == 1
    assert coordination.error_handler.operation_stats()[guarded.name]["rejections"] == 4
    (letter,) = _door(guarded).list_dead_letters()
    assert letter.reason == "requeue_limit"
    assert letter.error_type == "CircuitOpenError"


def test_a_spent_rate_limit_requeues_then_dead_letters_past_the_bound(
    app: Any, coordination: Coordination
) -> None:
    @coordinated_task(
        app,
        error_config={"rate_limit": "1/min", "max_retries": 0},
        max_requeues=2,
        coordination=coordination,
    )
    def limited(n: int) -> int:
        return n

    assert limited.apply((1,)).get() == 1
    refused = limited.apply((2,))
    assert isinstance(refused.result, TaskDeadLettered)
    (letter,) = _door(limited).list_dead_letters()
    assert (letter.reason, letter.error_type) == ("requeue_limit", "RateLimitExceeded")
    assert _door(limited).stats()["requeued"] == 2
    assert coordination.error_handler.operation_stats()[limited.name]["rate_limited"] == 3


def test_replay_sends_the_task_again(app: Any, coordination: Coordination) -> None:
    state = {"fail": True}

    @coordinated_task(app, error_config={"max_retries": 0}, coordination=coordination)
    def job(n: int, label: str = "") -> str:
        if state["fail"]:
            raise ConnectionError("later")
        return f"{label}{n}"

    job.apply((1,), {"label": "x"})
    assert _door(job).dead_letters.count() == 1
    state["fail"] = False
    report = _door(job).replay()
    assert report.replayed == 1
    assert report.succeeded
    assert _door(job).dead_letters.count() == 0
    assert _door(job).status()["task"]["succeeded"] == 1


def test_a_fallback_answers_as_everywhere(app: Any, coordination: Coordination) -> None:
    @coordinated_task(
        app, error_config={"max_retries": 1, "fallback": "cached"}, coordination=coordination
    )
    def fetch() -> str:
        raise ConnectionError("down")

    assert fetch.apply().get() == "cached"
    assert _door(fetch).dead_letters.count() == 0


def test_bad_construction_is_refused(app: Any) -> None:
    with pytest.raises(TypeError, match=r"celery\.Celery"):
        coordinated_task(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="error_config"):
        coordinated_task(app, autoretry_for=(Exception,))
    with pytest.raises(ValueError, match="max_requeues"):
        coordinated_task(app, max_requeues=-1)
    with pytest.raises(TypeError, match="coroutine function"):

        @coordinated_task(app)
        async def later() -> None:
            await asyncio.sleep(0)


def test_the_integration_package_does_not_import_celery() -> None:
    import subprocess

    code = (
        "import sys, coordination.integration as i; i.CoordinationEventProcessor; "
        "print('celery' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20), _containers, max_leaves=12
)


def _order_task() -> Any:
    """One task for every example (a Celery app keeps one task per name)."""
    app = celery.Celery("hypothesis_tests", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    coordination = Coordination(
        config={
            "dead_letter_path": ":memory:",
            "base_delay": 0.0,
            "circuit_breaker_threshold": 10**6,
        }
    )

    @coordinated_task(
        app,
        {"required_fields": ["order_id"], "fields": {"order_id": {"type": "string"}}},
        {"max_retries": 1},
        coordination=coordination,
    )
    def order(order_id: Any, amount: Any = 0) -> Any:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise ConnectionError("bad amount")
        return [order_id, amount]

    return order


@pytest.fixture(scope="module")
def order_task() -> Iterator[Any]:
    task = _order_task()
    _door(task).dead_letters  # noqa: B018  (opened for the module, closed at its end)
    yield task
    _door(task).close()
    task.app.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order_id=_JSON, amount=_JSON)
def test_any_arguments_end_processed_or_dead_lettered(
    order_task: Any, order_id: Any, amount: Any
) -> None:
    door = _door(order_task)
    before = door.dead_letters.count()
    result = order_task.apply((order_id,), {"amount": amount})
    valid = isinstance(order_id, str)
    fine = valid and isinstance(amount, int) and not isinstance(amount, bool)
    if fine:
        assert result.get() == [order_id, amount]
        assert door.dead_letters.count() == before
    else:
        assert isinstance(result.result, InvalidTask if not valid else TaskDeadLettered)
        assert door.dead_letters.count() == before + 1
        (letter,) = door.dead_letters.list(limit=1000)[-1:]
        assert letter.event["args"] == [order_id]
        assert letter.event["kwargs"] == {"amount": amount}


def test_a_retry_that_cannot_be_sent_is_kept_as_a_dead_letter(coordination: Coordination) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on: the broker is gone
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = celery.Celery("unsent", broker=f"amqp://guest:guest@127.0.0.1:{port}//")
    app.conf.update(task_publish_retry=False, broker_connection_timeout=0.5)

    @coordinated_task(app, error_config={"max_retries": 3}, coordination=coordination)
    def send(n: int) -> None:
        raise ConnectionError("down")

    # as a worker runs it: a delivery (not eager, not called directly)
    send.push_request(id="t-1", retries=0, is_eager=False, called_directly=False)
    try:
        with pytest.raises(TaskDeadLettered, match="resend_failed"):
            send.coordination.run(send, (7,), {})
    finally:
        send.pop_request()
        app.close()
    (letter,) = _door(send).list_dead_letters()
    assert (letter.reason, letter.event["args"], letter.attempts) == ("resend_failed", [7], 1)


@pytest.fixture(scope="module")
def header_tasks() -> Iterator[tuple[Any, Any]]:
    app = celery.Celery("header_tests", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    coordination = Coordination(
        config={
            "dead_letter_path": ":memory:",
            "base_delay": 0.0,
            "circuit_breaker_threshold": 10**6,
        }
    )

    @coordinated_task(app, error_config={"max_retries": 2}, coordination=coordination)
    def works() -> str:
        return "ok"

    @coordinated_task(app, error_config={"max_retries": 2}, coordination=coordination)
    def breaks() -> str:
        raise ConnectionError("down")

    _door(breaks).dead_letters  # noqa: B018  (opened for the module)
    yield works, breaks
    _door(breaks).close()
    app.close()


_HEADER_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.lists(st.integers(), max_size=3)
)


@settings(max_examples=80, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "coordination_failures",
                "coordination_requeues",
                "coordination_wait",
                "coordination_started",
            ]
        ),
        _HEADER_VALUES,
    )
)
# a digit str.isdigit() knows and int() does not: read as none, not a crash
@example(headers={"coordination_failures": "²", "coordination_requeues": "٣"})
def test_any_progress_headers_end_in_a_result_or_a_dead_letter(
    header_tasks: tuple[Any, Any], headers: dict[str, Any]
) -> None:
    works, breaks = header_tasks
    assert works.apply(headers=dict(headers)).get() == "ok"
    failed = breaks.apply(headers=dict(headers))
    assert isinstance(failed.result, TaskDeadLettered)


def test_a_late_acked_task_wakes_the_workers_loop(app: Any, coordination: Coordination) -> None:
    """After a coordinated, late-acked task the worker's loop is woken (its queued ack
    goes out now); nothing for other tasks, outside a loop, or when waking fails; and no
    ``task_postrun`` receiver of ours, which every plain task would pay for."""
    from celery.signals import task_postrun
    from kombu.asynchronous import get_event_loop, set_event_loop

    from coordination.integration.celery._task import _wake_workers_loop

    class Waker:
        def __init__(self, fails: bool = False) -> None:
            self.woken = 0
            self.fails = fails

        def wake(self) -> None:
            self.woken += 1
            if self.fails:
                raise OSError("closed")

    class Loop:
        def __init__(self, waker: Waker) -> None:
            self._waker = waker

    @coordinated_task(app, coordination=coordination)
    def late() -> None: ...

    @coordinated_task(app, coordination=coordination)
    def late_failing() -> None:
        raise ValueError("boom")

    @coordinated_task(app, coordination=coordination, acks_late=False)
    def early() -> None: ...

    @app.task(acks_late=True)
    def plain() -> None: ...

    assert not [r for _, r in task_postrun.receivers if "coordination" in repr(r)]
    previous = get_event_loop()
    try:
        _wake_workers_loop()  # no loop (eager, a prefork child): nothing
        waker = Waker()
        set_event_loop(Loop(waker))  # type: ignore[arg-type]
        late.apply()  # the delivery wakes the loop as it ends
        assert waker.woken == 1
        late_failing.apply()  # each delivery (eager retries run inline), a dead letter too
        woken = 1 + 1 + late_failing.coordination.stats()["retried"]
        assert waker.woken == woken > 2
        early.apply()
        plain.apply()
        assert waker.woken == woken
        set_event_loop(Loop(Waker(fails=True)))  # type: ignore[arg-type]
        late.apply()  # never raises
        _wake_workers_loop()
    finally:
        set_event_loop(previous)
