"""CoordinationMiddleware on Flask: test client, and once under a real threaded server."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask, Response, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import Client

from coordination import ConfigError, RuleSetError
from coordination.integration import CoordinationMiddleware

from .conftest import op_count

USER_RULES = {"required_fields": ["name", "email"]}


class BufferedClient(FlaskClient):
    """Reads and closes every response, as a real server does (Werkzeug's test client
    leaves unbuffered responses open until ``close()``)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make_app(components: dict[str, Any], **options: Any) -> tuple[Flask, CoordinationMiddleware]:
    app = Flask(__name__)
    app.test_client_class = BufferedClient
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/users/<int:user_id>")
    def get_user(user_id: int) -> dict[str, Any]:
        return {"user_id": user_id}

    @app.post("/api/users")
    def create_user() -> dict[str, Any]:
        body = request.get_data()
        return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            for n in range(3):
                yield b"chunk %d\n" % n

        return Response(chunks(), mimetype="text/plain")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("handler bug")

    options.setdefault("route_rules", {"POST /api/users": USER_RULES})
    middleware = CoordinationMiddleware(app.wsgi_app, **options, **components)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    return app, middleware


@pytest.fixture
def flask_app(components: dict[str, Any]) -> tuple[Flask, CoordinationMiddleware]:
    return make_app(components)


def test_requests_are_timed_under_their_route_template(
    flask_app: tuple[Flask, CoordinationMiddleware], monitor: Any
) -> None:
    app, middleware = flask_app
    client = app.test_client()
    for user_id in (1, 2, 3):
        assert client.get(f"/users/{user_id}").json == {"user_id": user_id}
    assert client.get("/no/such/page").status_code == 404
    assert op_count(monitor, "GET /users/<int:user_id>") == 3
    assert op_count(monitor, "unmatched") == 1
    assert not any("/users/1" in name for name in monitor.operation_stats())
    counters = middleware.get_middleware_status()["middleware"]
    assert counters["status_codes"] == {200: 3, 404: 1}
    assert counters["in_flight"] == 0


def test_a_streamed_body_is_timed_until_it_is_closed(
    flask_app: tuple[Flask, CoordinationMiddleware], monitor: Any
) -> None:
    app, _ = flask_app
    response = app.test_client().get("/stream", buffered=False)
    assert op_count(monitor, "GET /stream") == 0  # headers sent, body not yet
    assert b"".join(response.iter_encoded()) == b"chunk 0\nchunk 1\nchunk 2\n"
    response.close()
    assert op_count(monitor, "GET /stream") == 1


