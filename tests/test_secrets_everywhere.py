"""No secret in any output: a generated secret, planted in generated text in each form the
policy covers, appears nowhere the library shows it — the log output of every component
(pytest's caplog and a real StreamHandler), the reports, ``str()``/``repr()`` of every
exception, the dead-letter journal read back from SQLite, ``repr(config)``,
``describe_config()`` and the ``coordination config`` command."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from coordination import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    CoordinationConfig,
    CoordinationErrorHandler,
    CoordinationEventProcessor,
    CoordinationHealthChecker,
    CoordinationMiddleware,
    CoordinationPerformanceMonitor,
    CoordinationValidator,
    EventDeadLettered,
    OperationTimeout,
    RateLimitExceeded,
    RuleSetError,
    StoreError,
    ValidationError,
    describe_config,
)
from coordination._bounded import BoundedNames
from coordination._logging import component_logger, library_logger
from coordination.observability._health_http import health_document
from secret_forms import Planted, any_planted, leaked, planted_in_text, url_userinfo

pytestmark = pytest.mark.usefixtures("clean_environment")

SLOW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Captured:
    """Everything the ``coordination`` loggers emitted, through two kinds of handler."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def clear(self) -> None:
        self.caplog.clear()
        self.stream.seek(0)
        self.stream.truncate()

    def text(self) -> str:
        parts = [self.stream.getvalue(), self.caplog.text]
        for record in self.caplog.records:
            parts.append(record.getMessage())
            parts.append(record.exc_text or "")
            parts.extend(str(v) for k, v in vars(record).items() if k not in ("msg", "args"))
        return "\n".join(parts)


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[Captured]:
    caplog.set_level(logging.DEBUG, logger="coordination")
    capture = Captured(caplog)
    root = logging.getLogger("coordination")
    root.addHandler(capture.handler)
    try:
        yield capture
    finally:
        root.removeHandler(capture.handler)


@pytest.fixture
def config() -> CoordinationConfig:
    return CoordinationConfig(
        max_retries=1,
        base_delay=0.001,
        jitter="none",
        circuit_breaker_threshold=10**6,
        debug=True,
    )


@pytest.fixture
def handler(config: CoordinationConfig) -> Iterator[CoordinationErrorHandler]:
    error_handler = CoordinationErrorHandler(config, debug=True, sleep=lambda _: None)
    yield error_handler
    error_handler.close()


@pytest.fixture
def components(config: CoordinationConfig, handler: CoordinationErrorHandler) -> dict[str, Any]:
    return {
        "config": config,
        "validator": CoordinationValidator(config=config, debug=True),
        "error_handler": handler,
        "performance_monitor": CoordinationPerformanceMonitor(config, debug=True),
    }


@pytest.fixture
def processor(tmp_path: Path, components: dict[str, Any]) -> Iterator[CoordinationEventProcessor]:
    with CoordinationEventProcessor(
        dead_letter_path=tmp_path / "journal.sqlite3", debug=True, **components
    ) as events:
        yield events


def _fail_with(text: str) -> Any:
    def fail(*_: Any) -> Any:
        raise ValueError(text)

    return fail


# --- logs ------------------------------------------------------------------------------


@given(planted=planted_in_text())
@SLOW
def test_no_component_logger_shows_a_planted_secret(
    planted: Planted,
    captured: Captured,
    components: dict[str, Any],
    processor: CoordinationEventProcessor,
) -> None:
    captured.clear()
    loggers = {
        "error_handling": components["error_handler"]._logger,
        "validation": components["validator"]._logger,
        "performance": components["performance_monitor"]._logger,
        "observability": CoordinationHealthChecker(components, debug=True)._logger,
        "integration": processor._logger,
        "redis": component_logger("redis"),
        "coordination": BoundedNames(5)._logger,
    }
    # a "secret" that the loggers' own names hold (".perform") is no leak: proves nothing
    names = " ".join(logger.name for logger in loggers.values())
    assume(not any(secret in names for secret in planted.secrets))
    text = planted.text
    for logger in loggers.values():
        logger.warning("it failed: %s", text)
        logger.error(text)
        logger.debug("seen %r", text)
        logger.info("with extras", extra={"detail": text, "api_key": text, "ctx": {"n": [text]}})
        try:
            raise ValueError(text)
        except ValueError:
            logger.exception("the application's own exception")
    shown = captured.text()
    assert shown.count("the application's own exception") >= 2 * len(loggers)
    assert not leaked(planted, shown), leaked(planted, shown)


