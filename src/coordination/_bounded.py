"""A cap on distinct operation names, so memory and metric labels stay bounded.

A service that names operations after raw paths or ids would otherwise grow a breaker, a
sketch and a metric series per id. Names beyond the cap share one overflow name, and a
warning says so once.
"""

from __future__ import annotations

import logging
import threading

from ._logging import library_logger, log_extra

__all__ = ["OVERFLOW_OPERATION", "BoundedNames"]

OVERFLOW_OPERATION = "__overflow__"


class BoundedNames:
    """Admits at most ``limit`` distinct names; later ones map to ``overflow``.

    >>> names = BoundedNames(2)
    >>> [names.admit(n) for n in ("a", "b", "c", "a")]
    ['a', 'b', '__overflow__', 'a']
    """

    __slots__ = ("_known", "_lock", "_logger", "_warned", "limit", "overflow")

    def __init__(
        self,
        limit: int,
        *,
        overflow: str = OVERFLOW_OPERATION,
        logger: logging.Logger | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.overflow = overflow
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False
        self._logger = logger or library_logger()

    def admit(self, name: str) -> str:
        """``name`` itself while there is room (or it is known), else the overflow name."""
        if name in self._known:  # the hot path: a set lookup, no lock
            return name
        with self._lock:
            if name in self._known:
                return name
            if len(self._known) < self.limit:
                self._known.add(name)
                return name
            if not self._warned:
                self._warned = True
                self._logger.warning(
                    "more than %d distinct operation names; %r and later new names are "
                    "grouped under %r (raise max_operation_names if this is expected)",
                    self.limit,
                    name,
                    self.overflow,
                    extra=log_extra(name, grouped_as=self.overflow, limit=self.limit),
                )
        return self.overflow

    def names(self) -> tuple[str, ...]:
        """The names admitted so far (a snapshot)."""
        with self._lock:
            return tuple(self._known)

    def __len__(self) -> int:
        return len(self._known)
