"""Every file in examples/ runs as a user would run it: exit status 0 and its key output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopback import require_redis

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# file -> lines (or parts of lines) its output must contain
EXPECTED: dict[str, list[str]] = {
    "01_service_wrapper.py": [
        "spec wrapper: {'user_id': '123', 'status': 'created'}",
        "spec wrapper: 1 operation(s) handled",
        "library wrapper rejected: validation failed",
        "email: is required",
        "library wrapper: 1 call(s) timed",
    ],
    "02_decorator.py": [
        "spec decorator: {'status': 'updated', 'user_id': '42'}",
        "spec validate_input: {'status': 'deleted', 'user_id': '42'}",
        "library decorator: {'status': 'updated', 'user_id': '42'}",
        "library decorator rejected: validation failed",
    ],
    "03_flask_middleware.py": [
        "POST /api/users -> 200 {'status': 'success'}",
        "POST /api/users without email -> 422 application/problem+json",
        "email: is required",
        "operations timed: [",
    ],
    "04_event_processor.py": [
        "✅ Event processed: {'status': 'processed', 'event_type': 'user_activity'}",
        "✅ library: {'status': 'processed', 'event_type': 'user_activity'}",
        "❌ library: event of type 'user_activity' was dead-lettered",
        "dead letters kept: 1",
    ],
    "05_environment_config.py": [
        "max_retries = 5",
        "base_delay = 1.0",
        "rejected: invalid max_retries = 'three' from environment variable "
        "COORDINATION_MAX_RETRIES",
    ],
    "06_yaml_config.py": [
        "missing file -> defaults: True",
        "max_retries = 4 (from the file)",
        "rejected: invalid base_delay = -1.0 from config/coordination.yaml, line 2",
    ],
    "07_health_check.py": [
        "System health: HEALTHY",
        "System health with the payments breaker open: UNHEALTHY",
    ],
    "08_metrics_export.py": [
        # The spec's two series, and the per-operation duration the library adds.
        'coordination_total_operations{component="error_handler"} 20.0',
        'coordination_response_time_seconds{component="performance_monitor"} ',
        "# TYPE coordination_operation_duration_seconds ",
    ],
    "09_debug_mode.py": [
        "DEBUG:coordination.validation:",
        "DEBUG:coordination.error_handling:operation 'flaky' attempt failed",
        "flaky() -> ok after 3 attempts",
    ],
    "10_fastapi_middleware.py": [
        "POST /api/users -> 200 {'status': 'success'}",
        "POST /api/users without email -> 422 application/problem+json",
        "operations timed: ['GET /api/users/{user_id}', 'POST /api/users']",
    ],
    "11_redis_scale_out.py": [
        "worker A",
        "failed, failed, failed, rejected by the open breaker; breaker OPEN",
        "worker B",
        "rejected by the open breaker, rejected by the open breaker, rejected by the open "
        "breaker, rejected by the open breaker; breaker OPEN",
    ],
    "12_beyond_the_peers.py": [
        "retry budget: 500 calls, ",
        " retries (not 1500)",
        "retries within 20 % + floor: True",
        "not retried: the retry budget (20% of calls over 10 s + 1/s) is spent",
        "the limit moved: True",
        "LOW shed before CRITICAL: True",
        "the group counted the same: True",
    ],
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def _run(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    env["COORDINATION_MAX_RETRIES"] = "5"  # read by the environment example only
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.redis) if "redis" in name else name
        for name in sorted(EXPECTED)
    ],
)
def test_example_runs(name: str, tmp_path: Path) -> None:
    if "redis" in name:
        require_redis()
    result = _run(name, tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    output = result.stdout + result.stderr  # logging (the debug example) goes to stderr
    for expected in EXPECTED[name]:
        assert expected in output, f"{name}: {expected!r} not in:\n{output}"
    assert "Traceback" not in result.stderr
