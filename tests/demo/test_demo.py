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


@pytest.fixture(scope="module")
def story() -> str:
    """One run of the demo's two acts (6 s each), read by the tests below."""
    result = run_demo("--duration", "12")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_demo_tells_the_whole_story_and_exits_0(story: str) -> None:
    out = story.split("\nact 2 (", 1)[0] + story.split("\nhealth document", 1)[1]
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
    # One set of components: the decorated call's open breaker shows in the middleware's
    # readiness probe (a warning: one of the app's three breakers is open, the pricing
    # calls are still served) and in its /metrics, with nothing wired by hand.
    assert "middleware GET /health/ready → 200 'warn'" in out
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
    health = story.split("health document (CoordinationHealthChecker().check_health()):\n", 1)[1]
    document = json.loads(health.split("\n\nmetrics excerpt", 1)[0])
    assert document["overall_status"] == "HEALTHY"
    components = document["components"]
    assert set(components) == {"validator", "error_handler", "performance_monitor"}
    # The health document tells the truth about what ran (it once said 0 and {}).
    sent = int(re.search(r"clients sent (\d+) requests", out).group(1))  # type: ignore[union-attr]
    assert components["validator"]["rule_sets"] == 2  # the two routes' rule sets
    # Every client request was validated, and so was the demo's one probe order, and the
    # event of every order placed (201) on its way to the ledger (its message structure).
    assert components["validator"]["validations"] == sent + 1 + int(codes["201"])
    # The four routes and the ledger's event processor.
    assert components["performance_monitor"]["operations"] == 5
    # inventory.reserve, pricing.browse, pricing.checkout, shipping.quote, mail.welcome
    # and the ledger's event_order.placed
    assert components["error_handler"]["operations"] == 6
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


@pytest.mark.slow
def test_the_retry_budget_holds_retries_back_while_the_service_fails(story: str) -> None:
    act1 = story.split("\nact 2 (", 1)[0]
    assert "within a budget of 20% of the calls of the last 1s" in act1
    # The moment it is spent is told, after the degraded phase began.
    events = re.findall(r"^\s+([\d.]+)s  (.*)$", act1, re.M)
    spent = [float(at) for at, text in events if text.startswith("retry budget of")]
    degraded = [float(at) for at, text in events if "inventory service: degraded" in text]
    assert spent
    assert degraded
    assert spent[0] >= degraded[0] - 0.3
    # The live line counts the held retries, and they only grow.
    held = [int(n) for n in re.findall(r"held by budget\s+(\d+)", act1)]
    assert held == sorted(held)
    assert held[-1] > 0
    # The closing lines: retries made stay near a fifth of the calls; more were held back.
    made = re.search(
        r"retry budget inventory\.reserve: (\d+) retries made for (\d+) calls .*; "
        r"(\d+) more held back",
        story,
    )
    assert made is not None, story
    retries, calls, held_back = map(int, made.groups())
    assert held_back > 0
    assert held_back == held[-1]
    # 20 % of the calls, plus the floor of 1 a second over the 6 s act, plus slack for
    # the window sliding over the phases.
    assert retries <= 0.2 * calls + 6 + 0.1 * calls
    assert f"✔ the retry budget held back {held_back} retries" in story
    # The summary table has the same count for the operation, and the metrics the series.
    assert re.search(rf"^inventory\.reserve\s.*\s{held_back}\s+\d+\s+0\s+CLOSED$", story, re.M)
    series = re.search(
        r'^coordination_retry_budget_exhausted_total\{[^}]*operation="inventory\.reserve"'
        r"[^}]*\} (\S+)$",
        story,
        re.M,
    )
    assert series is not None, story
    assert float(series.group(1)) == held_back


@pytest.mark.slow
def test_around_the_orders_a_timeout_dead_letters_and_a_rate_limit_happen(story: str) -> None:
    """What the dashboard's timeout, dead-letter and rate-limit panels show, told in act 1
    and counted alike by the conclusion, the clients and the metrics."""
    act1 = story.split("\nact 2 (", 1)[0]
    where = re.search(r"dead-lettered in (\S+dead-letters\.sqlite3)\)", act1)
    assert where is not None, act1
    assert "shipping.quote with a timeout of 50 ms" in act1
    assert "rate_limit='5/s'" in act1
    codes = dict(re.findall(r"(\d{3}): (\d+)", act1.split("responses", 1)[1].splitlines()[0]))

    def told(pattern: str) -> int:
        found = re.search(rf"^✔ (\d+) {pattern}", story, re.M)
        assert found is not None, (pattern, story.split("\nact 1:\n", 1)[1])
        return int(found.group(1))

    def metric(name: str) -> float:
        found = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", story, re.M)
        assert found is not None, name
        return float(found.group(1))

    timeouts = told(r"shipping quotes given up after 50 ms")
    letters = told(r"order\.placed events the ledger refused, dead-lettered")
    limited = told(r"welcome mails over 5/s refused by the rate limit \(429\)")
    assert 0 < timeouts < int(codes["201"])  # a few quotes, and those orders still placed
    assert 0 < letters < int(codes["201"])  # the bulk figs only
    assert limited == int(codes["429"])  # every refusal answered 429, nothing else
    assert metric("coordination_timeouts_total") == timeouts
    assert metric("coordination_rate_limited_total") == limited
    assert metric("coordination_dead_letters") == letters
    assert metric("coordination_dead_letter_store_available") == 1
    # The store lived in a temporary folder for the run, and left with it.
    assert not Path(where.group(1)).exists()
    assert not Path(where.group(1)).parent.exists()


