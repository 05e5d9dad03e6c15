"""Route templates for operation names: Flask's url rule, Django's resolver match, Starlette's
route — never the raw path, so metric labels stay bounded.

A resolver answers twice: ``before`` the app runs (needed only when a per-route rule set
must be found, so it matches the URL itself) and ``after`` it (reading what the framework
already matched, at no cost where the framework leaves it in the environ or scope).

``known_routes`` lists the app's route templates (Flask's ``url_map``, Django's URL
patterns, Starlette's ``routes``) so that ``route_rules`` keys naming no route are
reported (``check_route_rules``) instead of silently never matching.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import ConfigError
from .._logging import log_extra

__all__ = [
    "KnownRoute",
    "RouteResolver",
    "asgi_route_resolver",
    "check_route_rules",
    "unmatched_route_rules",
    "wsgi_route_resolver",
]


@dataclass(frozen=True)
class KnownRoute:
    """A route template as ``before`` names it, and the methods it takes (None: any)."""

    template: str
    methods: frozenset[str] | None = None


class RouteResolver(Protocol):
    def before(self, request: Mapping[str, Any]) -> str | None: ...
    def after(self, request: Mapping[str, Any]) -> str | None: ...
    def known_routes(self, request: Mapping[str, Any] | None) -> Sequence[KnownRoute] | None:
        """The app's routes (``None``: not known, as for a custom resolver)."""
        ...


class _Custom:
    """A user's ``route_resolver(environ_or_scope) -> template or None``."""

    __slots__ = ("after", "before")

    def __init__(self, resolve: Callable[[Mapping[str, Any]], str | None]) -> None:
        self.before = self.after = resolve

    def known_routes(self, request: Mapping[str, Any] | None) -> Sequence[KnownRoute] | None:
        return None  # a function of the request: its templates cannot be listed


_ROUTE_KEY = "coordination.route"
_MISSING = object()


class _FlaskRoutes:
    __slots__ = ("_app",)

    def __init__(self, app: Any) -> None:
        self._app = app

    @staticmethod
    def responding(environ: dict[str, Any]) -> str | None:
        """The matched rule, read while Flask's request is still in the environ.

        The WSGI middleware calls it from ``start_response``, which Flask calls inside its
        request context; when the request ends Flask sets ``environ["werkzeug.request"]``
        (werkzeug's documented ``populate_request``) to None. So the rule is read here —
        no hook in the app, nothing Flask runs per request for it — and a request that
        matched no rule is remembered for ``after`` as unmatched.
        """
        rule: Any = getattr(environ.get("werkzeug.request"), "url_rule", _MISSING)
        if rule is _MISSING:
            return None  # not inside Flask's request: after() matches the URL itself
        if rule is None:
            environ[_ROUTE_KEY] = None
            return None
        return rule.rule  # type: ignore[no-any-return]

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

    def known_routes(self, request: Mapping[str, Any] | None) -> Sequence[KnownRoute] | None:
        return [
            KnownRoute(str(rule.rule), frozenset(rule.methods or ()) or None)
            for rule in self._app.url_map.iter_rules()
        ]

    def after(self, environ: Mapping[str, Any]) -> str | None:
        route = environ.get(_ROUTE_KEY, _MISSING)
        if route is _MISSING:  # no response from inside Flask's request (it raised)
            return self.before(environ)
        return route  # type: ignore[no-any-return]  # a str or None, as responding() left it


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

    def known_routes(self, request: Mapping[str, Any] | None) -> Sequence[KnownRoute] | None:
        from django.urls import get_resolver

        return [KnownRoute("/" + route) for route in _django_routes(get_resolver().url_patterns)]


def _django_routes(patterns: Iterable[Any], prefix: str = "") -> Iterable[str]:
    """Every pattern's route as ``ResolverMatch.route`` joins it (a later ``^`` dropped)."""
    for pattern in patterns:
        part = str(pattern.pattern)
        route = prefix + part.removeprefix("^") if prefix else part
        nested = getattr(pattern, "url_patterns", None)
        if nested is None:
            yield route
        else:
            yield from _django_routes(nested, route)


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

    def known_routes(self, request: Mapping[str, Any] | None) -> Sequence[KnownRoute] | None:
        app = self._app if request is None else request.get("app", self._app)
        routes = getattr(getattr(app, "router", None), "routes", None)
        if routes is None:
            return None  # not a Starlette app (yet: add_middleware sees it at the request)
        known = []
        for route in routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                methods = getattr(route, "methods", None)
                known.append(KnownRoute(path, frozenset(methods) if methods else None))
        return known

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


