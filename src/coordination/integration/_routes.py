"""Route templates for operation names: Flask's url rule, Django's resolver match, Starlette's
route — never the raw path, so metric labels stay bounded.

A resolver answers twice: ``before`` the app runs (needed only when a per-route rule set
must be found, so it matches the URL itself) and ``after`` it (reading what the framework
already matched, at no cost where the framework leaves it in the environ or scope).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["RouteResolver", "asgi_route_resolver", "wsgi_route_resolver"]


class RouteResolver(Protocol):
    def before(self, request: Mapping[str, Any]) -> str | None: ...
    def after(self, request: Mapping[str, Any]) -> str | None: ...


class _Custom:
    """A user's ``route_resolver(environ_or_scope) -> template or None``."""

    __slots__ = ("after", "before")

    def __init__(self, resolve: Callable[[Mapping[str, Any]], str | None]) -> None:
        self.before = self.after = resolve


_ROUTE_KEY = "coordination.route"
_MISSING = object()


class _FlaskRoutes:
    __slots__ = ("_app",)

    def __init__(self, app: Any) -> None:
        self._app = app
        # Flask clears its request from the environ when the request ends, so a hook that
        # runs first among the app's before_request functions leaves the matched rule.
        app.before_request_funcs.setdefault(None, []).insert(0, self._remember)

    @staticmethod
    def _remember() -> None:
        from flask import request

        rule = request.url_rule
        request.environ[_ROUTE_KEY] = None if rule is None else str(rule.rule)

    def before(self, environ: Mapping[str, Any]) -> str | None:
        from werkzeug.exceptions import HTTPException
        from werkzeug.routing import RoutingException

        app = self._app
        url_map = app.url_map
        # The same binding Flask's create_url_adapter makes for a request.
        server_name = None if url_map.host_matching else app.config.get("SERVER_NAME")
        subdomain = None
        if not url_map.host_matching and not app.subdomain_matching:
            subdomain = url_map.default_subdomain or ""
        try:
            adapter = url_map.bind_to_environ(environ, server_name=server_name, subdomain=subdomain)
            rule, _ = adapter.match(return_rule=True)
        except (HTTPException, RoutingException):
            return None
        return str(rule.rule)

    def after(self, environ: Mapping[str, Any]) -> str | None:
        route = environ.get(_ROUTE_KEY, _MISSING)
        if route is _MISSING:  # the app answered before its hooks ran (or no hook ran)
            return self.before(environ)
        return None if route is None else str(route)


class _DjangoRoutes:
    __slots__ = ()

    def before(self, environ: Mapping[str, Any]) -> str | None:
        from django.urls import Resolver404, resolve  # type: ignore[import-untyped]

        try:
            match = resolve(environ.get("PATH_INFO") or "/")
        except Resolver404:
            return None
        return "/" + str(match.route)

    after = before


class _StarletteRoutes:
    __slots__ = ("_app",)

    def __init__(self, app: Any) -> None:
        self._app = app

    def before(self, scope: Mapping[str, Any]) -> str | None:
        try:
            from starlette.routing import Match
        except ImportError:  # a plain ASGI app without Starlette: no templates to match
            return None

        app = scope.get("app", self._app)
        partial = None
        for route in getattr(getattr(app, "router", None), "routes", ()):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(route.path)
            if match is Match.PARTIAL and partial is None:
                partial = str(route.path)
        return partial

    def after(self, scope: Mapping[str, Any]) -> str | None:
        path = getattr(scope.get("route"), "path", None)
        return None if path is None else str(path)


def _custom(resolve: Any) -> RouteResolver:
    if not callable(resolve):
        raise TypeError(f"route_resolver must be callable, got {type(resolve).__name__}")
    return _Custom(resolve)


def wsgi_route_resolver(app: Any, custom: Any = None) -> RouteResolver | None:
    """The resolver for ``app`` (Flask's ``wsgi_app`` or app, Django's handler), if any."""
    if custom is not None:
        return _custom(custom)
    owner = getattr(app, "__self__", app)  # app.wsgi_app is a bound method of the app
    if hasattr(owner, "url_map") and hasattr(owner, "subdomain_matching"):
        return _FlaskRoutes(owner)
    if type(owner).__module__.startswith("django.core.handlers"):
        return _DjangoRoutes()
    return None


def asgi_route_resolver(app: Any, custom: Any = None) -> RouteResolver:
    """The resolver for a Starlette/FastAPI app (it also reads routes from the scope)."""
    if custom is not None:
        return _custom(custom)
    return _StarletteRoutes(app)
