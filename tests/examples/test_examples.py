"""Every file in examples/ runs as a user would run it: exit status 0 and its key output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopback import require_nats, require_postgres, require_rabbitmq, require_redis

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
    "13_rabbitmq_events.py": [
        "url='amqp://guest:***@127.0.0.1:5672/'",
        "order 1: 2 x A-1",
        "order 3: 1 x C-3",
        "settled 4: 2 processed, 1 dead-lettered by the processor, 1 poison",
        "dead letter 1: failed (ValueError)",
        "dead letter 2: poison: the body is not JSON",
    ],
    "14_nats_events.py": [
        "billed order 1: 9.50",
        "billed order 3: 42.25",
        "settled 4: 3 processed, 1 poison",
        "dead letter: poison: the body is not UTF-8",
        "deleted the stream 'example_",
    ],
    "15_celery_tasks.py": [
        "success: charged A-1: 30",
        "invalid: InvalidTask - invalid",
        "failed after 3 deliveries (Celery retries [0, 1, 2]): FAILURE",
        "dead letter 2: failed, args=['A-3'], kwargs={'amount': 12}, attempts=3",
        "replayed: 2 sent again; still failing: 0",
        "handler: successes=2 retries=2 failures=1",
    ],
    "16_postgres_dead_letters.py": [
        "host A: processed 2 event(s), dead-lettered 1 (payment 2: failed: payments service down)",
        "host B sees 1 dead letter(s): [{'id': 2, 'amount': 20}] reason failed",
        "host B replayed: succeeded 1, failed 0; left 0",
        "the store is shown as postgresql://***@127.0.0.1:5432/test",
        "the shipping service sees 0 dead letter(s)",
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


# An example that needs a service says so in its name: its marker, and the check that
# skips it (or fails it in CI) when the service is down.
SERVICES: dict[str, tuple[pytest.MarkDecorator, Callable[[], str]]] = {
    "redis": (pytest.mark.redis, require_redis),
    "postgres": (pytest.mark.postgres, require_postgres),
    "nats": (pytest.mark.nats, require_nats),
    "rabbitmq": (pytest.mark.rabbitmq, require_rabbitmq),
}


def _service(name: str) -> str | None:
    return next((service for service in SERVICES if service in name), None)


def _example(name: str) -> Any:
    service = _service(name)
    return name if service is None else pytest.param(name, marks=SERVICES[service][0])


@pytest.mark.parametrize("name", [_example(name) for name in sorted(EXPECTED)])
def test_example_runs(name: str, tmp_path: Path) -> None:
    service = _service(name)
    if service is not None:
        SERVICES[service][1]()
    result = _run(name, tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    output = result.stdout + result.stderr  # logging (the debug example) goes to stderr
    for expected in EXPECTED[name]:
        assert expected in output, f"{name}: {expected!r} not in:\n{output}"
    assert "Traceback" not in result.stderr
