"""Spans through the OpenTelemetry API, at no cost while nothing would record them.

The library never imports OpenTelemetry itself (it costs 30 ms) and never configures it.
A span is made only while a tracer provider is set: the application's (the SDK's
``trace.set_tracer_provider``, or the ``OTEL_PYTHON_TRACER_PROVIDER`` variable), or one
given to ``use_tracer_provider`` (tests, or a service that keeps the library's spans apart).
Without one, ``current_tracer()`` answers ``None`` after a dictionary lookup and the
caller skips its span altogether: no no-op span is built, no context is attached.

The check reads OpenTelemetry's global provider slot rather than calling
``trace.get_tracer_provider()``, whose environment lookup costs about 0.9 µs a call. If a
future opentelemetry-api drops that slot, the public getter is used instead (slower,
still correct).

Protected calls pay nothing for this while no span would be recorded: each runner
registers with ``watch_calls`` and is told ``trace_calls(True)`` / ``(False)`` when that
changes, then rebinds one closure cell of its wrapper (no flag read on the call path).
The change is noticed at once by ``use_tracer_provider``, by any ``current_tracer()``
that meets a new provider (a door's request, a traced call), and for a global provider set
after the calls were wrapped, by a daemon thread that looks once a second until one is
set (only when OpenTelemetry is installed; OpenTelemetry sets the global one only once).
A provider whose tracer records nothing (the SDK's ``ALWAYS_OFF`` sampler, the API's
no-op tracer, ``OTEL_SDK_DISABLED``) counts as none: the SDK's own dropped span costs
microseconds, and nothing of it would be seen.

Names here are shared by every door so a trace reads the same whichever door a call came
through: ``ATTRIBUTE_*`` are the span attributes (and the structured log fields of
``_logging``), ``current_ids()`` the trace and span ids of the current span.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "ATTRIBUTE_ATTEMPTS",
    "ATTRIBUTE_BREAKER_STATE",
    "ATTRIBUTE_OPERATION",
    "ATTRIBUTE_OUTCOME",
    "ATTRIBUTE_SEVERITY",
    "DOORS",
    "INSTRUMENTATION_NAME",
    "CallWatcher",
    "Switch",
    "close_span",
    "current_call",
    "current_ids",
    "current_trace_headers",
    "current_tracer",
    "enter_call",
    "exception_event",
    "exception_type",
    "extract_context",
    "inject_context",
    "leave_call",
    "open_span",
    "refresh",
    "span_error",
    "use_tracer_provider",
    "watch_calls",
    "watch_doors",
]

INSTRUMENTATION_NAME = "coordination"
ATTRIBUTE_OPERATION = "coordination.operation"
ATTRIBUTE_SEVERITY = "coordination.severity"
ATTRIBUTE_ATTEMPTS = "coordination.attempts"
ATTRIBUTE_BREAKER_STATE = "coordination.breaker.state"
ATTRIBUTE_OUTCOME = "coordination.outcome"

_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
_MAX_TRACE_HEADER = 8192  # W3C's longest tracestate and baggage header
_MAX_TRACEPARENT = 512  # OpenTelemetry logs a warning past this, then drops it
# W3C Trace Context's tracestate list-member (key "=" value), as OpenTelemetry checks it:
# a member it refuses makes it log a WARNING and drop the whole tracestate, so a hostile
# header (one per request or message) would flood its logger. Dropped here, member by
# member, and the rest handed over.
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
_MAX_TRACESTATE_MEMBERS = 32
_MAX_TRACESTATE = 512  # characters W3C asks a vendor to keep of a tracestate, kept with a letter
# W3C Baggage's list-member (RFC 9110 token "=" baggage-octets, then ";" properties),
# likewise: OpenTelemetry logs each member it refuses.
_BAGGAGE_KEY = r"[\x21\x23-\x27\x2a\x2b\x2d\x2e\x30-\x39\x41-\x5a\x5e-\x7a\x7c\x7e]+"
_BAGGAGE_VALUE = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_BAGGAGE_MEMBER = re.compile(
    rf"[ \t]*{_BAGGAGE_KEY}[ \t]*=[ \t]*{_BAGGAGE_VALUE}[ \t]*"
    rf"(?:;[ \t]*{_BAGGAGE_KEY}[ \t]*(?:=[ \t]*{_BAGGAGE_VALUE}[ \t]*)?)*"
)
_MAX_BAGGAGE_MEMBERS = 180
_MAX_BAGGAGE_MEMBER = 4096
_PROVIDER_VARIABLE = "OTEL_PYTHON_TRACER_PROVIDER"
POLL_SECONDS = 1.0  # how soon a global provider set after the calls were wrapped is seen


class CallWatcher(Protocol):
    """What ``watch_calls`` keeps (weakly): told when the library's spans turn on or off."""

    def trace_calls(self, on: bool) -> None: ...


