"""The status page's data and its WSGI and ASGI apps, without a browser."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from werkzeug.test import Client

from coordination.observability import StatusPage
from fakes import FakeClock


class Stats(SimpleNamespace):
    """An ``operation_stats()`` entry as the monitor's contract describes it."""

    def quantile(self, q: float) -> float:
        return float(self.max_seconds * q)


class Monitor:
    """A component with the monitor's reading methods; its counts grow on every read."""

    def __init__(self) -> None:
        self.count = 0

    def operation_stats(self) -> dict[str, Stats]:
        self.count += 10
        return {
            "POST /orders": Stats(
                count=self.count,
                successes=self.count - 2,
                failures=2,
                total_seconds=self.count * 0.004,
                min_seconds=0.001,
                max_seconds=0.02,
            )
        }

    def get_health_status(self) -> dict[str, str]:
        return {"status": "HEALTHY"}


class Handler:
    def operation_stats(self) -> dict[str, dict[str, int]]:
        # The handler's snapshot holds plain counts, not timings: not to be read as such.
        return {"inventory.reserve": {"calls": 20}}

    def get_error_report(self) -> dict[str, Any]:
        return {
            "status": "DEGRADED",
            "total_retries": 7,
            "rejected_by_circuit_breaker": 3,
            "operations": {
                "inventory.reserve": {"calls": 20, "failures": 5, "retries": 7, "rejections": 3},
                "POST /orders": {"calls": 99, "failures": 99, "retries": 0, "rejections": 0},
            },
            "circuit_breakers": {"inventory.reserve": {"state": "OPEN"}},
        }


class Broken:
    def get_health_status(self) -> dict[str, str]:
        raise RuntimeError("database unreachable")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(50.0)


@pytest.fixture
def page(clock: FakeClock) -> StatusPage:
    # Handler first: the monitor's counts must still win for operations both know.
    components = {"handler": Handler(), "monitor": Monitor()}
    return StatusPage(components, config={}, clock=clock, min_interval=1.0)


def test_snapshot_merges_operations_from_every_component(page: StatusPage) -> None:
    data = page.snapshot()
    operations = {op["name"]: op for op in data["operations"]}
    orders = operations["POST /orders"]
    assert orders["count"] == 10
    assert orders["failures"] == 2
    assert orders["error_rate"] == pytest.approx(0.2)
    assert orders["mean_ms"] == pytest.approx(4.0)
    assert orders["p95_ms"] == pytest.approx(19.0)
    assert orders["sources"] == ["handler", "monitor"]
    reserve = operations["inventory.reserve"]
    assert (reserve["count"], reserve["failures"], reserve["retries"]) == (20, 5, 7)
    assert reserve["breaker"] == "OPEN"
    assert reserve["p50_ms"] is None
    assert data["breakers"] == {"inventory.reserve": "OPEN"}
    assert data["totals"] == {
        "requests": 10,
        "failures": 2,
        "retries": 7,
        "rejected_by_circuit_breaker": 3,
    }
    assert data["components"] == {"handler": "DEGRADED", "monitor": "HEALTHY"}
    assert data["status"] == "DEGRADED"


def test_history_gives_throughput_and_latency_per_interval(
    page: StatusPage, clock: FakeClock
) -> None:
    clock.now += 0.5  # too soon after the page's creation for a point
    assert page.snapshot()["history"]["t"] == []
    # The first point is the page's creation, counts at zero: 1 s later, 20 calls.
    clock.now += 0.5
    history = page.snapshot()["history"]
    assert history["t"] == [1.0]
    assert history["throughput"]["POST /orders"] == [20.0]
    clock.now += 2.0
    history = page.snapshot()["history"]
    assert history["t"] == [1.0, 3.0]
    # The monitor's count went 20 -> 30 between the last two points, 2 s apart.
    assert history["throughput"]["POST /orders"] == [20.0, 5.0]
    assert history["latency_ms"]["POST /orders"] == [pytest.approx(4.0), pytest.approx(4.0)]


def test_history_is_bounded(clock: FakeClock) -> None:
    page = StatusPage({"monitor": Monitor()}, config={}, clock=clock, max_points=5)
    for _ in range(20):
        clock.now += 1
        history = page.snapshot()["history"]
    assert len(history["t"]) == 4


def test_a_broken_component_shows_as_error_and_the_page_survives(clock: FakeClock) -> None:
    page = StatusPage({"db": Broken(), "monitor": Monitor()}, config={}, clock=clock)
    data = page.snapshot()
    assert data["components"]["db"] == "ERROR"
    assert "database unreachable" in data["component_errors"]["db"]
    assert data["status"] == "ERROR"
    assert data["operations"][0]["name"] == "POST /orders"


def test_wsgi_serves_the_page_and_its_json(page: StatusPage) -> None:
    client = Client(page.make_wsgi_app())
    html = client.get("/coordination")
    assert html.status_code == 200
    assert html.mimetype == "text/html"
    text = html.get_data(as_text=True)
    assert "<script>" in text
    assert "coordination status" in text
    # Self-contained: nothing is loaded from anywhere else.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    csp = html.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'sha256-" in csp
    data = client.get("/coordination/status.json")
    assert data.mimetype == "application/json"
    assert json.loads(data.get_data())["breakers"] == {"inventory.reserve": "OPEN"}
    assert client.get("/elsewhere").status_code == 404
    assert client.post("/coordination").status_code == 405


def test_the_csp_hashes_match_the_inline_script_and_style(page: StatusPage) -> None:
    import base64
    import hashlib

    response = Client(page.wsgi_app).get("/coordination/")
    text = response.get_data(as_text=True)
    csp = response.headers["Content-Security-Policy"]
    for tag in ("script", "style"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
        assert body is not None
        digest = base64.b64encode(hashlib.sha256(body.group(1).encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp


def test_path_comes_from_the_config_and_the_title_is_escaped(clock: FakeClock) -> None:
    page = StatusPage(
        {}, config={"status_page_path": "/ops/status"}, title="<b>shop</b>", clock=clock
    )
    assert page.handles("/ops/status")
    assert page.handles("/ops/status/status.json")
    assert not page.handles("/coordination")
    text = Client(page.wsgi_app).get("/ops/status").get_data(as_text=True)
    assert "&lt;b&gt;shop&lt;/b&gt;" in text
    assert "<b>shop</b>" not in text


async def test_asgi_serves_the_same(page: StatusPage) -> None:
    transport = httpx.ASGITransport(app=page.make_asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        html = await client.get("/coordination")
        data = await client.get("/coordination/status.json")
        missing = await client.get("/nope")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert data.json()["components"]["monitor"] == "HEALTHY"
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "coordination"}, "path must start with '/'"),
        ({"refresh_seconds": 0}, "refresh_seconds must be > 0"),
        ({"max_points": 1}, "max_points >= 2"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StatusPage({}, config={}, **kwargs)


def test_components_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="components must be a mapping"):
        StatusPage([Monitor()], config={})  # type: ignore[arg-type]


def test_each_poll_takes_one_snapshot_of_a_handler(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A handler's snapshot reads every operation and breaker: rows, limits, reloads and
    # its health come from one of them.
    from coordination.error_handling import CoordinationErrorHandler

    handler = CoordinationErrorHandler({"max_retries": 0})
    handler.execute_with_error_handling(lambda: None, operation_name="ping")
    taken = []
    snapshot = handler.snapshot

    def counted() -> Any:
        taken.append(1)
        return snapshot()

    monkeypatch.setattr(handler, "snapshot", counted)
    StatusPage({"handler": handler}, config={}, clock=clock).snapshot()
    assert len(taken) == 1
