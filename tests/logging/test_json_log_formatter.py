"""``coordination.json_log_formatter()``: one JSON object per line, every field redacted.

The formatter is attacked as a handler of the application's sees it: records of any
logger (not only the library's, which its filter has masked already), extra values of
any shape (nested, cyclic, hostile ``__str__``, NaN, huge ints, lone surrogates), and
secrets planted in every form the redaction policy promises to mask.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import math
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coordination
from coordination._logging import JsonLogFormatter
from secret_forms import Planted, any_planted, leaked, planted_in_text


class Shown:
    """A logger of the application's (not one of the library's: no filter of ours on
    it) whose records go through the JSON formatter into a buffer."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)
        self.logger = logging.getLogger(f"app.tests.json.{id(self)}")
        self.logger.handlers = [self.handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        text = self.text()
        assert text.endswith("\n")
        parsed = [json.loads(line) for line in text.splitlines()]
        assert all(isinstance(one, dict) for one in parsed)
        return parsed

    def one(self) -> dict[str, Any]:
        (line,) = self.lines()
        return line

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()


@pytest.fixture
def shown() -> Iterator[Shown]:
    made = Shown(coordination.json_log_formatter())
    yield made
    made.logger.handlers = []


def test_a_line_has_the_standard_fields(shown: Shown) -> None:
    before = datetime.now(UTC)
    shown.logger.warning("charged %s for %d EUR", "alice", 12)
    line = shown.one()
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]
    assert line["level"] == "WARNING"
    assert line["logger"] == shown.logger.name
    assert line["message"] == "charged alice for 12 EUR"
    assert line["timestamp"].endswith("Z")
    moment = datetime.fromisoformat(line["timestamp"])
    assert moment.tzinfo is not None
    assert moment.utcoffset() == UTC.utcoffset(None)
    assert before.replace(microsecond=0) <= moment <= datetime.now(UTC)
    assert "exception" not in line
    assert "stack" not in line


def test_the_timestamp_is_the_records_own_time_in_utc() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.created = 1_700_000_000.123456  # 2023-11-14T22:13:20.123456Z
    line = json.loads(coordination.json_log_formatter().format(record))
    assert line["timestamp"] == "2023-11-14T22:13:20.123456Z"
    record.created = 1e30  # a record made by hand, past what datetime holds
    line = json.loads(coordination.json_log_formatter().format(record))
    assert line["timestamp"] == "1e+30"


def test_every_extra_field_is_written_as_json(shown: Shown) -> None:
    class Colour(Enum):
        RED = "red"

    shown.logger.info(
        "paid",
        extra={
            "operation": "charge",
            "attempt": 3,
            "ratio": 0.5,
            "ok": True,
            "nothing": None,
            "tags": ("a", "b"),
            "ids": {1, 2},
            "nested": {"a": [1, {"b": 2}], 3: "three"},
            "colour": Colour.RED,
            "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "raw": b"\x00bytes",
            "error": ValueError("bad input"),
        },
    )
    line = shown.one()
    assert line["operation"] == "charge"
    assert line["attempt"] == 3
    assert line["ratio"] == 0.5
    assert line["ok"] is True
    assert line["nothing"] is None
    assert line["tags"] == ["a", "b"]
    assert sorted(line["ids"]) == [1, 2]
    assert line["nested"] == {"a": [1, {"b": 2}], "3": "three"}
    assert line["colour"] == "red"
    assert line["when"] == "2026-01-02T03:04:05+00:00"
    assert line["raw"] == repr(b"\x00bytes")
    assert line["error"] == "ValueError: bad input"


def test_the_exception_and_the_stack_come_last(shown: Shown) -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        shown.logger.exception("lookup failed", extra={"operation": "lookup"}, stack_info=True)
    line = shown.one()
    assert list(line)[-2:] == ["exception", "stack"]
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("KeyError: 'missing'")
    assert "test_the_exception_and_the_stack_come_last" in line["stack"]


def test_a_field_named_like_a_standard_key_keeps_the_standard_one(shown: Shown) -> None:
    shown.logger.error(
        "boom",
        exc_info=RuntimeError("x"),
        extra={"level": "mine", "logger": "mine", "exception": "mine", "extra_level": 2},
    )
    line = shown.one()
    assert line["level"] == "ERROR"
    assert line["logger"] == shown.logger.name
    assert line["exception"].endswith("RuntimeError: x")
    # the extra's "level" took "extra_level", so the extra named so moved on once more
    assert line["extra_level"] == "mine"
    assert line["extra_extra_level"] == 2
    assert line["extra_logger"] == "mine"
    assert line["extra_exception"] == "mine"


def test_static_fields_and_renamed_keys() -> None:
    formatter = coordination.json_log_formatter(
        fields={"service": "checkout", "api_key": "k-123456789"},
        rename={"timestamp": "@timestamp", "message": "msg"},
    )
    made = Shown(formatter)
    made.logger.info("hello", extra={"service": "from-extra"})
    line = made.one()
    assert list(line)[:4] == ["@timestamp", "level", "logger", "msg"]
    assert line["msg"] == "hello"
    assert line["service"] == "checkout"
    assert line["extra_service"] == "from-extra"
    assert line["api_key"] == "[redacted]"
    assert "k-123456789" not in made.text()