class Switch:
    """Whether the library's spans are on, for the doors to read per request or message:
    ``DOORS.on`` is an attribute read (about 10 ns) where ``current_tracer()`` is a call
    (about 90 ns). Kept by the same flip that switches the runners' wrappers, so it is
    true exactly while ``current_tracer()`` would answer a tracer; the doors then ask for
    the tracer itself. A door made calls ``watch_doors`` once, so a global provider set
    after it is seen (within ``POLL_SECONDS``) even if no protected call exists."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


DOORS = Switch()


class _State:
    """What ``current_tracer`` reads: the override, the OpenTelemetry module once loaded,
    and the tracer made for the provider last seen (rebuilt when the provider changes)."""

    __slots__ = (
        "calls_on",
        "doors",
        "flip_lock",
        "installed",
        "lock",
        "otel",
        "override",
        "polling",
        "provider",
        "slot_readable",
        "tracer",
        "watchers",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.override: TracerProvider | None = None
        self.otel: ModuleType | None = None
        self.slot_readable = True
        self.provider: object = None
        self.tracer: Tracer | None = None  # None too when the provider's tracer drops all
        # the runners told when spans turn on or off; flips are serialised (no I/O inside)
        self.watchers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.flip_lock = threading.Lock()
        self.calls_on = False
        self.installed: bool | None = None  # is OpenTelemetry importable (asked once)
        self.polling = False
        self.doors = False  # a door reads DOORS: watch for a provider as for the runners


_state = _State()
_blocks: list[tuple[object, TracerProvider | None]] = []  # open use_tracer_provider blocks


def current_tracer() -> Tracer | None:
    """The library's tracer while a tracer provider is set, else ``None``.

    Cheap enough for every protected call: a caller asks once per call and makes no span
    at all on ``None``."""
    state = _state
    provider: object = state.override
    if provider is None:
        otel = state.otel
        if otel is None:
            otel = sys.modules.get("opentelemetry.trace")
            if otel is None or _importing(otel):
                return None  # nothing imported OpenTelemetry (yet): no provider can be set
            _loaded(otel)
        if state.slot_readable:
            provider = getattr(otel, "_TRACER_PROVIDER", None)
        else:
            provider = _public_provider(otel)
        if provider is None:
            return None
    if provider is state.provider:
        return state.tracer
    tracer = _tracer_for(provider)
    if (tracer is not None) is not state.calls_on:
        _flip(tracer is not None)
    return tracer


def _loaded(otel: ModuleType) -> None:
    """OpenTelemetry was imported: note how its provider is read from now on."""
    with _state.lock:
        _state.slot_readable = hasattr(otel, "_TRACER_PROVIDER")
        if _state.slot_readable and os.environ.get(_PROVIDER_VARIABLE):
            otel.get_tracer_provider()  # the variable's provider is set on first ask
        _state.otel = otel


def _public_provider(otel: ModuleType) -> object:
    provider = otel.get_tracer_provider()
    return None if isinstance(provider, otel.ProxyTracerProvider) else provider


def _tracer_for(provider: Any) -> Tracer | None:
    from ._version import __version__

    with _state.lock:
        tracer: Tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        kept = tracer if _records(tracer) else None
        _state.provider, _state.tracer = provider, kept
        return kept


def _records(tracer: object) -> bool:
    """Whether ``tracer`` may record a span: not the API's no-op tracer (no SDK, or
    ``OTEL_SDK_DISABLED``), not an SDK tracer whose sampler drops every span
    (``ALWAYS_OFF``, whatever the parent). A tracer's sampler is fixed when it is made."""
    if type(tracer).__name__ == "NoOpTracer":
        return False
    sampler = getattr(tracer, "sampler", None)
    if type(sampler).__name__ != "StaticSampler":
        return True
    return bool(getattr(sampler, "get_description", str)() != "AlwaysOffSampler")


def watch_calls(watcher: CallWatcher) -> bool:
    """Keep ``watcher`` (weakly) to tell it when spans turn on or off; whether they are
    on now (the caller applies that itself)."""
    on = refresh()
    with _state.flip_lock:
        _state.watchers.add(watcher)
        on = _state.calls_on
    if not on:
        _poll_for_provider()
    return on


