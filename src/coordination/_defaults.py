"""Process-wide default components, made on first use.

``handle_errors``, ``track_performance`` and ``validate_input`` share one handler,
monitor and validator per process unless given their own, so a breaker opened through one
decorated function protects every caller of the same operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ProcessDefault"]

T = TypeVar("T")


class ProcessDefault(Generic[T]):
    """One lazily made instance per process; ``get()`` is a plain read once it exists.

    >>> numbers = ProcessDefault(list)
    >>> numbers.get() is numbers.get()
    True
    """

    __slots__ = ("_factory", "_instance", "_lock")

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._instance: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        instance = self._instance
        if instance is None:
            # Double-checked: two threads racing on first use must not make two handlers
            # (each would keep its own breakers).
            with self._lock:
                if self._instance is None:
                    self._instance = self._factory()
                instance = self._instance
        return instance

    def reset(self) -> None:
        """Forget the instance, so the next ``get()`` makes a new one (for tests)."""
        with self._lock:
            self._instance = None
