"""A library log line as JSON, beside python-json-logger and structlog, and the cost of
the context the library's loggers add to each record.

The record is the one a failed call writes (operation, severity, attempt, breaker state,
error type in ``extra``, plus trace and span ids inside a span). Formatted by:

- a plain ``logging.Formatter`` (text, nothing structured): the floor;
- ``coordination.json_log_formatter()``: JSON, *every* field redacted again (a handler
  also gets the application's records, which no library filter has seen);
- python-json-logger's ``JsonFormatter`` and structlog's ``ProcessorFormatter`` with
  ``ExtraAdder`` + ``JSONRenderer``: JSON, nothing redacted.

Then one emitted record end to end (``logger.warning(..., extra=...)`` into a handler
that formats and drops the line): a bare logger, and a library logger with its two
filters (context, redaction), with OpenTelemetry not loaded and inside an SDK span.
No target: logging is off the hot path (a line per failure, transition or outage, each
rate-limited); this says what a line costs.

    .venv/bin/python bench/bench_logging.py [--quick]
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Callable

import coordination
from coordination._logging import library_logger, log_extra

MESSAGE = "operation %r failed after %d attempt(s) [%s]: %s: %s"
ARGS = ("charge", 3, "HIGH", "ConnectionError", "payments down (connection refused)")
EXTRA = log_extra(
    "charge", severity="HIGH", attempt=3, breaker_state="CLOSED", error_type="ConnectionError"
)


def best_ns(work: Callable[[], object], loops: int, rounds: int) -> float:
    """The best of ``rounds`` loops, per call (the undisturbed loop of a noisy machine)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(loops):
            work()
        best = min(best, (time.perf_counter_ns() - start) / loops)
    return best


def record() -> logging.LogRecord:
    made = logging.getLogger("coordination.error_handling").makeRecord(
        "coordination.error_handling",
        logging.WARNING,
        __file__,
        1,
        MESSAGE,
        ARGS,
        None,
        extra=EXTRA,
    )
    made.trace_id, made.span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    return made


def formatters() -> list[tuple[str, logging.Formatter]]:
    import structlog
    from pythonjsonlogger.json import JsonFormatter

    structlog_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    return [
        ("logging.Formatter (text)", logging.Formatter("%(asctime)s %(levelname)s %(message)s")),
        ("coordination.json_log_formatter", coordination.json_log_formatter()),
        (
            "python-json-logger JsonFormatter",
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"),
        ),
        ("structlog ProcessorFormatter", structlog_formatter),
    ]


def emitting(logger: logging.Logger, formatter: logging.Formatter) -> Callable[[], None]:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    handler.stream = _Null()
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    extra = dict(EXTRA)

    def emit() -> None:
        logger.warning(MESSAGE, *ARGS, extra=extra)

    return emit


class _Null(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    loops, rounds = (2_000, 5) if quick else (10_000, 15)
    one = record()
    print(f"formatting one library record ({len(EXTRA) + 2} context fields), best of {rounds}")
    print(f"{'':36} {'µs/line':>8} {'vs text':>8}")
    rows = [(label, best_ns(lambda f=f: f.format(one), loops, rounds)) for label, f in formatters()]
    floor = rows[0][1]
    for label, ns in rows:
        print(f"{label:36} {ns / 1000:8.2f} {ns / floor:7.2f}x")

    json_formatter = coordination.json_log_formatter()
    bare = emitting(logging.getLogger("bench.bare"), json_formatter)
    ours = emitting(library_logger("coordination.bench"), json_formatter)
    print(f"\none record emitted end to end (logger -> filters -> JSON handler), best of {rounds}")
    print(f"{'':50} {'µs/line':>8}")
    rows = [
        ("bare logger (no filter)", best_ns(bare, loops, rounds)),
        ("library logger, OpenTelemetry not loaded", best_ns(ours, loops, rounds)),
    ]
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("bench")
    with tracer.start_as_current_span("request"):
        rows.append(("library logger, inside an SDK span", best_ns(ours, loops, rounds)))
    for label, ns in rows:
        print(f"{label:50} {ns / 1000:8.2f}")
    print(f"{'  the filters (context + redaction)':50} {(rows[1][1] - rows[0][1]) / 1000:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
