"""``CoordinationDjangoMiddleware``: resilience errors of Django views as problem documents.

Django turns an exception of a view into its 500 page inside its own handler, before any
WSGI middleware around ``get_wsgi_application()`` sees it; a middleware's
``process_exception`` is Django's hook for answering it instead::

    MIDDLEWARE = [
        "coordination.integration.CoordinationDjangoMiddleware",
        # ... the project's own middleware
    ]

It answers the errors of ``_problems`` (503/429/504 with ``Retry-After`` where it
applies) and lets every other exception go on to Django's own handling. The setting
``COORDINATION = {...}`` (optional) is its configuration; with
``map_resilience_errors: false`` Django leaves it out (``MiddlewareNotUsed``). Counting
and timing stay the job of ``CoordinationMiddleware`` around the WSGI application, which
sees these answers by their status like any other response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._config import resolve_config
from .._logging import component_logger
from ._http import PROBLEM_JSON
from ._problems import AnswerLog, answer_for

__all__ = ["CoordinationDjangoMiddleware"]


class CoordinationDjangoMiddleware:
    """A Django ``MIDDLEWARE`` entry answering resilience errors of views (sync or async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.conf import settings  # type: ignore[import-untyped]
        from django.core.exceptions import MiddlewareNotUsed  # type: ignore[import-untyped]

        config = resolve_config(getattr(settings, "COORDINATION", None))
        if not config.map_resilience_errors:
            raise MiddlewareNotUsed("map_resilience_errors is off")
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        self._answer_log = AnswerLog(component_logger("integration", debug=config.debug))

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        return await self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """The problem response for one of our errors; None lets Django handle the rest."""
        rejection = answer_for(exception, map_resilience=True)
        if rejection is None:
            return None
        from django.http import HttpResponse  # type: ignore[import-untyped]

        path = request.path
        self._answer_log(request.method, path, exception, rejection.status)
        body = rejection.body(path)
        return HttpResponse(
            body,
            status=rejection.status,
            content_type=PROBLEM_JSON,
            headers=dict(rejection.headers),
        )