def watch_doors() -> bool:
    """A door (middleware, processor, source) will read ``DOORS.on``: look at the provider
    now and, while spans are off, watch for a global one; whether they are on."""
    _state.doors = True
    on = refresh()
    if not on:
        _poll_for_provider()
    return on


def refresh() -> bool:
    """Look at the provider now and tell the watchers if spans turned on or off; whether
    they are on. Cheap enough for a slow path (a failure, a traced call that found none)."""
    on = current_tracer() is not None
    if on is not _state.calls_on:
        _flip(on)
    return on


def _flip(on: bool) -> None:
    with _state.flip_lock:
        if _state.calls_on is on:
            return
        _state.calls_on = DOORS.on = on
        for watcher in list(_state.watchers):
            watcher.trace_calls(on)  # rebinds a cell or two: no I/O, no user code


def _importing(module: ModuleType) -> bool:
    """``module`` is in ``sys.modules`` but still being executed by another thread's
    import: its names are not all there yet (look again later)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _global_set() -> bool:
    otel = sys.modules.get("opentelemetry.trace")
    if otel is None or _importing(otel):
        return False
    if _state.slot_readable and hasattr(otel, "_TRACER_PROVIDER"):
        return otel._TRACER_PROVIDER is not None
    return _public_provider(otel) is not None


def _poll_for_provider() -> None:
    """A global provider set after the calls were wrapped would not be seen by a call
    that reads nothing: look once every ``POLL_SECONDS`` until one is set (OpenTelemetry
    allows that once), only when OpenTelemetry is installed at all."""
    state = _state
    with state.lock:
        if state.polling:
            return
        if state.installed is None:
            state.installed = _installed("opentelemetry")
        if not state.installed:
            return
        state.polling = True
    threading.Thread(target=_poll, name="coordination-tracing-watch", daemon=True).start()


def _installed(name: str) -> bool:
    """Whether ``name`` could be imported (asked of the import system's finders, as
    ``importlib.util.find_spec`` does for a top-level name, without loading that module)."""
    if name in sys.modules:
        return sys.modules[name] is not None  # None: blocked, an import would fail
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        try:
            if find is not None and find(name, None) is not None:
                return True
        except Exception:  # a finder that refuses the name (an import blocker): not here
            return False
    return False


def _poll() -> None:
    stop = threading.Event()
    try:
        while not stop.wait(POLL_SECONDS):
            try:
                found = _global_set()
            except Exception:  # an OpenTelemetry we cannot read: look again, never die
                found = False
            if not found:
                continue
            refresh()
            return  # set once for the process: use_tracer_provider tells the rest itself
    finally:
        with _state.lock:
            _state.polling = False


def _after_fork() -> None:
    # the parent's watch thread is not in the child; a worker often sets its provider
    # after the fork (gunicorn's post_fork), so the child looks again
    _state.polling = False
    _state.flip_lock = threading.Lock()
    _state.lock = threading.Lock()
    if (_state.doors or len(_state.watchers)) and not _state.calls_on:
        _poll_for_provider()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# The traced protected call running in this thread or task (error_handling's CallSpan),
# here so the pipeline's slow paths can ask without loading the module that makes spans.
_call: ContextVar[Any] = ContextVar("coordination_traced_call", default=None)


def enter_call(call: Any) -> object:
    """Make ``call`` the current traced call; the token ``_call.reset`` takes back."""
    return _call.set(call)


def leave_call(token: Any) -> None:
    try:
        _call.reset(token)
    except ValueError:  # ended in another context than it began (never expected)
        _call.set(None)


def current_call(owner: object) -> Any:
    """The traced call of ``owner`` (an operation) running here, else ``None``: one
    context variable read, for slow paths (a retry, a fallback). A call of another
    owner (this one nested in it, not traced itself) is not this one's."""
    call = _call.get()
    return call if call is not None and call.owner is owner else None


def open_span(tracer: Tracer, name: str, attributes: Mapping[str, Any]) -> tuple[Span, object]:
    """A span started as a child of the current one and made current; hand both to
    ``close_span`` (in the same thread or task)."""
    api = _api or _load_api()
    span = tracer.start_span(name, attributes=attributes)
    return span, api[0].attach(api[1].set_span_in_context(span))


def close_span(span: Span, token: object) -> None:
    """End ``span`` and make current again what was before ``open_span``."""
    (_api or _load_api())[0].detach(token)
    span.end()


