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

With ``app_adaptive_concurrency`` it also puts one adaptive concurrency limit in front of
the views (see ``_app_limit``): a request beyond it gets a 503 problem response with
``Retry-After`` before any view runs. Its slot is given back when ``get_response``
returns (a streaming body is then still being sent: its time is not in the sample).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._concurrency_snapshot import ConcurrencySnapshot
from .._config import resolve_config
from .._logging import component_logger
from ._app_limit import aenter_app, app_limiter, app_refusal, enter_app, leave_app
from ._http import PROBLEM_JSON, Rejection
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
        if not config.map_resilience_errors and not config.app_adaptive_concurrency:
            raise MiddlewareNotUsed("map_resilience_errors and app_adaptive_concurrency are off")
        self._map_errors = config.map_resilience_errors
        self.app_limit = app_limiter(config)  # app_adaptive_concurrency (None: off)
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        self._answer_log = AnswerLog(component_logger("integration", debug=config.debug))

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        limit = self.app_limit
        if limit is None:
            return self.get_response(request)
        entry = enter_app(limit)
        if entry is None:
            return self._problem(request, app_refusal())
        try:
            response = self.get_response(request)
        except BaseException as exc:
            leave_app(limit, entry, 500, exc)
            raise
        leave_app(limit, entry, getattr(response, "status_code", 200), None)
        return response

    async def _acall(self, request: Any) -> Any:
        limit = self.app_limit
        if limit is None:
            return await self.get_response(request)
        entry = await aenter_app(limit)
        if entry is None:
            return self._problem(request, app_refusal())
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            leave_app(limit, entry, 500, exc)
            raise
        leave_app(limit, entry, getattr(response, "status_code", 200), None)
        return response

    def concurrency_snapshot(self) -> ConcurrencySnapshot | None:
        """The limit in front of the views (``None`` without ``app_adaptive_concurrency``)."""
        return None if self.app_limit is None else self.app_limit.snapshot()

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """The problem response for one of our errors; None lets Django handle the rest."""
        if not self._map_errors:
            return None
        rejection = answer_for(exception, map_resilience=True)
        if rejection is None:
            return None
        self._answer_log(request.method, request.path, exception, rejection.status)
        return self._problem(request, rejection)

    @staticmethod
    def _problem(request: Any, rejection: Rejection) -> Any:
        from django.http import HttpResponse  # type: ignore[import-untyped]

        path = request.path
        body = rejection.body(path)
        return HttpResponse(
            body,
            status=rejection.status,
            content_type=PROBLEM_JSON,
            headers=dict(rejection.headers),
        )
