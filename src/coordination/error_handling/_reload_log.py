"""What a set's reloads did: counted and kept by its error handler, read as a snapshot."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["ReloadLog", "ReloadRecord", "ReloadSnapshot"]

_MAX_ERROR_CHARS = 2000  # what a failed reload's message keeps (the status page shows it)


@dataclass(frozen=True, slots=True)
class ReloadRecord:
    """One reload: when (``time.time()``), what was read (``source``), and its error
    (``None``: applied)."""

    at: float
    source: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class ReloadSnapshot:
    """The reloads of one set, as the readers see them: applied (``reloads``), refused
    (``errors``), the last attempt and the last failure (``None``: none yet)."""

    reloads: int
    errors: int
    last: ReloadRecord | None
    last_error: ReloadRecord | None

    def as_dict(self) -> dict[str, Any]:
        def record(r: ReloadRecord | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {"at": r.at, "source": r.source, "ok": r.ok, "error": r.error}

        return {
            "reloads": self.reloads,
            "errors": self.errors,
            "last": record(self.last),
            "last_error": record(self.last_error),
        }


class ReloadLog:
    """The counts and the last reload of a set (kept by its error handler, read through its
    snapshot); written only by reloads, under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reloads = 0
        self._errors = 0
        self._last: ReloadRecord | None = None
        self._last_error: ReloadRecord | None = None

    def succeeded(self, source: str) -> None:
        with self._lock:
            self._reloads += 1
            self._last = ReloadRecord(time.time(), source)

    def failed(self, source: str, error: BaseException | str) -> None:
        text = str(error)[:_MAX_ERROR_CHARS]
        with self._lock:
            self._errors += 1
            self._last = self._last_error = ReloadRecord(time.time(), source, text)

    def snapshot(self) -> ReloadSnapshot:
        with self._lock:
            return ReloadSnapshot(self._reloads, self._errors, self._last, self._last_error)
