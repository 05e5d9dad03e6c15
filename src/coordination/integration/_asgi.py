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

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .._time import perf_counter
from ._base import MiddlewareBase
from ._framework_errors import install_starlette_handlers
from ._http import CLIENT_CLOSED, Rejection
from ._problems import BodyTooLarge, answer_for
from ._routes import asgi_route_resolver

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

    Takes the same options as ``CoordinationMiddleware``; route templates come from
    Starlette's router (``scope["route"]``), rule sets are keyed by them.
    """

    kind = "ASGI"
    _resolver = staticmethod(asgi_route_resolver)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._endpoints is not None:
            endpoint = self._endpoints.asgi_app(scope.get("path") or "/")
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        started = perf_counter()
        self._counters.started()
        method = scope.get("method") or "GET"
        policy = self._policy
        headers = scope.get("headers") or ()
        length_header = content_type = None
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"content-length":
                text = value.decode("latin-1")
                if length_header is not None and length_header != text:
                    text = f"{length_header}, {text}"  # disagreeing lengths: refused (400)
                length_header = text
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        rejection = policy.check_method(method) or policy.check_header_size(size)
        if rejection is None and self._client_limit is not None:
            limit = self._client_limit
            rejection = await limit.acheck(limit.asgi_client(scope))
        length = None
        if rejection is None:
            length, rejection = policy.check_content_length(length_header)
        route = None
        if rejection is None and policy.rules:
            # A resolver that raises is the app's bug; skipping the rule set would let the
            # body through unchecked, so it is counted and raised, as under WSGI.
            try:
                route = self._routes.before(scope) if self._routes else None
            except Exception as exc:
                self._logger.exception("checking the request failed")
                self._record(method, None, 500, started, exc)
                raise
            rule_set = policy.rules_for(method, route)
            if rule_set is not None:
                body, rejection, disconnected = await self._read_body(receive)
                if disconnected:
                    self._record(method, route, CLIENT_CLOSED, started, None)
                    return
                if rejection is None:
                    rejection = policy.check_json(body, content_type, rule_set)
                receive = _replaying(body, receive)
        if rejection is not None:
            await self._reject(scope, send, rejection)
            if route is None:
                route = self.route_before(scope)
            self._record(method, route, rejection.status, started, None, rejected=True)
            return
        # An unannounced (chunked) body is counted as the app reads it.
        exchange = _Exchange(receive, send, policy.max_body if length is None else None)
        error: Exception | None = None
        answered: Rejection | None = None
        try:
            try:
                await self.app(scope, exchange.receive, exchange.send)
                answered = exchange.overflow  # the app swallowed the overflow it was told of
            except Exception as exc:
                if not exchange.responded:
                    answered = exchange.overflow or answer_for(exc, map_resilience=self._map_errors)
                if answered is None:
                    error = exc
                    self._logger.warning(
                        "%s %s raised %s: %s", method, scope.get("path"), type(exc).__name__, exc
                    )
                    raise
                self._answer_log(method, scope.get("path"), exc, answered.status)
            if answered is not None:
                exchange.status = answered.status
                await self._reject(scope, send, answered)
                exchange.complete = True
        finally:
            # Also reached when the task is cancelled (the server dropped the connection).
            gone = not exchange.complete and (exchange.disconnected or error is None)
            status = 500 if error is not None else exchange.status
            if gone and error is None:
                status = CLIENT_CLOSED
            self._record(
                method,
                self.route_after(scope, route),
                status,
                started,
                error,
                rejected=answered is not None and answered.status == 413,
            )

    def _install_error_answers(self) -> None:
        install_starlette_handlers(self.app, self._answer_log, self._map_errors)

    async def _read_body(self, receive: Receive) -> tuple[bytes, Rejection | None, bool]:
        """The whole body (bounded), a 413 rejection, or True when the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", None, True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._policy.max_body:
                return b"", self._policy.too_large(size), False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None, False

    async def _reject(self, scope: Scope, send: Send, rejection: Rejection) -> None:
        body = rejection.body(scope.get("path") or "/")
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in rejection.response_headers(body)
        ]
        await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body}
        )


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body once, then the real channel."""
    pending = [body]

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replay
