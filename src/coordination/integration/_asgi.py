"""``CoordinationASGIMiddleware``: the WSGI middleware's features as pure ASGI.

>>> app.add_middleware(CoordinationASGIMiddleware)  # doctest: +SKIP

Pure ASGI, not Starlette's ``BaseHTTPMiddleware`` (which breaks contextvars and
streaming): ``send`` is wrapped to see the status and the last body chunk, ``receive`` to
see a client disconnect and to count an unannounced (chunked) body. Lifespan, websocket
and other non-HTTP scopes pass straight through. A request is timed until the app has sent
its last body chunk (or the client went away: counted as a disconnect, status 499, not as
a server failure). As with WSGI, the app is never retried (see ``_wsgi``).

Resilience errors raised inside the app are answered as problem documents (503/429/504,
see ``_problems``) when they reach the middleware before the response has started — as
they do through ``add_middleware``, which puts it outside Starlette's exception handling.
Wrapped *around* a Starlette app, whose ``ServerErrorMiddleware`` would answer them 500
first, the middleware registers exception handlers on the app instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from .._tracing import DOORS, current_tracer
from ._base import MiddlewareBase
from ._framework_errors import install_starlette_handlers
from ._http import CLIENT_CLOSED, Rejection, RequestPolicy
from ._problems import BodyTooLarge, answer_for
from ._request import CHECK_CLIENT, READ_BODY, Exchange, RequestCore
from ._routes import asgi_route_resolver
from ._server_spans import detach

__all__ = ["CoordinationASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Exchange:
    """One request's state, seen through the wrapped ``receive`` and ``send``."""

    __slots__ = (
        "body_seen",
        "complete",
        "disconnected",
        "overflow",
        "receive",
        "responded",
        "send",
        "status",
    )

    def __init__(self, receive: Receive, send: Send, body_limit: int | None) -> None:
        self.status = 500
        self.responded = False
        self.complete = False
        self.disconnected = False
        self.body_seen = 0
        # The 413 owed once the app read past the limit. A framework that turns the
        # error into its own 500 page (Starlette's ServerErrorMiddleware, when the
        # middleware wraps the whole app) has that page held back: the 413 goes instead.
        self.overflow: Rejection | None = None
        self.receive = self._counting(receive, body_limit)
        self.send = self._watching(send)

    def _counting(self, receive: Receive, limit: int | None) -> Receive:
        async def counted() -> Message:
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                self.disconnected = True
            elif limit is not None and kind == "http.request":
                self.body_seen += len(message.get("body", b""))
                if self.body_seen > limit:
                    error = BodyTooLarge(self.body_seen, limit)
                    if not self.responded:
                        self.overflow = answer_for(error, map_resilience=False)
                    raise error
            return message

        return counted

    def _watching(self, send: Send) -> Send:
        async def watched(message: Message) -> None:
            kind = message["type"]
            if self.overflow is not None and not self.responded:
                if kind != "http.response.start":
                    return  # the body of the 500 page held back
                if message.get("status", 500) >= 500:
                    return  # held back: the 413 is sent instead
                self.overflow = None  # the app answered the overflow itself (a 4xx)
            if kind == "http.response.start":
                self.status = int(message["status"])
                self.responded = True
            elif kind == "http.response.body" and not message.get("more_body", False):
                self.complete = True
            await send(message)

        return watched


