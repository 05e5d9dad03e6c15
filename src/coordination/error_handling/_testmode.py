"""The state behind ``coordination.testing.set_testing`` (kept here so the pipeline does
not import the public ``testing`` package, which imports the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TestingMode", "current"]


@dataclass(frozen=True, slots=True)
class TestingMode:
    """Testing mode: no waits between retries, and ``attempts`` calls at most per call.

    With ``cap`` true, ``attempts`` only lowers an operation's own attempt count.
    """

    __test__ = False  # not a pytest test class, despite the name

    enabled: bool = False
    attempts: int = 1
    cap: bool = False

    def max_retries(self, configured: int) -> int:
        if self.cap:
            return min(configured, self.attempts - 1)
        return self.attempts - 1


# Replaced whole (one atomic store) by set_testing; read on the failure path only.
current = TestingMode()
