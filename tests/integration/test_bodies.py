"""Bodies checked by a rule set reach the app byte for byte, however they arrive."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware

RULES = {"/echo": {"required_fields": ["id"]}}
documents = st.fixed_dictionaries(
    {"id": st.integers()},
    optional={"text": st.text(max_size=200), "items": st.lists(st.integers(), max_size=20)},
)


def _route(request: Any) -> str | None:
    return "/echo" if (request.get("path") or request.get("PATH_INFO")) == "/echo" else None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=documents, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_asgi_body_split_anyhow_is_replayed_intact(
    components: dict[str, Any], document: dict[str, Any], cuts: list[int]
) -> None:
    body = json.dumps(document).encode()
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    chunks = [body[a:b] for a, b in itertools.pairwise(points)] or [b""]
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = CoordinationASGIMiddleware(
        app, route_rules=RULES, route_resolver=_route, **components
    )
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "headers": [(b"content-type", b"application/json")],
    }
    asyncio.run(middleware(scope, receive, send))
    assert sent[0]["status"] == 204
    assert b"".join(received) == body


def test_wsgi_body_without_length_is_read_to_its_end_marker(components: dict[str, Any]) -> None:
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("204 No Content", [])
        return []

    middleware = CoordinationMiddleware(app, route_rules=RULES, route_resolver=_route, **components)
    body = json.dumps({"id": 5, "text": "chunked"}).encode()
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/echo",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
    }
    result = middleware(environ, lambda status, headers, exc_info=None: statuses.append(status))
    list(result)
    result.close()  # type: ignore[attr-defined]
    assert statuses == ["204 No Content"]
    assert seen == [body]
    counters = middleware.get_middleware_status()["middleware"]
    assert (counters["in_flight"], counters["status_codes"]) == (0, {204: 1})
    environ = {**environ, "wsgi.input": io.BytesIO(b'{"text": "no id"}')}
    answer = middleware(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses[-1].startswith("422")
    assert json.loads(b"".join(answer))["errors"][0]["code"] == "required"
