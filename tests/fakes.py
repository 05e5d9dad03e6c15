"""Stand-ins the tests inject where the library takes a clock or a sleep."""

from __future__ import annotations


class FakeClock:
    """Monotonic (or wall) time that moves only when advanced or slept on; records sleeps.

    Pass it as ``clock=`` and its ``sleep`` / ``async_sleep`` as ``sleep=`` /
    ``async_sleep=``; assign ``now`` to jump.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
