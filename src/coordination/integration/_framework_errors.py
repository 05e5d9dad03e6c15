"""Error handlers registered on the framework the middleware wraps.

Flask turns every exception of a view into a 500 response before a WSGI middleware sees
it, and so does Starlette's ``ServerErrorMiddleware`` when the ASGI middleware wraps the
whole app (outer wrapping). The middleware therefore registers, through each framework's
public API, a handler for the errors of ``_problems`` — only for the classes the app has
no handler of its own for, so the app's handlers (for these errors or any other) win.
Registered once, when the middleware is built; a framework the middleware does not know
is left alone (the middleware then answers the errors that reach it).
"""

from __future__ import annotations

import sys
from typing import Any

from .._logging import log_extra
from ._problems import RESILIENCE_ERRORS, AnswerLog, BodyTooLarge, answer_for

__all__ = ["install_flask_handlers", "install_starlette_handlers"]


def _handled_classes(map_resilience: bool) -> tuple[type[Exception], ...]:
    return (BodyTooLarge, *RESILIENCE_ERRORS) if map_resilience else (BodyTooLarge,)


def install_flask_handlers(app: Any, log: AnswerLog, map_resilience: bool) -> bool:
    """Register the handlers on ``app`` if it is a Flask app (or ``app.wsgi_app``'s owner)."""
    flask = sys.modules.get("flask")
    owner = getattr(app, "__self__", app)
    if flask is None or not isinstance(owner, flask.Flask):
        return False

    def answer(error: Exception) -> Any:
        rejection = answer_for(error, map_resilience=map_resilience)
        if rejection is None:  # not one of ours after all: what Flask would have done
            raise error
        request = flask.request
        log(request.method, request.path, error, rejection.status)
        body = rejection.body(request.path)
        return owner.response_class(
            body, status=rejection.status, headers=rejection.response_headers(body)
        )

    def server_error(error: Any) -> Any:
        # Errors outside the view's dispatch (an after_request hook, an error handler)
        # reach Flask's handle_exception, which offers them to the 500 handler only.
        original = getattr(error, "original_exception", None)
        if original is None or answer_for(original, map_resilience=map_resilience) is None:
            return error  # what Flask answers without a 500 handler
        return answer(original)

    from werkzeug.exceptions import InternalServerError

    # Read, never write: Flask's table is a defaultdict of defaultdicts.
    own = owner.error_handler_spec.get(None, {})
    handlers: list[tuple[type[Exception], Any]] = [
        (cls, answer) for cls in _handled_classes(map_resilience) if cls not in own.get(None, {})
    ]
    if InternalServerError not in own.get(500, {}):
        handlers.append((InternalServerError, server_error))
    for cls, handler in handlers:  # only where the app has no handler of its own
        try:
            owner.register_error_handler(cls, handler)
        except AssertionError:  # Flask refuses setup once it has served a request
            log.logger.warning(
                "the Flask app has already served requests, so %s raised in its views "
                "stays a 500: wrap app.wsgi_app before the first request",
                cls.__name__,
                extra=log_extra(framework="flask", error_type=cls.__name__),
            )
            return False
    return True


def install_starlette_handlers(app: Any, log: AnswerLog, map_resilience: bool) -> bool:
    """Register the handlers on ``app`` if it is a Starlette (or FastAPI) application."""
    applications = sys.modules.get("starlette.applications")
    if applications is None or not isinstance(app, applications.Starlette):
        return False
    from starlette.responses import Response

    async def answer(request: Any, error: Exception) -> Any:
        rejection = answer_for(error, map_resilience=map_resilience)
        if rejection is None:
            raise error
        path = request.url.path
        log(request.method, path, error, rejection.status)
        body = rejection.body(path)
        return Response(body, rejection.status, headers=dict(rejection.response_headers(body)))

    if app.middleware_stack is not None:
        log.logger.warning(
            "the Starlette app has already served requests; errors its routes raise are "
            "answered only when they reach the middleware",
            extra=log_extra(framework="starlette"),
        )
        return False
    for cls in _handled_classes(map_resilience):
        if cls not in app.exception_handlers:
            app.add_exception_handler(cls, answer)
    return True