_MAX_MESSAGE = 1000  # characters of an exception's redacted message on a span
_MAX_STACKTRACE = 8000  # of its redacted traceback
_MAX_STATUS = 200  # of the ERROR status's description
_public_names: dict[type, str] = {}  # the library's error classes, as their public path


def exception_type(exc: BaseException) -> str:
    """``exc``'s type as a span names it (``exception.type``, ``error.type``): the
    qualified class name, builtins unqualified, and the library's own errors by the path
    the application imports them from (``coordination.CircuitOpenError``, not the private
    module that defines it). Mapped here rather than by setting ``__module__`` on the
    classes: that would change their pickles and reprs."""
    kind = type(exc)
    module = kind.__module__
    if not module or module == "builtins":
        return kind.__qualname__
    if module == "coordination" or module.startswith("coordination."):
        known = _public_names.get(kind)
        if known is None:
            known = _public_names[kind] = _public_path(kind, module)
        return known
    return f"{module}.{kind.__qualname__}"


def _public_path(kind: type, module: str) -> str:
    """The shortest package path ``coordination[.x]`` exporting ``kind`` under its name
    (its ``__all__``), else where it is defined. Only the library's classes come here,
    so the cache is bounded by them."""
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        package = sys.modules.get(".".join(parts[:depth]))
        if package is None:
            break
        if kind.__qualname__ in getattr(package, "__all__", ()) and (
            getattr(package, kind.__qualname__, None) is kind
        ):
            return f"{package.__name__}.{kind.__qualname__}"
    return f"{module}.{kind.__qualname__}"


def exception_event(span: Span, exc: BaseException) -> str:
    """Add ``exc`` to ``span`` as OpenTelemetry's ``exception`` event, its message and
    traceback redacted and bounded as every log line is (a span leaves the process too);
    answers the message as recorded. Written as ``record_exception`` writes it, which
    would call ``str()`` unguarded (a ``__str__`` that raises would replace the call's
    error) and export the secrets."""
    import traceback

    from ._redact import error_text, redact, truncate

    message = error_text(exc, _MAX_MESSAGE)
    if message == f"<unprintable {type(exc).__name__}>":
        message = f"<{type(exc).__name__}: str() failed>"
    try:
        stack = truncate(redact("".join(traceback.format_exception(exc))), _MAX_STACKTRACE)
    except Exception:  # a hostile __str__ inside the chain: the type and message still go
        stack = ""
    span.add_event(
        "exception",
        {
            "exception.type": exception_type(exc),
            "exception.message": message,
            "exception.stacktrace": stack,
            "exception.escaped": "False",
        },
    )
    return message


def span_error(span: Span, exc: BaseException, description: str | None = None) -> None:
    """Mark ``span`` failed by ``exc``: its ``exception`` event (``exception_event``), its
    ``error.type`` and the ERROR status, described by ``description`` (default: the
    exception's message), redacted. The one recorder of every span the library makes:
    protected calls, requests, events, publishes."""
    from ._redact import redact, truncate

    trace = (_api or _load_api())[1]
    message = exception_event(span, exc)
    span.set_attribute("error.type", exception_type(exc))
    shown = message if description is None else redact(description)
    span.set_status(trace.Status(trace.StatusCode.ERROR, truncate(shown, _MAX_STATUS)))


_api: tuple[Any, Any] | None = None  # (opentelemetry.context, opentelemetry.trace)


def _load_api() -> tuple[Any, Any]:
    # only ever called with a tracer in hand: OpenTelemetry is already imported
    global _api
    from opentelemetry import context, trace

    _api = (context, trace)
    return _api


