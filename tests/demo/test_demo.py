"""``coordination demo`` end to end, as a user runs it: a subprocess, its output, its status."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordination.demo._console import format_table, metrics_excerpt
from loopback import require_redis

from ._serving import COMMAND, demo_env, serving_demo


def run_demo(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=demo_env(),
        check=False,
    )


@pytest.mark.slow
def test_the_demo_tells_the_whole_story_and_exits_0() -> None:
    result = run_demo("--duration", "8")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # The phases of the dependency, in order.
    phases = [m.group(1) for m in re.finditer(r"inventory service: (\w+) —", out)]
    assert phases == ["healthy", "degraded", "outage", "recovered"]
    # The breaker opens in the outage, goes half-open, and closes after recovery.
    moves = re.findall(r"breaker inventory\.reserve: (\w+) → (\w+)", out)
    assert ("CLOSED", "OPEN") in moves
    assert ("OPEN", "HALF_OPEN") in moves
    assert moves[-1] == ("HALF_OPEN", "CLOSED")
    assert "✔ the breaker opened during the outage and closed again after recovery" in out
    # The route does not catch CircuitOpenError: while the breaker is open the middleware
    # answers an order 503 problem+json with Retry-After (not a bare 500).
    answered = re.search(
        r"client POST /api/orders → 503 application/problem\+json, Retry-After: (\d+) ", out
    )
    assert answered is not None, out
    assert int(answered.group(1)) >= 1
    # One set of components: the decorated call's open breaker fails the middleware's
    # readiness probe and shows in the middleware's /metrics, with nothing wired by hand.
    assert "middleware GET /health/ready → 503 'fail'" in out
    assert re.search(
        r"middleware GET /metrics → coordination_circuit_breaker_state"
        r'\{breaker="inventory\.reserve"[^}]*\} 2\.0',
        out,
    )
    # Live lines with latency percentiles, retries and both kinds of rejection.
    live = [line for line in out.splitlines() if "p95" in line and "rejected: breaker" in line]
    assert len(live) >= 3
    final = re.search(r"rejected: breaker\s+(\d+) validation\s+(\d+)", live[-1])
    assert final is not None
    assert int(final.group(1)) > 0
    assert int(final.group(2)) > 0
    # Clients saw fast 503s while the breaker was open, and 422s for invalid orders.
    codes = dict(re.findall(r"(\d{3}): (\d+)", out.split("responses", 1)[1].splitlines()[0]))
    assert int(codes["201"]) > 0
    assert int(codes["422"]) > 0
    assert int(codes["503"]) > 0
    assert "500" not in codes  # no error of the library's (or the app's) became a 500
    # The closing sections: health document, metrics excerpt, summary table.
    health = out.split("health document (CoordinationHealthChecker().check_health()):\n", 1)[1]
    document = json.loads(health.split("\n\nmetrics excerpt", 1)[0])
    assert document["overall_status"] == "HEALTHY"
    components = document["components"]
    assert set(components) == {"validator", "error_handler", "performance_monitor"}
    # The health document tells the truth about what ran (it once said 0 and {}).
    sent = int(re.search(r"clients sent (\d+) requests", out).group(1))  # type: ignore[union-attr]
    assert components["validator"]["rule_sets"] == 2  # the two routes' rule sets
    # Every client request was validated, and so was the demo's one probe order.
    assert components["validator"]["validations"] == sent + 1
    assert components["performance_monitor"]["operations"] == 2  # the two routes
    assert components["error_handler"]["operations"] == 1  # inventory.reserve
    assert "coordination_circuit_breaker_state{" in out
    # The excerpt counts the middleware's 503 answers by status: every one the clients
    # saw, and the demo's own probe order.
    answered = re.search(
        r'^coordination_http_requests_total\{[^}]*route="/api/orders",status="503"\} (\S+)$',
        out,
        re.M,
    )
    assert answered is not None, out
    assert float(answered.group(1)) == int(codes["503"]) + 1
    summary = out.split("summary:\n", 1)[1]
    assert re.search(r"^inventory\.reserve\s+\d+\s+\d+.*CLOSED$", summary, re.M)
    assert re.search(r"^POST /api/orders\s+\d+", summary, re.M)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration must be between 1 and 3600 seconds, got 0"),
        (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
    ],
)
def test_bad_options_get_a_clear_message_and_status_2(args: list[str], message: str) -> None:
    result = run_demo(*args, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_redis_is_reported_not_raised() -> None:
    result = run_demo("--duration", "1", "--redis", "redis://127.0.0.1:1/0", timeout=30)
    assert result.returncode == 2
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.fixture
def demo_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with serving_demo() as served:
        yield served


@pytest.mark.slow
def test_serve_keeps_the_endpoints_up_until_ctrl_c(
    demo_server: tuple[str, subprocess.Popen[str]],
) -> None:
    base, process = demo_server
    with urllib.request.urlopen(f"{base}/coordination/status.json", timeout=5) as response:
        status = json.load(response)
    assert "inventory.reserve" in status["breakers"]
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        assert b"coordination_circuit_breaker_state" in response.read()
    with urllib.request.urlopen(f"{base}/coordination", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/html")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0


def test_format_table_aligns_columns() -> None:
    table = format_table(("name", "n"), [("a", 1), ("longer", 22)])
    assert table.splitlines() == ["name     n", "------  --", "a        1", "longer  22"]


def test_metrics_excerpt_keeps_only_the_chosen_families() -> None:
    text = "# HELP a_x x\na_x 1\nb_y 2\na_z 3\na_w 4\n"
    assert metrics_excerpt(text, ("a_",), limit=2) == "a_x 1\na_z 3\n… 1 more lines at /metrics"


@pytest.mark.redis
@pytest.mark.slow
def test_redis_mode_shares_one_breaker_between_two_workers() -> None:
    require_redis()
    result = run_demo("--duration", "8", "--redis", "redis://127.0.0.1:6379/0")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "2 worker processes" in out
    assert re.search(r"worker [01]: breaker CLOSED → OPEN", out)
    assert "✔ one breaker, shared: every worker rejected calls while it was open" in out
    prefix = re.search(r"key prefix '([\w-]+)'", out)
    assert prefix is not None
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        assert list(client.scan_iter(f"{prefix.group(1)}*")) == []  # cleaned up
    finally:
        client.close()


def test_the_makefile_runs_the_demo() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "$(BIN)/coordination demo" in makefile
