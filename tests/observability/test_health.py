"""CoordinationHealthChecker: the spec's rules, custom checks, timeouts, the cache."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from coordination import HealthStatus
from coordination.observability import CoordinationHealthChecker
from fakes import FakeClock

pytestmark = pytest.mark.usefixtures("clean_environment")


class Reports:
    """A component that reports whatever status it is given."""

    def __init__(self, status: Any = "HEALTHY") -> None:
        self.status = status

    def get_health_status(self) -> Any:
        return {"status": self.status, "detail": 1}


class ErrorReportOnly:
    def get_error_report(self) -> dict[str, Any]:
        return {"status": "DEGRADED", "total_operations": 7}


class Broken:
    def get_health_status(self) -> dict[str, Any]:
        raise RuntimeError("database handle closed")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event hanging checks wait on; set at teardown so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def test_spec_rules_statuses_and_document_shape() -> None:
    checker = CoordinationHealthChecker(
        {"validator": Reports(), "error_handler": ErrorReportOnly(), "plain": object()}
    )
    health = checker.check_health()
    assert health["overall_status"] == "DEGRADED"
    assert health["components"]["validator"] == {"status": "HEALTHY", "detail": 1}
    assert health["components"]["error_handler"]["total_operations"] == 7
    assert health["components"]["plain"] == {"status": "UNKNOWN"}
    stamp = datetime.fromisoformat(health["timestamp"])
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert f"System health: {health['overall_status']}" == "System health: DEGRADED"


def test_the_worst_status_wins_whatever_the_order() -> None:
    # The spec let a later DEGRADED component overwrite an earlier UNHEALTHY one.
    checker = CoordinationHealthChecker({"a": Reports("UNHEALTHY"), "b": Reports("DEGRADED")})
    assert checker.check_health()["overall_status"] is HealthStatus.UNHEALTHY


def test_a_raising_component_is_error_and_the_whole_unhealthy() -> None:
    checker = CoordinationHealthChecker({"ok": Reports(), "db": Broken()})
    health = checker.check_health()
    assert health["overall_status"] is HealthStatus.UNHEALTHY
    assert health["components"]["db"] == {
        "status": "ERROR",
        "error": "RuntimeError: database handle closed",
    }


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        (HealthStatus.DEGRADED, "DEGRADED"),
        ("degraded", "DEGRADED"),
        ("sideways", "UNKNOWN"),
        (None, "UNKNOWN"),
    ],
)
def test_reported_statuses_are_normalised(reported: Any, expected: str) -> None:
    class Bare:
        def get_health_status(self) -> Any:
            return reported

    assert CoordinationHealthChecker({"c": Bare()}).check_health()["components"]["c"] == {
        "status": expected
    }


def test_custom_checks_sync_and_async_and_their_outcomes() -> None:
    async def cache_ping() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"status": "HEALTHY", "latency_ms": 0.4}

    checker = CoordinationHealthChecker(config={"health_cache_seconds": 0})
    checker.add_check("database", lambda: True)
    checker.add_check("cache", cache_ping)
    checker.add_check("disk", lambda: False, critical=False)
    health = checker.check_health()
    assert health["checks"]["database"]["status"] == "HEALTHY"
    assert health["checks"]["cache"]["latency_ms"] == 0.4
    assert health["checks"]["disk"]["status"] == "UNHEALTHY"
    assert health["overall_status"] is HealthStatus.DEGRADED  # disk is not critical


def test_a_raising_check_is_an_error() -> None:
    def ping() -> None:
        raise ConnectionRefusedError("127.0.0.1:5432")

    checker = CoordinationHealthChecker()
    checker.add_check("database", ping)
    health = checker.check_health()
    assert health["checks"]["database"]["status"] == "ERROR"
    assert "ConnectionRefusedError: 127.0.0.1:5432" in health["checks"]["database"]["error"]
    assert health["overall_status"] is HealthStatus.UNHEALTHY


def test_a_hanging_check_times_out_and_does_not_pile_up(release: threading.Event) -> None:
    started = []

    def hangs() -> None:
        started.append(1)
        release.wait(10)

    checker = CoordinationHealthChecker(config={"health_cache_seconds": 0})
    checker.add_check("hangs", hangs, timeout=0.3)
    checker.add_check("fine", lambda: None)
    began = time.monotonic()
    first = checker.check_health()
    assert time.monotonic() - began >= 0.3
    assert first["checks"]["hangs"]["status"] == "ERROR"
    assert "timed out after 0.3 s" in first["checks"]["hangs"]["error"]
    assert first["checks"]["fine"]["status"] == "HEALTHY"
    assert first["overall_status"] is HealthStatus.UNHEALTHY
    began = time.monotonic()
    second = checker.check_health()
    assert time.monotonic() - began < 0.25  # the hung run is reported, not waited for again
    assert second["checks"]["hangs"]["status"] == "ERROR"
    assert len(started) == 1  # and it is still the only one in flight


def test_timeouts_work_off_the_main_thread(release: threading.Event) -> None:
    checker = CoordinationHealthChecker()
    checker.add_check("hangs", lambda: release.wait(10), timeout=0.05)
    seen: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: seen.append(checker.check_health()))
    worker.start()
    worker.join(5)
    assert seen[0]["checks"]["hangs"]["status"] == "ERROR"


def test_results_are_cached_for_the_configured_time() -> None:
    clock = FakeClock(100.0)
    calls = []
    checker = CoordinationHealthChecker(config={"health_cache_seconds": 5}, clock=clock)
    checker.add_check("counted", lambda: calls.append(1))
    checker.check_health()
    clock.now += 4.9
    checker.check_health()
    assert len(calls) == 1
    clock.now += 0.2
    checker.check_health()
    assert len(calls) == 2


async def test_acheck_health_runs_async_checks_on_the_loop_and_times_them_out() -> None:
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = asyncio.get_running_loop()

    async def on_this_loop() -> bool:
        return asyncio.get_running_loop() is loop

    checker = CoordinationHealthChecker({"v": Reports()})
    checker.add_check("hangs", hangs, timeout=0.05)
    checker.add_check("loop", on_this_loop)
    checker.add_check("sync", lambda: "DEGRADED")
    health = await checker.acheck_health()
    assert health["checks"]["hangs"]["status"] == "ERROR"
    assert cancelled.is_set()  # an async check, unlike a thread, is stopped
    assert health["checks"]["loop"]["status"] == "HEALTHY"
    assert health["checks"]["sync"]["status"] == "DEGRADED"
    assert health["overall_status"] is HealthStatus.UNHEALTHY


async def test_a_hanging_sync_check_does_not_block_the_loop(release: threading.Event) -> None:
    checker = CoordinationHealthChecker()
    checker.add_check("hangs", lambda: release.wait(10), timeout=0.2)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    health = await checker.acheck_health()
    ticker.cancel()
    assert health["checks"]["hangs"]["status"] == "ERROR"
    assert ticks >= 5


def test_liveness_never_consults_components() -> None:
    checker = CoordinationHealthChecker({"db": Broken()})
    live = checker.check_liveness()
    assert live["overall_status"] is HealthStatus.HEALTHY
    assert live["uptime_seconds"] >= 0
    assert checker.check_readiness()["overall_status"] is HealthStatus.UNHEALTHY


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="mapping of names to components"):
        CoordinationHealthChecker(["validator"])  # type: ignore[arg-type]
    checker = CoordinationHealthChecker()
    with pytest.raises(TypeError, match="'db' must be callable"):
        checker.add_check("db", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout of health check 'db'"):
        checker.add_check("db", lambda: True, timeout=-1)
    checker.add_check("db", lambda: True)
    with pytest.raises(ValueError, match="already registered"):
        checker.add_check("db", lambda: True)
    checker.remove_check("db")
    assert checker.check_health()["checks"] == {}