class CoordinationASGIMiddleware(MiddlewareBase):
    """Validation, timing and counting around an ASGI application (Starlette, FastAPI).

    Takes the same options and serves the same built-in endpoints as
    ``CoordinationMiddleware``; route templates come from Starlette's router
    (``scope["route"]``), rule sets are keyed by them.
    """

    kind = "ASGI"
    _resolver = staticmethod(asgi_route_resolver)
    _client_key_name = "asgi_client"
    _endpoint_name = "asgi_app"
    _awaits = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        core = self._core
        path = scope.get("path") or "/"
        endpoint = None if core.endpoint is None else core.endpoint(path)
        if endpoint is not None:
            await endpoint(scope, receive, send)
            return
        request = Exchange(scope, scope.get("method") or "GET", path)
        headers = scope.get("headers") or ()
        size, length, content_type = _header_facts(headers)
        # DOORS.on: an attribute read; off: no provider, no span, nothing more done
        tracer = current_tracer() if DOORS.on else None
        token = None
        if tracer is not None:
            carrier = _trace_headers(headers)
            token = core.start_span(tracer, request, carrier, scope.get("scheme"))
        try:
            decision = core.admit(request, size, length)
            if decision is CHECK_CLIENT:
                decision = core.admit_checked(request, await core.acheck_client(request), length)
            if decision is READ_BODY:
                body, decision, disconnected = await _read_body(receive, core.policy)
                if disconnected:
                    core.finish(request, CLIENT_CLOSED)
                    return
                if decision is None:
                    decision = core.check_body(request, body, content_type)
                receive = _replaying(body, receive)
            if decision is None and core.app_limit is not None:
                decision = await core.aenter_app(request)  # the limit in front of the app
            if decision is not None:
                await _send_problem(send, decision, request)  # type: ignore[arg-type]
                core.rejected(request, decision)  # type: ignore[arg-type]
                return
            await _run(self.app, core, request, scope, receive, send)
        except BaseException as exc:  # ends the span of a request nothing counted; re-raised
            if token is not None:
                core.abandon(request, exc)
            raise
        finally:
            if token is not None:
                detach(token)

    def _install_error_answers(self) -> None:
        install_starlette_handlers(self.app, self._answer_log, self._map_errors)


def _header_facts(headers: Iterable[tuple[bytes, bytes]]) -> tuple[int, str | None, str | None]:
    """The headers' size as sent, the Content-Length (joined if repeated) and type."""
    length = content_type = None
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"content-length":
            text = value.decode("latin-1")
            if length is not None and length != text:
                text = f"{length}, {text}"  # disagreeing lengths: refused (400)
            length = text
        elif name == b"content-type":
            content_type = value.decode("latin-1")
    return size, length, content_type


_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def _trace_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, bytes]:
    """The W3C trace headers (the first of a repeated one): read only while tracing, so a
    request without a tracer provider pays nothing for them."""
    carrier: dict[str, bytes] = {}
    for name, value in headers:
        if name in _TRACE_HEADERS:
            carrier.setdefault(name.decode("latin-1"), value)
    return carrier


async def _run(
    app: ASGIApp, core: RequestCore, request: Exchange, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run the app on an admitted request, answer what it raised, count the outcome."""
    if request.rate_headers:  # rate_limit_headers="always": the app's answer carries them
        send = _with_headers(send, request.rate_headers)
    # An unannounced (chunked) body is counted as the app reads it.
    exchange = _Exchange(receive, send, core.max_body if request.length is None else None)
    error: Exception | None = None
    answered: Rejection | None = None
    try:
        try:
            await app(scope, exchange.receive, exchange.send)
            answered = exchange.overflow  # the app swallowed the overflow it was told of
        except Exception as exc:
            if not exchange.responded:
                answered = exchange.overflow or core.answer(exc)
            if answered is None:
                error = exc
                core.failure_log(request, exc)
                raise
            core.answered(request, exc, answered.status)
        if answered is not None:
            exchange.status = answered.status
            await _send_problem(send, answered, request)
            exchange.complete = True
    finally:
        # Also reached when the task is cancelled (the server dropped the connection).
        gone = not exchange.complete and (exchange.disconnected or error is None)
        status = 500 if error is not None else exchange.status
        if gone and error is None:
            status = CLIENT_CLOSED
        core.finish(request, status, error, answered is not None and answered.status == 413)


def _with_headers(send: Send, fields: tuple[tuple[str, str], ...]) -> Send:
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in fields]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return sending


async def _read_body(
    receive: Receive, policy: RequestPolicy
) -> tuple[bytes, Rejection | None, bool]:
    """The whole body (bounded), a 413 rejection, or True when the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", None, True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > policy.max_body:
            return b"", policy.too_large(size), False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None, False


async def _send_problem(send: Send, rejection: Rejection, request: Exchange) -> None:
    body = rejection.body(request.path)
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in rejection.response_headers(body)
    ]
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if request.method == "HEAD" else body})


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body once, then the real channel."""
    pending = [body]

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replay
