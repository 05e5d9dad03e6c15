"""The middleware's per-client rate limit: 429 problem+json with Retry-After, per address or
per header value, in memory or shared by several middleware instances through Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import ConfigError
from coordination._time import monotonic
from coordination.backends.redis import RedisBackend
from coordination.error_handling import InMemoryRateLimiter, Rate
from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware
from loopback import free_port

pytestmark = pytest.mark.usefixtures("clean_environment")


def flask_app() -> Flask:
    app = Flask("limited")

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    return app


def starlette_app() -> Starlette:
    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")

    return Starlette(routes=[Route("/ping", ping)])


def get(client: Client, address: str = "10.0.0.1", **headers: str) -> Any:
    response = client.get("/ping", environ_base={"REMOTE_ADDR": address}, headers=headers)
    response.close()
    return response


def test_the_third_request_in_a_minute_gets_429_with_retry_after() -> None:
    middleware = CoordinationMiddleware(flask_app(), config={"client_rate_limit": "2/m"})
    client = Client(middleware)
    assert [get(client).status_code for _ in range(2)] == [200, 200]
    refused = get(client)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    # 2/m: one request every 30 s once the burst of 2 is spent, in whole seconds
    assert refused.headers["Retry-After"] == "30"
    problem = json.loads(refused.get_data())
    assert (problem["status"], problem["title"]) == (429, "Too Many Requests")
    assert "2/60s" in problem["detail"]
    counters = middleware.get_middleware_status()["middleware"]
    assert counters["rate_limited"] == 1
    assert counters["rejected"] == {429: 1}
    assert counters["status_codes"] == {200: 2, 429: 1}
    assert counters["client_rate_limit"] == {
        "rate": "2/60s",
        "key": "address",
        "limiter": "InMemoryRateLimiter",
    }


def test_each_address_has_its_own_limit() -> None:
    client = Client(CoordinationMiddleware(flask_app(), client_rate_limit="1/m"))
    assert get(client, "10.0.0.1").status_code == 200
    assert get(client, "10.0.0.1").status_code == 429
    assert get(client, "10.0.0.2").status_code == 200
    assert get(client, "2001:db8::1").status_code == 200
    assert get(client, "10.0.0.2").status_code == 429


def test_no_limit_configured_lets_everything_through() -> None:
    client = Client(CoordinationMiddleware(flask_app(), config={}))
    assert {get(client).status_code for _ in range(50)} == {200}


async def test_asgi_limit_by_header_value_with_the_address_as_fallback() -> None:
    middleware = CoordinationASGIMiddleware(
        starlette_app(),
        config={"client_rate_limit": "2/m", "client_rate_limit_key": "header:X-API-Key"},
    )
    transport = httpx.ASGITransport(app=middleware, client=("10.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

        async def status(key: str | None) -> int:
            headers = {} if key is None else {"X-API-Key": key}
            response = await client.get("/ping", headers=headers)
            if response.status_code == 429:
                assert response.headers["retry-after"] == "30"
                assert response.headers["content-type"] == "application/problem+json"
            return response.status_code

        assert [await status("alice") for _ in range(3)] == [200, 200, 429]
        assert [await status("bob") for _ in range(3)] == [200, 200, 429]
        # without the header, the client is its address: a third, separate allowance
        assert [await status(None) for _ in range(3)] == [200, 200, 429]
    assert middleware.get_middleware_status()["middleware"]["rate_limited"] == 3


class RecordingLimiter:
    """A RateLimiterBackend that remembers the keys it was asked about."""

    blocking = False

    def __init__(self) -> None:
        self.rate = Rate.parse("1000/s")
        self.keys: list[str] = []

    def try_acquire(self, key: str, cost: int = 1) -> float:
        self.keys.append(key)
        return 0.0

    async def atry_acquire(self, key: str, cost: int = 1) -> float:
        return self.try_acquire(key, cost)


def test_header_values_reach_the_limiter_only_as_short_hashes() -> None:
    limiter = RecordingLimiter()
    middleware = CoordinationMiddleware(
        flask_app(), rate_limiter=limiter, client_rate_limit_key="header:X-API-Key"
    )
    client = Client(middleware)
    secret = "sk-live-" + "x" * 5000  # hostile or secret: neither may be kept as given
    get(client, **{"X-API-Key": secret})
    get(client, **{"X-API-Key": secret})
    get(client, **{"X-API-Key": "other"})
    get(client)  # no header: keyed by address
    get(client, "f" * 4000)  # not a real address (copied from X-Forwarded-For?): hashed
    first, again, other, by_address, long_address = limiter.keys
    assert first == again != other
    assert all(len(key) == 24 and "sk-live" not in key for key in (first, other, long_address))
    assert by_address == "a:10.0.0.1"


def test_the_in_memory_limiter_stays_bounded_under_a_flood_of_addresses() -> None:
    limiter = InMemoryRateLimiter(Rate.parse("1/h"), max_keys=100)
    client = Client(CoordinationMiddleware(flask_app(), rate_limiter=limiter))
    for n in range(1000):  # every client busy for an hour: nothing is idle to evict
        assert get(client, f"10.1.{n // 256}.{n % 256}").status_code == 200
    assert len(limiter._tat) <= 100


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"client_rate_limit": "fast"}, "client_rate_limit"),
        ({"client_rate_limit_key": "cookie:session"}, "client_rate_limit_key"),
        ({"client_rate_limit_key": "header:"}, "client_rate_limit_key"),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_field(
    options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        CoordinationMiddleware(flask_app(), **options)
    with pytest.raises(ConfigError, match=field):
        CoordinationMiddleware(flask_app(), config=options)


def test_a_limiter_that_is_not_one_is_refused() -> None:
    with pytest.raises(TypeError, match="RateLimiterBackend"):
        CoordinationMiddleware(flask_app(), rate_limiter=object())  # type: ignore[arg-type]


# --- shared through Redis ---------------------------------------------------------------


def redis_config(url: str, prefix: str, **more: Any) -> dict[str, Any]:
    return {"redis_url": url, "redis_namespace": prefix, "client_rate_limit": "3/m", **more}


@pytest.fixture
def backends(redis_url: str, namespace: str) -> Iterator[list[RedisBackend]]:
    """The backend ``redis_url`` configures, and a second one of its own (another
    connection, as another process would have), closed after the test."""
    made = [
        RedisBackend.from_config(redis_config(redis_url, namespace)),
        RedisBackend(redis_url, namespace=namespace),
    ]
    yield made
    for backend in made:
        backend.close()


@pytest.mark.redis
def test_two_wsgi_middleware_share_one_limit_through_redis(
    redis_url: str,
    namespace: str,
    backends: list[RedisBackend],
) -> None:
    first = Client(CoordinationMiddleware(flask_app(), config=redis_config(redis_url, namespace)))
    limiter = backends[1].rate_limiter(Rate.parse("3/m"), clock=monotonic)
    second = Client(CoordinationMiddleware(flask_app(), rate_limiter=limiter))
    assert [get(first).status_code, get(second).status_code, get(first).status_code] == [200] * 3
    refused = get(second)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "20"  # 3/m: one every 20 s
    assert get(first).status_code == 429
    assert get(second, "10.0.0.9").status_code == 200  # another client, its own allowance


@pytest.mark.redis
async def test_two_asgi_middleware_share_one_limit_through_redis(
    redis_url: str,
    namespace: str,
    backends: list[RedisBackend],
) -> None:
    config = redis_config(redis_url, namespace, client_rate_limit_key="header:X-API-Key")
    limiter = backends[1].rate_limiter(Rate.parse("3/m"), clock=monotonic)
    apps = [
        CoordinationASGIMiddleware(starlette_app(), config=config),
        CoordinationASGIMiddleware(
            starlette_app(), rate_limiter=limiter, client_rate_limit_key="header:X-API-Key"
        ),
    ]
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        for app in apps
    ]
    try:
        statuses = [
            (await clients[n % 2].get("/ping", headers={"X-API-Key": "k"})).status_code
            for n in range(5)
        ]
    finally:
        for client in clients:
            await client.aclose()
        for backend in backends:
            await backend.aclose()
    assert statuses == [200, 200, 200, 429, 429]


def test_redis_down_with_the_local_policy_still_limits_per_process() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    middleware = CoordinationMiddleware(flask_app(), config=redis_config(dead, "down-local"))
    client = Client(middleware)
    assert [get(client).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_redis_down_with_the_raise_policy_answers_503_not_500() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = redis_config(dead, "down-raise", redis_outage_policy="raise")
    client = Client(CoordinationMiddleware(flask_app(), config=config))
    refused = get(client)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["Content-Type"] == "application/problem+json"


async def test_asgi_redis_down_local_policy_limits_and_raise_policy_answers_503() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    local = CoordinationASGIMiddleware(starlette_app(), config=redis_config(dead, "a-local"))
    raising = CoordinationASGIMiddleware(
        starlette_app(), config=redis_config(dead, "a-raise", redis_outage_policy="raise")
    )
    statuses: dict[str, list[int]] = {}
    for name, app in (("local", local), ("raise", raising)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses[name] = [(await client.get("/ping")).status_code for _ in range(4)]
    assert statuses == {"local": [200, 200, 200, 429], "raise": [503] * 4}
    assert raising.get_middleware_status()["middleware"]["rejected"] == {503: 4}