@given(planted=planted_in_text())
@SLOW
def test_real_code_paths_log_and_report_no_planted_secret(
    planted: Planted, captured: Captured, config: CoordinationConfig, tmp_path: Path
) -> None:
    # Components of this example only: their reports hold nothing from earlier ones.
    handler = CoordinationErrorHandler(config, debug=True, sleep=lambda _: None)
    components = {
        "config": config,
        "validator": CoordinationValidator(config=config, debug=True),
        "error_handler": handler,
        "performance_monitor": CoordinationPerformanceMonitor(config, debug=True),
    }
    journal = tmp_path / f"journal-{uuid.uuid4().hex}.sqlite3"
    processor = CoordinationEventProcessor(dead_letter_path=journal, debug=True, **components)
    try:
        _real_code_paths(planted, captured, handler, processor, components)
    finally:
        processor.close()
        handler.close()


def _real_code_paths(
    planted: Planted,
    captured: Captured,
    handler: CoordinationErrorHandler,
    processor: CoordinationEventProcessor,
    components: dict[str, Any],
) -> None:
    captured.clear()
    text = planted.text
    outputs: list[str] = []

    # The error handler: DEBUG attempt lines, the failure line, recent_errors.
    with pytest.raises(ValueError):
        handler.execute_with_error_handling(
            _fail_with(text), operation_name="planted", error_severity="HIGH"
        )
    outputs.append(json.dumps(handler.get_error_report()))

    # The WSGI middleware logging the application's own exception.
    middleware = CoordinationMiddleware(_fail_with(text), debug=True, **components)
    with pytest.raises(ValueError):
        Client(middleware).get("/orders", buffered=True)
    outputs.append(json.dumps(middleware.get_middleware_status(), default=str))

    # The event processor: its log line, the exception, its status, the stored error.
    processor.on("planted")(_fail_with(text))
    with pytest.raises(EventDeadLettered) as raised:
        processor.process_event({"n": 1}, "planted")
    outputs += [str(raised.value), repr(raised.value)]
    outputs.append(json.dumps(processor.get_processor_status(), default=str))
    outputs.extend(letter.error for letter in processor.dead_letters.list(limit=1000))
    with contextlib.closing(sqlite3.connect(processor.dead_letters.path)) as db:
        outputs.extend(row[0] for row in db.execute("SELECT error FROM dead_letters"))

    # Validation: a value quoted in a failure, and a failure's report.
    validator = components["validator"]
    rules = validator.compile({"fields": {"note": {"type": "integer"}}}, name="planted")
    validator.validate({"note": text}, rules)
    outputs.append(json.dumps(validator.get_validation_report()))

    # Health: a check that raises, one whose details hold the text.
    checker = CoordinationHealthChecker(components, debug=True)
    checker.add_check("raises", _fail_with(text))
    checker.add_check("details", lambda: {"status": "HEALTHY", "dsn": text, "note": [text]})
    report = checker.check_health()
    outputs.append(json.dumps(report, default=str))
    outputs.append(json.dumps(health_document(report, details=True)))

    outputs.append(captured.text())
    shown = "\n".join(outputs)
    assert "raises:status" in shown  # the health document was really built
    assert not leaked(planted, shown), leaked(planted, shown)


# --- exceptions ------------------------------------------------------------------------


def _exceptions(text: str) -> list[Exception]:
    class Issue:
        message = text

    return [
        ConfigError(text, field="x", value=text, source="test"),
        RuleSetError(f"rule file broken: {text}"),
        ValidationError([], message=text),
        ValidationError([Issue()], rule_set="orders"),
        CircuitOpenError(text, 1.0),
        OperationTimeout(text, 2.0),
        BulkheadFull(text, 3),
        RateLimitExceeded(text, 1.5),
        EventDeadLettered("orders", 7, text),
        StoreError(text),
    ]


@given(planted=planted_in_text())
@settings(max_examples=200, deadline=None)
def test_no_exception_shows_a_planted_secret(planted: Planted) -> None:
    # a "secret" that the library's own words hold (quoted values are any text: "Validati")
    # is no leak: such examples prove nothing
    own_words = "".join(
        str(exc) + repr(exc) + "".join(_format(exc)) for exc in _exceptions("placeholder")
    )
    assume(not any(secret in own_words for secret in planted.secrets))
    for exc in _exceptions(planted.text):
        for shown in (str(exc), repr(exc), "".join(_format(exc))):
            assert not leaked(planted, shown), (type(exc).__name__, shown)


