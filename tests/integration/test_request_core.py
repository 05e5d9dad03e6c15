"""The middleware's sans-IO core on its own: request facts in, decisions out, no server,
no environ, no scope — the algorithm both adapters share."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from coordination import CoordinationConfig
from coordination._http_snapshot import HttpSnapshot
from coordination.integration._client_limit import build_client_limit
from coordination.integration._http import HttpCounters, Rejection, RequestPolicy
from coordination.integration._problems import AnswerLog
from coordination.integration._request import CHECK_CLIENT, READ_BODY, Exchange, RequestCore
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator

RULES = {"POST /users": {"required_fields": ["name"]}}


class Routes:
    """A resolver reading the route from the request mapping (as a framework would)."""

    def before(self, request: Any) -> str | None:
        return request.get("route")

    def after(self, request: Any) -> str | None:
        return request.get("route")

    def known_routes(self, request: Any) -> None:
        return None


def core(*, rate: str | None = None, awaits: bool = False) -> RequestCore:
    config = CoordinationConfig(max_request_body_bytes=100, max_header_bytes=50)
    validator = CoordinationValidator(config=config)
    return RequestCore(
        RequestPolicy(config, validator, RULES, None),
        Routes(),
        HttpCounters(),
        CoordinationPerformanceMonitor(config=config),
        build_client_limit(config, rate, None, None),
        lambda request: str(request.get("client")),
        None,
        True,
        AnswerLog(logging.getLogger("test")),
        logging.getLogger("test"),
        awaits=awaits,
    )


def exchange(method: str = "GET", route: str | None = "/users", **facts: Any) -> Exchange:
    return Exchange({"route": route, "client": "a", **facts}, method, "/users")


def test_a_plain_request_is_admitted_with_its_length_and_counted_by_route() -> None:
    request_core = core()
    request = exchange("POST", "/other")
    assert request_core.admit(request, 10, "12") is None
    assert request.length == 12
    request_core.finish(request, 201)
    snapshot = request_core.counters.snapshot(request_core._monitor)
    assert isinstance(snapshot, HttpSnapshot)
    assert snapshot.status_codes == {201: 1}
    assert snapshot.in_flight == 0
    (route,) = snapshot.routes
    assert (route.method, route.route, dict(route.statuses)) == ("POST", "/other", {"201": 1})
    assert route.latency is not None
    assert route.latency.timed_count == 1


@pytest.mark.parametrize(
    ("method", "header_size", "length", "status"),
    [
        ("BREW", 10, None, 405),
        ("GET", 51, None, 431),
        ("GET", 10, "x1", 400),
        ("GET", 10, "101", 413),
        ("GET", 10, "9" * 40, 413),
    ],
)
def test_structural_limits_are_rejections_with_ready_problem_documents(
    method: str, header_size: int, length: str | None, status: int
) -> None:
    request_core = core()
    request = exchange(method)
    decision = request_core.admit(request, header_size, length)
    assert isinstance(decision, Rejection)
    assert decision.status == status
    request_core.rejected(request, decision)
    snapshot = request_core.counters.snapshot()
    assert snapshot.rejected == {status: 1}
    assert {r.method for r in snapshot.routes} == {"_OTHER" if method == "BREW" else method}


def test_a_bad_method_is_refused_before_the_client_limit_spends_a_token() -> None:
    request_core = core(rate="1/m")
    assert isinstance(request_core.admit(exchange("BREW"), 10, None), Rejection)
    assert request_core.admit(exchange(), 10, None) is None  # the one token is still there
    second = request_core.admit(exchange(), 10, None)
    assert isinstance(second, Rejection)
    assert second.status == 429


async def test_an_async_adapter_is_asked_to_await_the_client_limit() -> None:
    request_core = core(rate="1/m", awaits=True)
    request = exchange()
    assert request_core.admit(request, 10, "5") is CHECK_CLIENT
    answer = await request_core.acheck_client(request)
    assert request_core.admit_checked(request, answer, "5") is None
    assert request.length == 5
    again = exchange()
    assert request_core.admit(again, 10, None) is CHECK_CLIENT
    refused = request_core.admit_checked(again, await request_core.acheck_client(again), None)
    assert isinstance(refused, Rejection)
    assert refused.status == 429


def test_a_route_with_a_rule_set_asks_for_its_body_then_judges_it() -> None:
    request_core = core()
    request = exchange("POST", "/users")
    assert request_core.admit(request, 10, "14") is READ_BODY
    broken = request_core.check_body(request, b'{"nick": "a"}', "application/json")
    assert isinstance(broken, Rejection)
    assert broken.status == 422
    valid = exchange("POST", "/users")
    assert request_core.admit(valid, 10, "14") is READ_BODY
    assert request_core.check_body(valid, b'{"name": "ada"}', "application/json") is None


def test_an_error_of_the_app_is_counted_as_a_500_with_its_type() -> None:
    request_core = core()
    request = exchange()
    request_core.admit(request, 10, None)
    request_core.finish(request, 500, ValueError("boom"))
    snapshot = request_core.counters.snapshot()
    assert snapshot.status_codes == {500: 1}
    assert snapshot.exceptions == {"ValueError": 1}
