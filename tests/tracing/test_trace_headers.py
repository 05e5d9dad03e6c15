"""Incoming trace headers: whatever a client or producer sends, OpenTelemetry's
propagators log nothing (a WARNING per malformed member would flood the application's
log, one per request or message), and the well-formed members still arrive."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, trace

from coordination._tracing import extract_context

from .doors import TRACEPARENT

# what a header is made of: the grammar's own characters, and everything around it
_ALPHABET = st.sampled_from('abz09_-*/@=,; \t"\\%\x00\x7f\x1fé') | st.characters(codec="ascii")
_MEMBER_KEY = st.from_regex(r"[a-z][a-z0-9_\-*/]{0,8}(@[a-z]{1,3})?", fullmatch=True)
_MEMBER_VALUE = st.text(_ALPHABET, max_size=12)
_MEMBERS = st.lists(
    st.tuples(_MEMBER_KEY | st.text(_ALPHABET, max_size=6), _MEMBER_VALUE), max_size=40
).map(lambda pairs: ",".join(f"{k}={v}" for k, v in pairs))
_HEADER = _MEMBERS | st.text(_ALPHABET, max_size=300)


@pytest.fixture
def otel_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="opentelemetry")
    return caplog


def _otel_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tracestate=_HEADER,
    baggage_header=_HEADER,
    traceparent=st.sampled_from([TRACEPARENT]) | st.text(_ALPHABET, max_size=600),
)
def test_no_header_makes_opentelemetry_log(
    otel_warnings: pytest.LogCaptureFixture, tracestate: str, baggage_header: str, traceparent: str
) -> None:
    otel_warnings.clear()
    extract_context(
        {"traceparent": traceparent, "tracestate": tracestate, "baggage": baggage_header}
    )
    assert _otel_records(otel_warnings) == []


def test_the_well_formed_members_survive_a_bad_one(otel_warnings: pytest.LogCaptureFixture) -> None:
    context = extract_context(
        {
            "traceparent": TRACEPARENT,
            "tracestate": "vendor=ok, BAD=x,tenant@sys=v 1,x=trailing ,x=dup, =nokey",
            "baggage": "user=alice, bad entry, tier=gold;prop=1",
        }
    )
    assert context is not None
    state = trace.get_current_span(context).get_span_context().trace_state
    # the space after "trailing" is the list's optional whitespace; the second x is a duplicate
    assert dict(state) == {"vendor": "ok", "tenant@sys": "v 1", "x": "trailing"}
    assert baggage.get_all(context) == {"user": "alice", "tier": "gold;prop=1"}
    assert _otel_records(otel_warnings) == []


def test_past_32_members_the_first_32_are_kept(otel_warnings: pytest.LogCaptureFixture) -> None:
    header = ",".join(f"k{i}=v{i}" for i in range(40))
    context = extract_context({"traceparent": TRACEPARENT, "tracestate": header})
    assert context is not None
    state = trace.get_current_span(context).get_span_context().trace_state
    assert list(state) == [f"k{i}" for i in range(32)]
    assert _otel_records(otel_warnings) == []


def test_unfiltered_the_propagator_would_have_logged(
    otel_warnings: pytest.LogCaptureFixture,
) -> None:
    # the premise of this file: OpenTelemetry itself warns for such a header
    from opentelemetry import propagate

    propagate.extract({"traceparent": TRACEPARENT, "tracestate": "vendor=ok,BAD=x"})
    assert any("w3c" in message for message in _otel_records(otel_warnings))