def test_ensure_ascii_escapes_non_ascii_text() -> None:
    made = Shown(coordination.json_log_formatter(ensure_ascii=True))
    made.logger.info("café", extra={"city": "Zürich"})
    assert made.text().isascii()
    assert made.one()["city"] == "Zürich"
    plain = Shown(coordination.json_log_formatter())
    plain.logger.info("café")
    assert "café" in plain.text()


@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        ({"fields": ["service"]}, TypeError, "fields must be a mapping"),
        ({"fields": {1: "x"}}, TypeError, "fields: a name must be a non-empty string"),
        ({"fields": {"": "x"}}, TypeError, "non-empty string"),
        ({"rename": "timestamp"}, TypeError, "rename must be a mapping"),
        ({"rename": {"time": "t"}}, ValueError, "'time' is not a key of the line"),
        ({"rename": {"level": ""}}, TypeError, r"rename\['level'\] must be a non-empty"),
        ({"rename": {"level": 3}}, TypeError, "must be a non-empty string, got 3"),
        ({"rename": {"level": "logger"}}, ValueError, "two keys of the line one name"),
        ({"ensure_ascii": "yes"}, TypeError, "ensure_ascii must be True or False"),
        ({"trace_ids": 1}, TypeError, "trace_ids must be True or False"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(
    options: dict[str, Any], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        coordination.json_log_formatter(**options)


def test_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="sort_keys"):
        coordination.json_log_formatter(sort_keys=True)  # type: ignore[call-arg]


def test_dict_config_makes_it_with_options() -> None:
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {"()": "coordination.json_log_formatter", "fields": {"service": "api"}}
            },
            "handlers": {
                "out": {"class": "logging.StreamHandler", "formatter": "json", "stream": stream}
            },
            "loggers": {"app.dictconfig": {"handlers": ["out"], "level": "INFO"}},
        }
    )
    logger = logging.getLogger("app.dictconfig")
    try:
        logger.info("configured", extra={"operation": "x"})
        line = json.loads(stream.getvalue())
        assert line["service"] == "api"
        assert line["operation"] == "x"
        assert isinstance(logger.handlers[0].formatter, JsonLogFormatter)
    finally:
        logger.handlers = []


# --- redaction --------------------------------------------------------------------------


def test_secrets_are_masked_in_the_message_extra_nested_and_exception(shown: Shown) -> None:
    try:
        raise ConnectionError("cannot reach redis://app:pw-s3cret-1@cache:6379/0")
    except ConnectionError:
        shown.logger.exception(
            "login with password=hunter2-xyz failed",
            extra={
                "token": "tk-abcdef123456",
                "request": {"headers": {"Authorization": "Bearer abc.def.ghi-123456"}},
                "attempts": [{"dsn": "postgres://u:pgpass-9876@db/x"}, "api_key=ak-1234567890"],
                "password_hint": "whatever",
            },
        )
    text = shown.text()
    for secret in (
        "pw-s3cret-1",
        "hunter2-xyz",
        "tk-abcdef123456",
        "abc.def.ghi-123456",
        "pgpass-9876",
        "ak-1234567890",
        "whatever",
    ):
        assert secret not in text, secret
    line = shown.one()
    assert line["token"] == "[redacted]"
    assert line["request"] == {"headers": {"Authorization": "[redacted]"}}
    assert line["attempts"][0]["dsn"] == "postgres://u:***@db/x"
    assert "redis://app:***@cache:6379/0" in line["exception"]


def test_a_record_whose_arguments_do_not_fit_is_shown_masked(shown: Shown) -> None:
    shown.logger.warning("%d items, token=%s", "x", "tk-1234")
    line = shown.one()
    assert "tk-1234" not in shown.text()
    assert "[redacted]" in line["message"]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(["message", "argument", "extra", "nested", "key", "exception"]),
    planted=planted_in_text(any_planted),
)
def test_a_planted_secret_never_reaches_the_line(
    shown: Shown, where: str, planted: Planted
) -> None:
    shown.clear()
    text = planted.text
    if where == "message":
        shown.logger.warning(text.replace("%", "%%"))
    elif where == "argument":
        shown.logger.warning("seen: %s", text)
    elif where == "extra":
        shown.logger.warning("seen", extra={"detail": text})
    elif where == "nested":
        shown.logger.warning("seen", extra={"detail": {"list": [1, ("t", text)], "n": {"x": text}}})
    elif where == "key":
        shown.logger.warning("seen", extra={"detail": {text: 1}})
    else:
        try:
            raise RuntimeError(text)
        except RuntimeError:
            shown.logger.exception("failed")
    line = shown.text()
    assert line.count("\n") == 1
    json.loads(line)
    assert not leaked(planted, line)


# --- any value, any message: one line of valid JSON, never an error ------------------------