def _format(exc: Exception) -> list[str]:
    import traceback

    try:
        raise exc
    except Exception as raised:
        return traceback.format_exception(raised)


# --- configuration ---------------------------------------------------------------------


@given(planted=url_userinfo())
@settings(max_examples=100, deadline=None)
def test_config_shows_no_url_userinfo(planted: Planted) -> None:
    config = CoordinationConfig(redis_url=planted.text)
    assert config.redis_url == planted.text  # the real value is kept for connecting
    assert not leaked(planted, repr(config))
    assert not leaked(planted, str(config))
    rows = describe_config(environ={"COORDINATION_REDIS_URL": planted.text})
    assert not leaked(planted, repr(rows))
    [(_, shown, source)] = [row for row in rows if row[0] == "redis_url"]
    assert "***@" in shown
    assert source == "environment variable COORDINATION_REDIS_URL"


@given(planted=planted_in_text(any_planted))
@settings(max_examples=100, deadline=None)
def test_config_errors_show_no_planted_secret(planted: Planted) -> None:
    with pytest.raises(ConfigError) as raised:
        CoordinationConfig.from_environment({"COORDINATION_MAX_RETRIES": planted.text})
    assert not leaked(planted, str(raised.value))
    assert not leaked(planted, repr(raised.value))


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    return subprocess.run(
        [sys.executable, "-m", "coordination", "config", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**clean, **env},
        timeout=60,
    )


@given(planted=url_userinfo(), output=st.sampled_from(("table", "json")))
@settings(max_examples=6, deadline=None)
def test_the_config_command_shows_no_url_userinfo(planted: Planted, output: str) -> None:
    done = _cli("--format", output, env={"COORDINATION_REDIS_URL": planted.text})
    assert done.returncode == 0, done.stderr
    assert "redis_url" in done.stdout
    assert not leaked(planted, done.stdout + done.stderr)


def test_the_config_command_fixed_cases(tmp_path: Path) -> None:
    url = "redis://admin:pw-s3cret@cache.internal:6379/0"
    done = _cli("--format", "json", env={"COORDINATION_REDIS_URL": url})
    shown = json.loads(done.stdout)["redis_url"]
    assert shown == {
        "value": "redis://admin:***@cache.internal:6379/0",
        "source": "environment variable COORDINATION_REDIS_URL",
    }
    path = tmp_path / "c.yaml"
    path.write_text(f"redis_url: '{url}'\n", encoding="utf-8")
    done = _cli("--file", str(path), env={})
    assert "redis://admin:***@cache.internal:6379/0" in done.stdout
    assert "pw-s3cret" not in done.stdout
    # A bad value quoted in the error (exit 2) is masked too.
    done = _cli(env={"COORDINATION_MAX_RETRIES": url})
    assert done.returncode == 2
    assert "redis://admin:***@cache.internal" in done.stderr
    assert "pw-s3cret" not in done.stderr


def test_a_bad_redis_url_error_masks_its_userinfo() -> None:
    from coordination.backends.redis._connection import connect

    with pytest.raises(ConfigError) as raised:
        connect("http://admin:pw-s3cret@cache")
    assert "pw-s3cret" not in str(raised.value)
    assert "http://admin:***@cache" in str(raised.value)


# --- fixed cases through real outputs ---------------------------------------------------


def test_the_error_report_masks_every_form(handler: CoordinationErrorHandler) -> None:
    message = (
        'password=hunter2 {"api_key": "k-123"} redis://admin:pw@h '
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl Authorization: Bearer abc.def.ghi"
    )
    with pytest.raises(ValueError):
        handler.execute_with_error_handling(_fail_with(message), operation_name="db")
    [record] = handler.get_error_report()["recent_errors"]
    shown = record["message"]
    for secret in ("hunter2", "k-123", "abc.def.ghi", ":pw@", "c2lnbmF0dXJl"):
        assert secret not in shown
    assert shown.startswith("password=[redacted]")
    assert "redis://admin:***@h" in shown