@contextmanager
def use_tracer_provider(provider: TracerProvider | None) -> Iterator[None]:
    """The library's spans go to ``provider`` inside the block (``None``: back to the
    global one), whatever the global provider is. OpenTelemetry lets a process set its
    global provider only once; this is how a test records spans of its own."""
    block = object()  # this block's place among the open ones
    with _state.lock:
        _blocks.append((block, provider))
        _state.override = provider
    refresh()
    try:
        yield
    finally:
        with _state.lock:
            # Blocks may end in any order (threads: A in, B in, A out, B out): the one
            # in force is the newest still open, none once all have ended.
            _blocks[:] = [(b, p) for b, p in _blocks if b is not block]
            _state.override = _blocks[-1][1] if _blocks else None
        refresh()


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span in W3C hex, or ``None`` when there is
    no valid span (OpenTelemetry not loaded, or nothing traced)."""
    otel = _state.otel or sys.modules.get("opentelemetry.trace")
    if otel is None:
        return None
    context = otel.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _propagate() -> ModuleType | None:
    """``opentelemetry.propagate`` if the application has OpenTelemetry loaded."""
    if "opentelemetry" not in sys.modules:
        return None  # not installed, or not in use: carry nothing, import nothing
    try:
        from opentelemetry import propagate
    except ImportError:
        return None
    return propagate


def inject_context(carrier: MutableMapping[str, str]) -> None:
    """Write the current trace context (``traceparent``, ``tracestate``, ``baggage``)
    into ``carrier``, if OpenTelemetry is loaded."""
    propagate = _propagate()
    if propagate is not None:
        propagate.inject(carrier)


def current_trace_headers() -> dict[str, str] | None:
    """The W3C ``traceparent`` (and ``tracestate``, when there is one) of the current
    span, for something kept beyond this process's lifetime (a dead letter), or ``None``:
    OpenTelemetry not loaded, no valid current span, or a propagator that writes no
    ``traceparent``. Never ``baggage``: it is the application's key-value data (user ids,
    tokens), and what is stored outlives the request it was meant for. Bounded as
    ``extract_context`` takes it back (a ``tracestate`` past ``_MAX_TRACESTATE``
    characters, its well-formed members kept, is left out whole)."""
    if current_ids() is None:  # no OpenTelemetry, or nothing traced: import nothing
        return None
    carrier: dict[str, str] = {}
    try:
        inject_context(carrier)
    except Exception:  # a propagator of the application's that fails: nothing to keep
        return None
    traceparent = carrier.get("traceparent")
    if not isinstance(traceparent, str) or not 0 < len(traceparent) <= _MAX_TRACEPARENT:
        return None
    kept = {"traceparent": traceparent}
    tracestate = carrier.get("tracestate")
    if isinstance(tracestate, str) and tracestate.isascii():
        tracestate = _tracestate(tracestate[:_MAX_TRACE_HEADER])
        if tracestate and len(tracestate) <= _MAX_TRACESTATE:
            kept["tracestate"] = tracestate
    return kept


def extract_context(carrier: Mapping[str, Any]) -> Context | None:
    """The trace context ``carrier`` holds (message headers, stream fields, a WSGI
    environ's ``traceparent``), or ``None``: OpenTelemetry not loaded, no trace header,
    or one that is too long, not ASCII text, or refused by the propagator (a hostile
    header never keeps a message or request from its handler)."""
    propagate = _propagate()
    if propagate is None:
        return None
    carried: dict[str, str] = {}
    for name in _TRACE_HEADERS:
        value = carrier.get(name)
        if isinstance(value, bytes):
            try:
                value = value.decode("ascii")
            except UnicodeDecodeError:
                continue
        # Longer than W3C allows: OpenTelemetry would log the whole value, then drop it.
        if isinstance(value, str) and value and len(value) <= _MAX_TRACE_HEADER and value.isascii():
            if name == "tracestate":
                value = _tracestate(value)
            elif name == "baggage":
                value = _baggage(value)
            elif len(value) > _MAX_TRACEPARENT:
                continue
            if value:
                carried[name] = value
    if "traceparent" not in carried:
        return None
    try:
        extracted: Context = propagate.extract(carried)
    except Exception:
        return None
    return extracted


def _tracestate(header: str) -> str:
    """``header``'s well-formed members, duplicates and those past the 32nd left out:
    what OpenTelemetry takes without a warning (its members are the vendors', and one bad
    one must not cost the rest, nor a log line per request)."""
    kept: dict[str, str] = {}
    for member in header.split(","):
        member = member.strip(" \t")
        if member and _TRACESTATE_MEMBER.fullmatch(member) is not None:
            key = member.partition("=")[0]
            if key not in kept:
                kept[key] = member
                if len(kept) == _MAX_TRACESTATE_MEMBERS:
                    break
    return ",".join(kept.values())


def _baggage(header: str) -> str:
    """``header``'s well-formed members, at most 180 of at most 4096 characters each:
    what OpenTelemetry's baggage propagator takes without a warning."""
    kept: list[str] = []
    for member in header.split(","):
        member = member.strip(" \t")
        if (
            member
            and len(member) <= _MAX_BAGGAGE_MEMBER
            and _BAGGAGE_MEMBER.fullmatch(member) is not None
        ):
            kept.append(member)
            if len(kept) == _MAX_BAGGAGE_MEMBERS:
                break
    return ",".join(kept)
