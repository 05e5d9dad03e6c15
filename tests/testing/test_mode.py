"""Testing mode: no waits and capped attempts, as a switch and as a context manager."""

from __future__ import annotations

import pytest

from coordination.error_handling import CoordinationErrorHandler
from coordination.testing import current_testing_mode, is_testing, set_testing


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.calls = 0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def down(self) -> None:
        self.calls += 1
        raise ConnectionError("down")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def handler(recorder: Recorder) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"base_delay": 5.0, "max_retries": 3, "circuit_breaker_threshold": 100},
        sleep=recorder.sleep,
    )


def test_context_manager_turns_off_waits_and_caps_attempts(
    handler: CoordinationErrorHandler, recorder: Recorder
) -> None:
    assert not is_testing()
    with set_testing(True, attempts=2):
        assert is_testing()
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(recorder.down)
    assert not is_testing()
    assert recorder.calls == 2
    assert recorder.sleeps == []  # a wait of 0 is not even a sleep call


def test_attempts_can_also_raise_the_limit_unless_capped(
    handler: CoordinationErrorHandler, recorder: Recorder
) -> None:
    with set_testing(True, attempts=6):
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(recorder.down)
    assert recorder.calls == 6
    recorder.calls = 0
    with set_testing(True, attempts=6, cap=True):
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(recorder.down)
    assert recorder.calls == 4  # the operation's own 1 + 3 retries


def test_plain_switch_and_nesting_restore_the_previous_mode(
    handler: CoordinationErrorHandler, recorder: Recorder
) -> None:
    set_testing(True)
    try:
        with set_testing(True, attempts=3):
            assert current_testing_mode().attempts == 3
        assert current_testing_mode().attempts == 1
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(recorder.down)
        assert recorder.calls == 1
    finally:
        set_testing(False)
    assert not is_testing()


async def test_current_testing_mode_covers_async_code(recorder: Recorder) -> None:
    async def asleep(seconds: float) -> None:
        recorder.sleeps.append(seconds)

    handler = CoordinationErrorHandler({"base_delay": 5.0}, async_sleep=asleep)

    @handler.decorate
    async def down() -> None:
        recorder.calls += 1
        raise ConnectionError("down")

    with set_testing(True, attempts=3):
        with pytest.raises(ConnectionError):
            await down()
    assert (recorder.calls, recorder.sleeps) == (3, [])


@pytest.mark.parametrize("attempts", [0, -1, 1.5, True])
def test_bad_attempts_are_refused(attempts: object) -> None:
    with pytest.raises(ValueError, match="attempts"):
        set_testing(True, attempts=attempts)  # type: ignore[arg-type]
    assert not is_testing()