def test_debug_lines_of_the_validator_are_masked(
    captured: Captured, components: dict[str, Any]
) -> None:
    validator = components["validator"]
    rules = validator.compile({"fields": {"callback": {"type": "integer"}}}, name="hooks")
    result = validator.validate({"callback": "https://u:pw-s3cret@hooks.example/x"}, rules)
    assert not result.is_valid
    shown = captured.text()
    assert "validation against 'hooks' failed" in shown
    assert "pw-s3cret" not in shown
    report = json.dumps(validator.get_validation_report()["recent_failures"])
    assert "https://u:***@hooks.example" in report
    assert "pw-s3cret" not in report


def test_health_output_is_masked(components: dict[str, Any]) -> None:
    checker = CoordinationHealthChecker(components)

    def database() -> None:
        raise ConnectionError("cannot reach postgres://app:pw-s3cret@db/app")

    checker.add_check("database", database)
    document = health_document(checker.check_health(), details=True)
    [entry] = document["checks"]["database:status"]
    assert entry["output"] == "ConnectionError: cannot reach postgres://app:***@db/app"


def test_a_record_with_nothing_secret_is_left_as_it_was(captured: Captured) -> None:
    logger = component_logger("validation")
    logger.warning("loaded %d rule sets from %s", 3, "rules/")
    [record] = captured.caplog.records
    assert record.msg == "loaded %d rule sets from %s"
    assert record.args == (3, "rules/")
    try:
        raise KeyError("plain")
    except KeyError:
        logger.exception("failed")
    assert captured.caplog.records[-1].exc_info is not None


def test_a_record_with_a_bad_format_string_is_still_masked(captured: Captured) -> None:
    component_logger("integration").warning("%d items, token=%s", "x", "tk-1234")
    shown = captured.text()
    assert "tk-1234" not in shown
    assert "[redacted]" in shown


def test_every_library_logger_is_made_by_the_redacting_helpers() -> None:
    """A logger taken straight from logging would skip the filter: only _logging makes them."""
    source = Path(__file__).parents[1] / "src" / "coordination"
    offenders = []
    for path in source.rglob("*.py"):
        if path.name == "_logging.py" or "demo" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"logging\.getLogger\(", line):
                offenders.append(f"{path.relative_to(source)}:{number}")
    assert not offenders
    for name in ("coordination", "coordination.error_handling", "coordination.redis"):
        logger = library_logger(name)
        assert sum(type(f).__name__ == "RedactingFilter" for f in logger.filters) == 1


def test_the_status_page_masks_a_failing_components_error() -> None:
    from coordination.observability import StatusPage

    class Broken:
        def get_health_status(self) -> dict[str, Any]:
            raise ConnectionError("cannot reach postgres://app:pw-s3cret@db/app")

    page = StatusPage({"database": Broken()})
    shown = json.dumps(page.snapshot(), default=str)
    assert "pw-s3cret" not in shown
    assert "postgres://app:***@db/app" in shown


def test_the_redis_guard_and_stream_dead_letters_mask_their_error_text(
    captured: Captured,
) -> None:
    from coordination.backends.redis._connection import RedisGuard
    from coordination.backends.redis._stream_entries import dead_fields

    guard = RedisGuard("breaker")
    guard.failed(ConnectionError("AUTH failed for redis://default:pw-s3cret@cache:6379"))
    assert guard.last_error == "ConnectionError: AUTH failed for redis://default:***@cache:6379"
    assert "pw-s3cret" not in captured.text()
    fields = dead_fields({"event": "{}"}, "failed: ValueError: token=tk-12345", 3)
    assert fields["reason"] == "failed: ValueError: token=[redacted]"


def test_under_uvicorn_the_apps_own_exception_is_logged_masked(
    captured: Captured, components: dict[str, Any]
) -> None:
    import httpx

    from coordination import CoordinationASGIMiddleware
    from loopback import uvicorn_in_thread

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raise RuntimeError(
            "db login failed: password=pw-s3cret, url=redis://app:pw-s3cret@cache/0, "
            'body {"api_key": "k-s3cret"}'
        )

    wrapped = CoordinationASGIMiddleware(app, debug=True, **components)
    with (
        uvicorn_in_thread(wrapped, log_level="critical") as url,
        httpx.Client(base_url=url) as http,
    ):
        assert http.get("/orders").status_code == 500
    shown = captured.text()
    assert "GET /orders raised RuntimeError: db login failed: password=[redacted]" in shown
    assert "redis://app:***@cache/0" in shown
    assert "s3cret" not in shown