# --- route_rules keys that name no route ---------------------------------------------

_METHOD_KEY = re.compile(r"([A-Z]+) (/.*)", re.DOTALL)  # "POST /users", as rules_for reads it


def unmatched_route_rules(
    keys: Iterable[str], routes: Sequence[KnownRoute], field: str = "route_rules"
) -> list[str]:
    """One sentence per ``route_rules`` (or ``route_limits``: ``field``) key that no route
    matches, naming the closest.

    >>> unmatched_route_rules(["GET /user"], [KnownRoute("/users")])[0][-28:]
    "did you mean 'GET /users'?"
    """
    by_template = {route.template: route for route in routes}
    templates = sorted(by_template)
    problems = []
    for key in keys:
        match = _METHOD_KEY.fullmatch(key)
        method, template = (match.group(1), match.group(2)) if match else (None, key)
        route = by_template.get(template)
        if route is None:
            close = difflib.get_close_matches(template, templates, n=1, cutoff=0.5)
            if close:
                hint = f"; did you mean {(f'{method} ' if method else '') + close[0]!r}?"
            else:
                shown = ", ".join(templates[:10]) + (", …" if len(templates) > 10 else "")
                hint = f" (its routes: {shown or 'none'})"
            problems.append(f"{field} key {key!r} matches no route of the app{hint}")
        elif method is not None and route.methods is not None and method not in route.methods:
            taken = ", ".join(sorted(route.methods))
            problems.append(
                f"{field} key {key!r}: the route {template!r} takes {taken}, not {method}"
            )
    return problems


class _CheckedRoutes:
    """A resolver whose first ``before`` call checks the rule keys against the routes.

    At the first request the app's routes are complete (Flask refuses new ones after it;
    Starlette's ``add_middleware`` apps are only known from the request's scope), so keys
    that name no route are reported then, once, as a warning naming the closest route.
    Then ``before`` is the wrapped resolver's own: nothing more per request.
    """

    def __init__(
        self,
        resolver: RouteResolver,
        keys: Sequence[str],
        logger: logging.Logger,
        field: str = "route_rules",
    ) -> None:
        self._resolver = resolver
        self._keys = keys
        self._field = field
        self._logger = logger
        self._lock = threading.Lock()
        self._checked = False
        self.after = resolver.after
        self.known_routes = resolver.known_routes
        self.responding = getattr(resolver, "responding", None)
        self.before: Callable[[Mapping[str, Any]], str | None] = self._first_before
        self.problems: list[str] = []

    def _first_before(self, request: Mapping[str, Any]) -> str | None:
        with self._lock:
            if not self._checked:
                self._checked = True
                self.before = self._resolver.before
                self._check(request)
        return self._resolver.before(request)

    def _check(self, request: Mapping[str, Any]) -> None:
        try:
            routes = self._resolver.known_routes(request)
        except Exception:  # a framework we misread must not fail the request
            self._logger.exception(
                "cannot list the app's routes to check %s",
                self._field,
                extra=log_extra(setting=self._field),
            )
            return
        if routes is None:
            return
        self.problems = unmatched_route_rules(self._keys, routes, self._field)
        what = "limits" if self._field == "route_limits" else "rules"
        for problem in self.problems:
            self._logger.warning(
                "%s: its %s are never applied", problem, what, extra=log_extra(setting=self._field)
            )


def check_route_rules(
    resolver: RouteResolver | None,
    keys: Sequence[str],
    logger: logging.Logger,
    field: str = "route_rules",
) -> RouteResolver | None:
    """``resolver``, checking ``route_rules`` keys against the app's routes.

    With no resolver, no route can ever be named, so rules can never apply: a
    ``ConfigError``. Where every key names a route already, the resolver is returned as
    is; otherwise it is wrapped so the keys are checked again at the first request (routes
    may be added after the middleware is made) and the ones still unmatched reported.
    """
    if not keys:
        return resolver
    if resolver is None:
        raise ConfigError(
            f"{field} need route templates, and this app's routes cannot be named "
            "(it is neither Flask nor Django): pass route_resolver=, a function of the "
            "WSGI environ that returns the route template",
            field=field,
            value=None,
            source="keyword argument",
        )
    try:
        routes = resolver.known_routes(None)
    except Exception:
        routes = None
    if routes is not None and not unmatched_route_rules(keys, routes, field):
        return resolver
    return _CheckedRoutes(resolver, keys, logger, field)
