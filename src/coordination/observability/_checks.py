"""Custom health checks: run with a timeout that needs no signals, and cached briefly.

A check is any callable — a database ping, a disk check — sync or async. Its outcome:
``None``/``True`` is HEALTHY, ``False`` UNHEALTHY, a ``HealthStatus`` (or its name) that
status, a mapping with a ``"status"`` key that mapping; raising is ERROR.

Sync checks run on a thread of their own so a hung one can be abandoned after its timeout
from any thread (``signal.alarm`` only works on the main thread and would interrupt the
host's own code). Each check runs at most once at a time: while a hung run is still going,
later probes report the timeout at once instead of piling up more hung threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._redact import error_text, redact, redact_mapping, safe_repr, truncate
from .._status import HealthStatus
from .._time import Clock

__all__ = ["CheckResult", "HealthCheck", "interpret_status"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of a check: its status, the details it returned, and how long it took."""

    status: HealthStatus
    details: dict[str, Any]
    duration_seconds: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.details, "status": self.status.value}
        data["duration_ms"] = round(self.duration_seconds * 1000.0, 3)
        if self.error is not None:
            data["error"] = self.error
        return data


def interpret_status(value: object) -> HealthStatus:
    """A component's or check's reported status as a ``HealthStatus`` (unknown: UNKNOWN)."""
    if isinstance(value, HealthStatus):
        return value
    if isinstance(value, str):
        try:
            return HealthStatus(value.upper())
        except ValueError:
            return HealthStatus.UNKNOWN
    name = getattr(value, "name", None)  # another Enum with the same member names
    if isinstance(name, str) and name.upper() in HealthStatus.__members__:
        return HealthStatus[name.upper()]
    return HealthStatus.UNKNOWN


def _outcome(value: object) -> tuple[HealthStatus, dict[str, Any]]:
    if value is None or value is True:
        return HealthStatus.HEALTHY, {}
    if value is False:
        return HealthStatus.UNHEALTHY, {}
    if isinstance(value, Mapping):
        return interpret_status(value.get("status", HealthStatus.HEALTHY)), redact_mapping(
            {str(k): v for k, v in value.items() if k != "status"}
        )
    status = interpret_status(value)
    if status is HealthStatus.UNKNOWN:
        return status, {"result": redact(safe_repr(value))}
    return status, {}


def _describe_error(exc: BaseException) -> str:
    return truncate(f"{type(exc).__name__}: {error_text(exc)}")


class HealthCheck:
    """A named check with its timeout, its cache and its single in-flight run."""

    def __init__(
        self,
        name: str,
        check: Callable[[], Any],
        *,
        timeout: float,
        cache_seconds: float,
        critical: bool,
        clock: Clock,
    ) -> None:
        self.name = name
        self.check = check
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.critical = critical
        self.is_async = inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(
            getattr(check, "__call__", None)  # noqa: B004 - an instance with async __call__
        )
        self._clock = clock
        self._lock = threading.Lock()  # guards the fields below; never held across the check
        self._cached: CheckResult | None = None
        self._expires = 0.0
        self._running: concurrent.futures.Future[CheckResult] | None = None
        self._running_since = 0.0

    # --- sync --------------------------------------------------------------------------

    def run(self) -> CheckResult:
        """The cached result, or a fresh one within ``timeout`` seconds."""
        return self.wait(*self.start())

    def wait(
        self, claimed: CheckResult | concurrent.futures.Future[CheckResult], started: float
    ) -> CheckResult:
        """The outcome of ``start()``: the cached result, or the run's within the timeout."""
        if isinstance(claimed, CheckResult):
            return claimed
        try:
            return claimed.result(timeout=self._remaining(started))
        except concurrent.futures.TimeoutError:
            return self._timed_out()

    def start(self) -> tuple[CheckResult | concurrent.futures.Future[CheckResult], float]:
        """The cached result, or the future of the run in flight (starting one if none)."""
        now = self._clock()
        with self._lock:
            if self._cached is not None and now < self._expires:
                return self._cached, now
            if self._running is not None:
                if now - self._running_since >= self.timeout:
                    return self._timed_out(), now  # still hung: say so without waiting again
                return self._running, self._running_since
            future: concurrent.futures.Future[CheckResult] = concurrent.futures.Future()
            self._running = future
            self._running_since = now
        threading.Thread(
            target=self._run_in_thread,
            args=(future,),
            name=f"health-check-{self.name}",
            daemon=True,
        ).start()
        return future, now

    def _run_in_thread(self, future: concurrent.futures.Future[CheckResult]) -> None:
        started = self._clock()
        try:
            value = self.check()
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            status, details = _outcome(value)
            result = CheckResult(status, details, self._clock() - started)
        except Exception as exc:
            result = CheckResult(
                HealthStatus.ERROR, {}, self._clock() - started, _describe_error(exc)
            )
        self._finish(future, result)

    def _finish(self, future: concurrent.futures.Future[CheckResult], result: CheckResult) -> None:
        with self._lock:
            self._cached = result
            self._expires = self._clock() + self.cache_seconds
            if self._running is future:
                self._running = None
        future.set_result(result)

    def _remaining(self, started: float) -> float:
        return max(0.0, self.timeout - (self._clock() - started))

    def _timed_out(self) -> CheckResult:
        return CheckResult(
            HealthStatus.ERROR,
            {},
            self.timeout,
            f"timed out after {self.timeout:g} s (the check is still running)",
        )

    # --- async -------------------------------------------------------------------------

    async def arun(self) -> CheckResult:
        """Like ``run()``, without blocking the event loop; async checks run on this loop."""
        if not self.is_async:
            claimed, started = self.start()
            if isinstance(claimed, CheckResult):
                return claimed
            try:
                # shield: a timeout here must not cancel the shared future others wait on
                return await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(claimed)), self._remaining(started)
                )
            except TimeoutError:
                return self._timed_out()
        now = self._clock()
        with self._lock:
            if self._cached is not None and now < self._expires:
                return self._cached
        return await self._arun_here()

    async def _arun_here(self) -> CheckResult:
        started = self._clock()
        try:
            value = await asyncio.wait_for(_await(self.check()), self.timeout)
            status, details = _outcome(value)
            result = CheckResult(status, details, self._clock() - started)
        except TimeoutError:
            # wait_for cancelled the coroutine: an async check, unlike a thread, can be stopped
            result = CheckResult(
                HealthStatus.ERROR, {}, self.timeout, f"timed out after {self.timeout:g} s"
            )
        except Exception as exc:
            result = CheckResult(
                HealthStatus.ERROR, {}, self._clock() - started, _describe_error(exc)
            )
        with self._lock:
            self._cached = result
            self._expires = self._clock() + self.cache_seconds
        return result


async def _await(value: Any) -> Any:
    return await value