def test_a_large_valid_body_reaches_the_app_intact(
    flask_app: tuple[Flask, CoordinationMiddleware],
) -> None:
    app, _ = flask_app
    body = json.dumps(
        {"name": "Ann", "email": "a@example.com", "bio": ["x" * 100_000] * 30}
    ).encode()
    response = app.test_client().post(
        "/api/users", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_malformed_json_gets_a_400_problem(
    flask_app: tuple[Flask, CoordinationMiddleware], monitor: Any
) -> None:
    app, middleware = flask_app
    response = app.test_client().post(
        "/api/users", data=b'{"name": "Ann",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["status"] == 400
    assert problem["title"] == "Bad Request"
    assert "not valid JSON" in problem["detail"]
    assert problem["instance"] == "/api/users"
    assert middleware.get_middleware_status()["middleware"]["rejected"] == {400: 1}
    assert op_count(monitor, "POST /api/users") == 1


def test_a_rule_violation_gets_a_422_with_the_error_list(
    flask_app: tuple[Flask, CoordinationMiddleware],
) -> None:
    app, _ = flask_app
    response = app.test_client().post("/api/users", json={"name": "Ann", "password": "hunter2"})
    assert response.status_code == 422
    problem = response.json
    assert [e["code"] for e in problem["errors"]] == ["required"]
    assert "email" in problem["errors"][0]["message"]
    assert "hunter2" not in response.get_data(as_text=True)
    # not JSON at all where JSON is expected
    response = app.test_client().post("/api/users", data="name=Ann")
    assert response.status_code == 415


def test_structural_limits(components: dict[str, Any]) -> None:
    config = components["config"].replace(max_header_bytes=1024, max_request_body_bytes=1000)
    app, middleware = make_app({**components, "config": config})
    client = app.test_client()
    response = client.get("/users/1", headers={"X-Big": "a" * 2000})
    assert response.status_code == 431
    assert response.mimetype == "application/problem+json"
    response = client.post("/api/users", data=b"x" * 5000, content_type="application/json")
    assert response.status_code == 413
    assert "5000" in response.json["detail"]
    response = client.open("/users/1", method="BREW")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert middleware.get_middleware_status()["middleware"]["rejected"] == {405: 1, 413: 1, 431: 1}


def test_an_app_exception_is_recorded(
    flask_app: tuple[Flask, CoordinationMiddleware], monitor: Any
) -> None:
    app, middleware = flask_app
    assert app.test_client().get("/boom").status_code == 500  # Flask's own error page
    stats = monitor.operation_stats()["GET /boom"]
    assert (stats.count, stats.failures) == (1, 1)
    assert middleware.get_middleware_status()["middleware"]["status_codes"] == {500: 1}


def test_an_exception_escaping_a_raw_wsgi_app_is_recorded_and_reraised(
    components: dict[str, Any], monitor: Any
) -> None:
    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise LookupError("no such tenant")

    middleware = CoordinationMiddleware(broken, **components)
    with pytest.raises(LookupError, match="no such tenant"):
        Client(middleware).get("/anything", buffered=True)
    status = middleware.get_middleware_status()["middleware"]
    assert status["exceptions"] == {"LookupError": 1}
    assert status["in_flight"] == 0
    assert monitor.operation_stats()["unmatched"].failures == 1


def test_built_in_endpoints(components: dict[str, Any]) -> None:
    config = components["config"].replace(expose_endpoints=True)
    app, middleware = make_app({**components, "config": config})
    client = app.test_client()
    client.get("/users/1")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'operation="GET /users/<int:user_id>"' in metrics.get_data(as_text=True)
    health = client.get("/health")
    assert health.status_code == 200
    assert client.get("/health/live").status_code == 200
    assert client.get("/coordination").status_code == 200
    assert client.get("/coordination/status.json").is_json
    assert "/metrics" in middleware.get_middleware_status()["middleware"]["endpoints"]
    assert middleware.get_middleware_status()["middleware"]["requests"] == 1


def test_concurrent_requests_under_a_real_server_are_counted_exactly(
    flask_app: tuple[Flask, CoordinationMiddleware], monitor: Any
) -> None:
    app, middleware = flask_app
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port

    def fetch(n: int) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            if n % 4 == 0:
                body = json.dumps({"name": "n", "email": f"{n}@x"}).encode()
                connection.request("POST", "/api/users", body, {"Content-Type": "application/json"})
            else:
                connection.request("GET", f"/users/{n}")
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(fetch, range(200)))
    finally:
        server.shutdown()
        thread.join()
    assert [status for status, _ in results] == [200] * 200
    counters = middleware.get_middleware_status()["middleware"]
    assert counters["requests"] == 200
    assert counters["status_codes"] == {200: 200}
    assert counters["in_flight"] == 0
    assert op_count(monitor, "GET /users/<int:user_id>") == 150
    assert op_count(monitor, "POST /api/users") == 50


def test_bad_options_fail_at_construction_with_clear_errors(components: dict[str, Any]) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return []

    with pytest.raises(ConfigError, match="did you mean 'enable_validation'"):
        CoordinationMiddleware(app, config={"enable_validaton": True})
    with pytest.raises(RuleSetError):
        CoordinationMiddleware(app, route_rules={"/x": {"fields": {"a": {"type": "nope"}}}})
    with pytest.raises(ConfigError, match="not an HTTP method token"):
        CoordinationMiddleware(app, allowed_methods=["GET", "BAD METHOD"], **components)
    with pytest.raises(TypeError, match="WSGI application"):
        CoordinationMiddleware("not an app", **components)  # type: ignore[arg-type]
