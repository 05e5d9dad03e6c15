"""The health endpoints over HTTP: ``application/health+json``, 200 or 503.

The document follows the IETF draft "Health Check Response Format for HTTP APIs":
``status`` is ``pass`` (HEALTHY or UNKNOWN), ``warn`` (DEGRADED, still 200 so a degraded
instance keeps its traffic) or ``fail`` (UNHEALTHY or ERROR, 503 so load balancers and
Kubernetes take it out of rotation). Each component and custom check appears under
``checks`` only when ``health_details`` is on: a public probe should not describe the
service's insides.

The apps route on the last path segment, so they work wherever they are mounted:
``…/live`` is liveness, ``…/ready`` readiness, anything else the full document.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._redact import redact, redact_mapping
from .._status import HealthStatus

if TYPE_CHECKING:
    from ._health import CoordinationHealthChecker

__all__ = [
    "HEALTH_MEDIA_TYPE",
    "ASGIApp",
    "HealthResponse",
    "WSGIApp",
    "acknowledge_lifespan",
    "health_response",
    "make_asgi_app",
    "make_wsgi_app",
    "probe_for_path",
]

HEALTH_MEDIA_TYPE = "application/health+json"

Probe: TypeAlias = Literal["live", "ready", "health"]
HealthResponse: TypeAlias = tuple[int, list[tuple[str, str]], bytes]
StartResponse: TypeAlias = Callable[..., Any]
WSGIApp: TypeAlias = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Scope: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send: TypeAlias = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

_HEALTH_STATUS = {
    HealthStatus.HEALTHY: "pass",
    HealthStatus.UNKNOWN: "pass",
    HealthStatus.DEGRADED: "warn",
    HealthStatus.UNHEALTHY: "fail",
    HealthStatus.ERROR: "fail",
}
_METHODS = ("GET", "HEAD")


def probe_for_path(path: str) -> Probe:
    """Which probe a request path asks for, from its last segment."""
    last = path.rstrip("/").rpartition("/")[2]
    if last == "live":
        return "live"
    if last == "ready":
        return "ready"
    return "health"


def _entry(kind: str, status: HealthStatus, data: dict[str, Any], time: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "componentType": kind,
        "status": _HEALTH_STATUS[status],
        "observedValue": status.value,
        "time": time,
    }
    if "error" in data:
        entry["output"] = redact(str(data["error"]))
    details = {k: v for k, v in data.items() if k not in ("status", "error")}
    if details:
        entry["details"] = redact_mapping(details)
    return entry


def health_document(report: dict[str, Any], *, details: bool) -> dict[str, Any]:
    """``check_health()``'s (or ``check_liveness()``'s) report as a health+json document."""
    overall = HealthStatus(report["overall_status"])
    document: dict[str, Any] = {"status": _HEALTH_STATUS[overall]}
    if not details:
        return document
    time = report["timestamp"]
    checks: dict[str, list[dict[str, Any]]] = {}
    for name, health in report.get("components", {}).items():
        checks[f"{name}:status"] = [_entry("component", health["status"], health, time)]
    for name, result in report.get("checks", {}).items():
        status = HealthStatus(result["status"])
        checks[f"{name}:status"] = [_entry("check", status, result, time)]
    if "uptime_seconds" in report:
        checks["process:uptime"] = [
            {
                "componentType": "system",
                "observedValue": report["uptime_seconds"],
                "observedUnit": "s",
                "status": "pass",
                "time": time,
            }
        ]
    document["checks"] = checks
    return document


def _respond(report: dict[str, Any], details: bool) -> HealthResponse:
    document = health_document(report, details=details)
    body = json.dumps(document, default=str, separators=(",", ":")).encode()
    code = 503 if document["status"] == "fail" else 200
    headers = [
        ("Content-Type", HEALTH_MEDIA_TYPE),
        ("Cache-Control", "no-store"),
        ("Content-Length", str(len(body))),
    ]
    return code, headers, body


def health_response(checker: CoordinationHealthChecker, path: str) -> HealthResponse:
    """Status code, headers and body for a GET of ``path`` (for middleware to serve)."""
    probe = probe_for_path(path)
    if probe == "live":
        return _respond(checker.check_liveness(), checker.config.health_details)
    return _respond(checker.check_health(), probe == "health" and checker.config.health_details)


async def ahealth_response(checker: CoordinationHealthChecker, path: str) -> HealthResponse:
    """``health_response()`` without blocking the event loop."""
    probe = probe_for_path(path)
    if probe == "live":
        return _respond(checker.check_liveness(), checker.config.health_details)
    report = await checker.acheck_health()
    return _respond(report, probe == "health" and checker.config.health_details)


def _not_allowed() -> HealthResponse:
    body = b"Method Not Allowed\n"
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Allow", ", ".join(_METHODS)),
        ("Content-Length", str(len(body))),
    ]
    return 405, headers, body


_REASONS = {200: "OK", 405: "Method Not Allowed", 503: "Service Unavailable"}


def make_wsgi_app(checker: CoordinationHealthChecker) -> WSGIApp:
    """A WSGI app serving the checker's probes (see the module docstring for the routes)."""

    def health_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method in _METHODS:
            code, headers, body = health_response(checker, environ.get("PATH_INFO", ""))
        else:
            code, headers, body = _not_allowed()
        start_response(f"{code} {_REASONS[code]}", headers)
        return [b"" if method == "HEAD" else body]

    return health_app


def make_asgi_app(checker: CoordinationHealthChecker) -> ASGIApp:
    """An ASGI app serving the checker's probes; it also answers the lifespan protocol."""

    async def health_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await acknowledge_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method in _METHODS:
            code, headers, body = await ahealth_response(checker, scope.get("path", ""))
        else:
            code, headers, body = _not_allowed()
        raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await send({"type": "http.response.start", "status": code, "headers": raw_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return health_app


async def acknowledge_lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