@pytest.mark.slow
def test_the_adaptive_limit_moves_and_sheds_low_before_critical(story: str) -> None:
    act2 = story.split("\nact 2 (", 1)[1].split("\nhealth document", 1)[0]
    assert "concurrency_group='pricing-db'" in act2
    phases = re.findall(r"pricing database: (\w+) —", act2)
    assert phases == ["steady", "surge", "backup", "calm"]
    assert "limit of pricing-db: starts at 2 (vegas, between 2 and 40)" in act2
    # The limit's moves, as told: up while the database keeps up, down in the backup.
    told = re.findall(r"^\s+([\d.]+)s  (.*)$", act2, re.M)
    starts = {
        m.group(1): float(at)
        for at, text in told
        if (m := re.match(r"pricing database: (\w+)", text))
    }
    changes = [
        (float(at), int(m.group(1)), int(m.group(2)))
        for at, text in told
        if (m := re.match(r"limit of pricing-db: (\d+) → (\d+)", text))
    ]
    assert any(new > old and at < starts["backup"] for at, old, new in changes), act2
    # Clients: shoppers shed far more than buyers; buyers served.
    table = story.split("\nact 2:\n", 1)[1]
    rows = {
        m.group(1): (*tuple(map(int, m.groups()[1:4])), float(m.group(5)))
        for m in re.finditer(
            r"^(LOW|CRITICAL)\s+pricing\.\w+\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)%", table, re.M
        )
    }
    low_sent, low_served, low_shed, low_pct = rows["LOW"]
    critical_sent, critical_served, _critical_shed, critical_pct = rows["CRITICAL"]
    assert low_sent == low_served + low_shed
    assert low_shed > 0
    assert low_pct > critical_pct + 20
    assert critical_served > 0.9 * critical_sent
    # The verdict reads the whole trace (every tick), not only the moves big enough to tell.
    followed = re.search(
        r"✔ the limit followed the database: up from 2 to (\d+) while it kept up, "
        r"down to (\d+) when the backup made it slow",
        table,
    )
    assert followed is not None, table
    assert int(followed.group(2)) < int(followed.group(1))
    assert "✔ LOW was shed before CRITICAL" in table
    # The metrics say the same: the shed counter by severity, and the 503s by route.
    prices_503 = re.search(
        r'^coordination_http_requests_total\{[^}]*route="/api/prices",status="503"\} (\S+)$',
        story,
        re.M,
    )
    assert prices_503 is not None
    assert float(prices_503.group(1)) == low_shed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration must be between 1 and 3600 seconds, got 0"),
        (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
        # With --redis the second worker listens on --port + 1.
        (
            ["--port", "65535", "--redis", "redis://127.0.0.1:1/0"],
            "--port must be between 0 and 65534, got 65535",
        ),
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
    # The page shows the second act's limit and the first act's budget, as the console did.
    limit = status["concurrency"]["pricing-db"]
    assert limit["group"] == "pricing-db"
    assert limit["algorithm"] == "vegas"
    assert limit["min_concurrency"] <= limit["limit"] <= limit["max_concurrency"] == 40
    assert limit["shed"]["LOW"] >= limit["shed"]["CRITICAL"]
    operations = {op["name"]: op for op in status["operations"]}
    assert operations["pricing.browse"]["shed"] == limit["shed"]["LOW"]
    assert operations["inventory.reserve"]["held_by_budget"] >= 0
    with urllib.request.urlopen(f"{base}/coordination", timeout=5) as response:
        page = response.read().decode()
    assert "Concurrency limits" in page
    assert "held by budget" in page
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        assert b"coordination_circuit_breaker_state" in response.read()
    with urllib.request.urlopen(f"{base}/coordination", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/html")
    process.send_signal(signal.SIGINT)
    status = process.wait(timeout=15)
    assert process.stderr is not None
    assert status == 0, process.stderr.read()


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
