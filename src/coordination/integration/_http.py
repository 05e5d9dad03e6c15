"""What the WSGI and ASGI middleware share: request checks, problem documents, counters.

A rejected request gets an RFC 9457 ``application/problem+json`` response with the
status that says what was wrong — 400 malformed JSON, 405 method, 413 body too large,
415 not JSON where a rule set expects JSON, 422 rule-set violations (with the error
list), 431 headers too large — and never a 500.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any

from .._bounded import OVERFLOW_OPERATION, BoundedNames
from .._concurrency_snapshot import ConcurrencySnapshot
from .._config import CoordinationConfig
from .._counting import ReadableCount, count_value
from .._errors import ConfigError, ValidationError
from .._http_snapshot import HttpSnapshot, LatencyLike, RouteSnapshot
from .._logging import component_logger, log_extra
from .._redact import truncate
from ._components import ValidatorLike, prepare_rules

__all__ = [
    "CLIENT_CLOSED",
    "DEFAULT_METHODS",
    "OTHER_METHOD",
    "UNMATCHED",
    "HttpCounters",
    "Rejection",
    "RequestPolicy",
    "status_label",
]

UNMATCHED = "unmatched"  # the operation name of requests without a route template
CLIENT_CLOSED = 499  # nginx's code for "the client closed the connection"
DEFAULT_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBLEM_JSON = "application/problem+json"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request refused before the app saw it, as a problem document."""

    status: int
    detail: str
    errors: tuple[dict[str, Any], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def body(self, instance: str) -> bytes:
        document: dict[str, Any] = {
            "type": "about:blank",
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "instance": truncate(instance, 200),
        }
        if self.errors:
            document["errors"] = list(self.errors)
        return json.dumps(document, separators=(",", ":")).encode()

    def response_headers(self, body: bytes) -> list[tuple[str, str]]:
        return [
            ("Content-Type", PROBLEM_JSON),
            ("Content-Length", str(len(body))),
            *self.headers,
        ]


def _error_entry(error: Any) -> dict[str, Any]:
    # Codes, locations and messages only: the offending values may be secrets.
    return {
        "code": str(getattr(error, "code", "invalid")),
        "pointer": str(getattr(error, "pointer", "")),
        "message": str(getattr(error, "message", error)),
    }


class RequestPolicy:
    """The structural limits and the per-route JSON rule sets, compiled once.

    ``route_rules`` maps a route template (``"/api/users"``) or a method and template
    (``"POST /api/users"``) to a rule set the request's JSON body must satisfy.
    """

    def __init__(
        self,
        config: CoordinationConfig,
        validator: ValidatorLike,
        route_rules: Mapping[str, Any] | None,
        allowed_methods: Iterable[str] | None,
    ) -> None:
        self.max_body = config.max_request_body_bytes
        self.max_headers = config.max_header_bytes
        methods = DEFAULT_METHODS if allowed_methods is None else allowed_methods
        self.allowed_methods = frozenset(m.upper() for m in methods)
        for method in self.allowed_methods:
            if not _TOKEN.match(method):
                raise ConfigError(
                    f"allowed_methods holds {method!r}, which is not an HTTP method token",
                    field="allowed_methods",
                    value=method,
                    source="keyword argument",
                )
        self._allow_header = (("Allow", ", ".join(sorted(self.allowed_methods))),)
        self.validator = validator
        self._logger = component_logger("integration")
        self.rules: dict[str, Any] = {}
        if config.enable_validation:
            for key, rule_set in (route_rules or {}).items():
                if not isinstance(key, str) or not key.strip():
                    raise ConfigError(
                        f"route_rules keys must be route templates, got {key!r}",
                        field="route_rules",
                        value=key,
                        source="keyword argument",
                    )
                self.rules[key] = prepare_rules(validator, rule_set, f"route {key}")

    def check_method(self, method: str) -> Rejection | None:
        if method in self.allowed_methods:
            return None
        shown = truncate(method, 20)
        if not _TOKEN.match(method):
            return Rejection(400, f"{shown!r} is not a valid HTTP method")
        return Rejection(405, f"method {shown} is not allowed here", headers=self._allow_header)

    def check_header_size(self, size: int) -> Rejection | None:
        if size <= self.max_headers:
            return None
        return Rejection(
            431, f"request headers take {size} bytes; at most {self.max_headers} are accepted"
        )

    def check_content_length(self, raw: str | None) -> tuple[int | None, Rejection | None]:
        """The declared body length, or the rejection a bad or too large one earns.

        RFC 9110 allows ASCII digits only: ``str.isdigit()`` alone would take ``"²"``
        (and ``int()`` would then fail), and ``"+5"``, ``"-5"`` or ``"0x5"`` are not
        lengths. Surrounding spaces are field whitespace; a value of more digits than
        any limit is 413 without building the integer (``int()`` refuses 4 300 digits).
        """
        if raw is None:
            return None, None
        value = raw
        if not (value.isascii() and value.isdigit()):  # the common value skips all this
            value = raw.strip(" \t")
            if value == "":
                return None, None
            if not (value.isascii() and value.isdigit()):
                return None, Rejection(400, f"Content-Length {truncate(raw, 20)!r} is not a number")
        if len(value) > 18:
            value = value.lstrip("0") or "0"
            if len(value) > 18:
                return None, Rejection(
                    413,
                    f"request body of {len(value)}-digit length exceeds the limit of "
                    f"{self.max_body} bytes",
                )
        length = int(value)
        return length, self.too_large(length)

    def too_large(self, length: int) -> Rejection | None:
        if length <= self.max_body:
            return None
        return Rejection(
            413, f"request body of {length} bytes exceeds the limit of {self.max_body} bytes"
        )

    def rules_for(self, method: str, route: str | None) -> Any:
        if not self.rules or route is None:
            return None
        return self.rules.get(f"{method} {route}") or self.rules.get(route)

    def check_json(self, body: bytes, content_type: str | None, rule_set: Any) -> Rejection | None:
        """Parse ``body`` as JSON and check it against ``rule_set``."""
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return Rejection(415, f"expected a JSON body (application/json), got {media!r}")
        try:
            data = json.loads(body)
        except UnicodeDecodeError as exc:
            return Rejection(400, f"the request body is not UTF-8 text: {exc.reason}")
        except json.JSONDecodeError as exc:
            return Rejection(400, f"the request body is not valid JSON: {exc}")
        except ValueError:  # valid JSON, but an integer longer than int() accepts
            return Rejection(
                422,
                "the request body holds an integer too long to read",
                ({"code": "number_too_long", "pointer": "", "message": _LONG_INT},),
            )
        except RecursionError:  # valid JSON nested deeper than the parser can follow
            return Rejection(
                422,
                "the request body is nested too deeply to read",
                ({"code": "too_deep", "pointer": "", "message": _DEEP},),
            )
        try:
            self.validator.ensure_valid(data, rule_set)
        except ValidationError as exc:
            errors = tuple(_error_entry(e) for e in exc.errors)
            return Rejection(422, f"the request body breaks {len(errors)} rule(s)", errors)
        except Exception as exc:
            # The validator could not decide (a bug, or input it does not handle). The
            # body is not let through unchecked, and the client is not told 500: the
            # answer is 422, and the log has the traceback for the operator.
            self._logger.error(
                "the validator raised %s checking a request body; answered 422",
                type(exc).__name__,
                exc_info=exc,
                extra=log_extra(
                    rule_set=getattr(rule_set, "name", rule_set), error_type=type(exc).__name__
                ),
            )
            return Rejection(
                422,
                "the request body could not be checked against its rule set",
                ({"code": "unverifiable", "pointer": "", "message": _UNVERIFIABLE},),
            )
        return None


_LONG_INT = "an integer in the body has more digits than the server reads"
_DEEP = "the body nests arrays or objects deeper than the server reads"
_UNVERIFIABLE = "the body holds a value the rule set's checks cannot handle"


# Codes of the HTTP range (RFC 9110: 100-599, nginx's 499 and Cloudflare's 52x included)
# keep their number as a label, at most 500 values; anything else is grouped ("7xx").
_KNOWN_STATUSES = frozenset(range(100, 600))
OTHER_METHOD = "_OTHER"  # the label of a method that is not allowed (OpenTelemetry's name)

RequestKey = tuple[str, str, str]  # method, route template, status label
# Label sets the monitor has no timings of under their own name.
_NO_TIMINGS = frozenset({UNMATCHED, OVERFLOW_OPERATION})


def status_label(status: int) -> str:
    return str(status) if status in _KNOWN_STATUSES else f"{status // 100}xx"


class HttpCounters:
    """Exact request counts for ``get_middleware_status()`` and the exporters.

    The hot path is lock-free: ``next()`` on a ``ReadableCount`` (an ``itertools.count``)
    is one C call, atomic under the GIL. A lock is taken only the first time a status code
    (at most 500 of them), a (method, route, status) triple or an exception type (at most
    100 names) is seen. Triples are bounded too: beyond ``max_routes`` label sets, new
    routes share the overflow route ``__overflow__``.
    """

    __slots__ = (
        "_by_key",
        "_by_label",
        "_exceptions",
        "_lock",
        "_max_routes",
        "_names",
        "_rate_limited",
        "_rejected",
        "_started",
        "_statuses",
        "started",
    )

    def __init__(self, max_routes: int = 1000) -> None:
        self._started = ReadableCount()
        # One request began: next() on the count, called from C (no Python frame).
        self.started: Callable[[], object] = partial(next, self._started)
        self._rate_limited = ReadableCount()
        self._statuses: dict[int, ReadableCount] = {}
        self._rejected: dict[int, ReadableCount] = {}
        self._exceptions: dict[str, ReadableCount] = {}
        # (method, route or None, status) as recorded -> the counter of its label set
        self._by_key: dict[tuple[str, str | None, int], ReadableCount] = {}
        self._by_label: dict[RequestKey, ReadableCount] = {}
        self._max_routes = max_routes
        self._lock = threading.Lock()
        self._names = BoundedNames(100)

    def count(self, method: str, route: str | None, status: int) -> None:
        """One finished request; ``method`` must already be an allowed one or ``_OTHER``."""
        counter = self._statuses.get(status)
        if counter is None:
            self._bump(self._statuses, status)
        else:
            next(counter)
        counter = self._by_key.get((method, route, status))
        if counter is None:
            counter = self._admit(method, route, status)
        next(counter)

    def _admit(self, method: str, route: str | None, status: int) -> ReadableCount:
        with self._lock:
            label = (method, route or UNMATCHED, status_label(status))
            counter = self._by_label.get(label)
            if counter is None:
                if len(self._by_label) >= self._max_routes:
                    label = (method, OVERFLOW_OPERATION, label[2])
                counter = self._by_label.setdefault(label, ReadableCount())
            # Remember the key as recorded, unless a hostile resolver floods us with them.
            if len(self._by_key) < 4 * self._max_routes:
                self._by_key[method, route, status] = counter
            return counter

    def _bump(self, table: dict[Any, ReadableCount], key: Any) -> None:
        counter = table.get(key)
        if counter is None:
            with self._lock:
                counter = table.setdefault(key, ReadableCount())
        next(counter)

    def finished(
        self,
        method: str,
        route: str | None,
        status: int,
        *,
        rejected: bool = False,
        error: BaseException | None = None,
    ) -> None:
        self.count(method, route, status)
        if rejected:
            self._bump(self._rejected, status)
            if status == 429:
                next(self._rate_limited)
        if error is not None:
            self._bump(self._exceptions, self._names.admit(type(error).__name__))

    def by_route(self) -> list[dict[str, Any]]:
        """``[{"method", "route", "status", "count"}]``, one per label set seen."""
        return [
            {"method": r.method, "route": r.route, "status": status, "count": count}
            for r in self._routes(None)
            for status, count in r.statuses.items()
        ]

    def _routes(self, latency: Mapping[str, LatencyLike] | None) -> tuple[RouteSnapshot, ...]:
        with self._lock:
            labels = sorted(self._by_label.items())
        routes: list[RouteSnapshot] = []
        statuses: dict[str, int] = {}
        for index, ((method, route, status), counter) in enumerate(labels):
            statuses[status] = count_value(counter)
            following = labels[index + 1][0] if index + 1 < len(labels) else None
            if following is not None and following[:2] == (method, route):
                continue  # more statuses of the same label set follow
            timed = None
            if latency is not None and route not in _NO_TIMINGS and method != OTHER_METHOD:
                timed = latency.get(f"{method} {route}")  # the name finish() records under
            routes.append(RouteSnapshot(method, route, statuses, timed))
            statuses = {}
        return tuple(routes)

    def snapshot(
        self,
        monitor: object = None,
        *,
        client_rate_limit: Mapping[str, Any] | None = None,
        endpoints: tuple[str, ...] = (),
        concurrency: ConcurrencySnapshot | None = None,
    ) -> HttpSnapshot:
        """A consistent read, each route with ``monitor``'s timings of it (if it has any)."""
        stats = getattr(monitor, "operation_stats", None)
        latency = None if stats is None else stats()
        with self._lock:
            statuses = {code: count_value(c) for code, c in sorted(self._statuses.items())}
            rejected = {code: count_value(c) for code, c in sorted(self._rejected.items())}
            exceptions = {name: count_value(c) for name, c in self._exceptions.items()}
        started = count_value(self._started)
        return HttpSnapshot(
            requests=started,
            in_flight=started - sum(statuses.values()),
            status_codes=statuses,
            rejected=rejected,
            rate_limited=count_value(self._rate_limited),
            exceptions=exceptions,
            routes=self._routes(latency),
            client_rate_limit=client_rate_limit,
            endpoints=endpoints,
            concurrency=concurrency,
        )