class Hostile:
    """An object whose every text conversion raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BrokenMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 1


def _cyclic() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    loop["list"] = [loop]
    return loop


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: JSON has neither
    st.text(),  # lone surrogates too
    st.binary(max_size=64),
    st.builds(Hostile),
    st.builds(BrokenMapping),
    st.builds(_cyclic),
    st.builds(object),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(
            st.one_of(st.text(max_size=10), st.integers(), st.none()), inner, max_size=4
        ),
    ),
    max_leaves=20,
)
extra_names = st.text(min_size=1, max_size=12).filter(
    lambda name: (
        name not in vars(logging.LogRecord("", 0, "", 0, "", None, None))
        and name not in ("message", "asctime")
    )
)


@settings(max_examples=300, deadline=None)
@given(
    message=st.text(),
    extra=st.dictionaries(extra_names, values, max_size=5),
    ensure_ascii=st.booleans(),
)
def test_any_record_is_one_line_of_valid_utf8_json(
    message: str, extra: dict[str, Any], ensure_ascii: bool
) -> None:
    formatter = coordination.json_log_formatter(ensure_ascii=ensure_ascii)
    logger = logging.getLogger("app.tests.json.any")
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, message, (), None, extra=extra
    )
    line = formatter.format(record)
    assert "\n" not in line
    assert "\r" not in line
    line.encode("utf-8")  # a handler writing UTF-8 never fails on it
    if ensure_ascii:
        assert line.isascii()
    document = json.loads(line)
    assert isinstance(document, dict)
    assert document["level"] == "INFO"
    for key in extra:
        assert key in document or f"extra_{key}" in document
    for value in document.values():
        assert not (isinstance(value, float) and not math.isfinite(value))


def test_cyclic_hostile_and_huge_values_are_written_not_raised(shown: Shown) -> None:
    shown.logger.info(
        "odd values",
        extra={
            "loop": _cyclic(),
            "hostile": Hostile(),
            "broken": BrokenMapping(),
            "huge": 10**5000,
            "nan": float("nan"),
            "surrogate": "\udc80",
        },
    )
    line = shown.one()
    assert line["loop"]["name"] == "loop"
    assert line["hostile"] == "<unprintable Hostile>"
    assert "BrokenMapping object" in line["broken"]  # its repr: its items cannot be read
    assert line["huge"] == f"<int of {(10**5000).bit_length()} bits>"
    assert line["nan"] == "nan"
    assert line["surrogate"] == "\udc80"  # written as the escape \\udc80, read back as is
    assert "\\udc80" in shown.text()


def test_deep_nesting_is_cut_short(shown: Shown) -> None:
    deep: Any = "bottom"
    for _ in range(sys.getrecursionlimit() + 100):
        deep = [deep]
    shown.logger.info("deep", extra={"deep": deep})
    line = shown.one()
    depth = 0
    value = line["deep"]
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    assert depth == 10
    assert isinstance(value, str)


# --- what is remembered between lines --------------------------------------------------


def test_a_pattern_added_later_masks_a_text_seen_before(shown: Shown) -> None:
    from coordination._logging import component_logger

    library = component_logger("tests.remembered")
    library.addHandler(shown.handler)
    try:
        for logger in (shown.logger, library):
            logger.warning("member-123456 paid", extra={"who": "member-654321"})
        assert shown.text().count("123456") == 2  # nothing to mask yet: remembered
        pattern = coordination.add_redaction_pattern(r"member-(?P<secret>\d{6})")
        try:
            shown.clear()
            for logger in (shown.logger, library):
                logger.warning("member-123456 paid", extra={"who": "member-654321"})
            assert shown.text().count("member-[redacted]") == 4
            assert "123456" not in shown.text()
            assert "654321" not in shown.text()
        finally:
            coordination.remove_redaction_pattern(pattern)
        shown.clear()
        shown.logger.info("member-123456 paid")
        assert "member-123456" in shown.text()  # the pattern gone, the text is shown again
    finally:
        library.removeHandler(shown.handler)


def test_lines_of_one_second_and_the_next_have_their_own_times() -> None:
    formatter = coordination.json_log_formatter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    shown = []
    for created in (1_700_000_000.5, 1_700_000_000.999999, 1_700_000_001.000001, 86_399.9999999):
        record.created = created
        shown.append(json.loads(formatter.format(record))["timestamp"])
    assert shown == [
        "2023-11-14T22:13:20.500000Z",
        "2023-11-14T22:13:20.999999Z",
        "2023-11-14T22:13:21.000001Z",
        "1970-01-02T00:00:00.000000Z",  # rounded up into the next second
    ]


@given(created=st.floats(min_value=-1e10, max_value=1e11, allow_nan=False))
def test_any_time_is_written_as_datetime_would_to_the_microsecond(created: float) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.created = created
    shown = json.loads(coordination.json_log_formatter().format(record))["timestamp"]
    assert shown.endswith("Z")
    written = datetime.fromisoformat(shown)
    expected = datetime.fromtimestamp(created, UTC)
    assert abs((written - expected).total_seconds()) <= 1e-6
