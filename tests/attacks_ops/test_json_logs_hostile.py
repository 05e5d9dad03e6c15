"""The JSON formatter and the library's log filters, used by a hostile application.

Each test is a bug found by attacking issue 18's structured logs: a value of the
application's that made ``format`` raise (the record lost, a traceback on stderr) or
hang (a handler's lock held forever), or a secret that reached the line.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import coordination
from coordination import add_redaction_pattern, remove_redaction_pattern


def line_of(**extra: Any) -> dict[str, Any]:
    formatter = coordination.json_log_formatter()
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello", None, None)
    record.__dict__.update(extra)
    document: dict[str, Any] = json.loads(formatter.format(record))
    return document


class LazyProxy:
    """Django's ``SimpleLazyObject`` (``request.user``) answers ``__class__`` by
    evaluating itself; when that fails (the database is down), ``isinstance`` raises."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("database down")


class UnreadableList(list[int]):
    def __iter__(self) -> Iterator[int]:
        raise RuntimeError("cannot iterate")


class LyingStr(str):
    """A str subclass whose methods raise (``redact`` calls ``lower``, ``in``)."""

    def lower(self) -> str:
        raise RuntimeError("no")

    def __contains__(self, item: object) -> bool:
        raise RuntimeError("no")


def test_a_value_that_cannot_even_be_typed_is_written_not_raised() -> None:
    line = line_of(user=LazyProxy(), ids=UnreadableList([1]), nested={"u": [LazyProxy()]})
    assert line["user"] == "<unprintable LazyProxy>"
    assert line["ids"] == "<unprintable UnreadableList>"
    assert line["nested"] == {"u": ["<unprintable LazyProxy>"]}


def test_a_str_subclass_is_redacted_as_its_characters() -> None:
    assert line_of(query=LyingStr("password=hunter2"))["query"] == "password=[redacted]"
    assert line_of(q={LyingStr("token"): "abc"})["q"] == {"token": "[redacted]"}


def test_a_message_object_whose_str_raises_is_a_line() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str failed")

    formatter = coordination.json_log_formatter()
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, Unprintable(), None, None)
    assert json.loads(formatter.format(record))["message"] == "<unprintable Unprintable>"


@pytest.mark.timeout(20)
def test_a_list_holding_itself_many_times_is_bounded() -> None:
    # depth 10 alone allowed 10**10 items: format() never returned, holding the
    # handler's lock, and every thread logging through that handler hung behind it
    loop: list[Any] = []
    loop.extend([loop] * 10)
    wide: dict[str, Any] = {}
    wide.update({str(i): wide for i in range(10)})
    formatter = coordination.json_log_formatter()
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "x", None, None)
    record.__dict__.update(loop=loop, wide=wide, big=list(range(1_000_000)))
    text = formatter.format(record)
    assert len(text) < 200_000
    document = json.loads(text)
    assert document["big"][:3] == [0, 1, 2]
    assert document["big"][-1] == f"… {1_000_000 - 1000} more items"


def test_name_value_pairs_are_masked_like_their_text() -> None:
    # Starlette's request.headers.items(), an ASGI scope's headers: pairs, not a mapping;
    # their repr "('x-api-key', 'abc')" was masked, their JSON showed the key
    headers = [("x-api-key", "abcdef123"), ("Authorization", "Bearer abcdefgh12345")]
    raw = [(b"cookie", b"session=s3cr3t"), (b"x-auth-token", b"t0k3n"), (b"host", b"a.b")]
    line = line_of(headers=headers, raw=raw, keyed={b"password": "hunter2", b"user": "ann"})
    text = json.dumps(line)
    for secret in ("abcdef123", "abcdefgh12345", "s3cr3t", "t0k3n", "hunter2"):
        assert secret not in text
    assert line["headers"] == [["x-api-key", "[redacted]"], ["Authorization", "[redacted]"]]
    assert line["raw"][2] == ["b'host'", "b'a.b'"]
    assert line["keyed"]["b'user'"] == "ann"


def test_a_pattern_added_while_threads_log_masks_every_line_after_it() -> None:
    """The formatter remembers texts it found clean: none may outlive a new pattern.
    Threads format the same text again and again while patterns come and go; every line
    formatted after ``add_redaction_pattern`` returned must be masked."""
    formatter = coordination.json_log_formatter()
    added = threading.Event()
    stop = threading.Event()
    leaks: list[str] = []

    def log() -> None:
        record = logging.LogRecord("app", logging.INFO, __file__, 1, "member-123456", None, None)
        while not stop.is_set():
            after = added.is_set()
            line = formatter.format(record)
            if after and "123456" in line:
                leaks.append(line)

    def churn() -> None:
        while not stop.is_set():
            other = add_redaction_pattern(r"unrelated-\d{9}")
            remove_redaction_pattern(other)

    threads = [threading.Thread(target=log) for _ in range(4)]
    threads.append(threading.Thread(target=churn))
    for thread in threads:
        thread.start()
    try:
        threading.Event().wait(0.2)  # the clean text is remembered by now
        pattern = add_redaction_pattern(r"member-(?P<secret>\d{6})")
        added.set()
        threading.Event().wait(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        remove_redaction_pattern(pattern)
    assert not leaks, leaks[:3]


def test_dict_config_builds_the_formatter_with_its_options() -> None:
    # in a process of its own: dictConfig closes every handler of the process (pytest's)
    script = textwrap.dedent(
        """
        import io, json, logging, logging.config
        stream = io.StringIO()
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {
                "()": "coordination.json_log_formatter",
                "fields": {"service": "checkout", "api_token": "t0k3n"},
                "rename": {"timestamp": "@timestamp"},
            }},
            "handlers": {"out": {
                "class": "logging.StreamHandler", "formatter": "json", "stream": stream,
            }},
            "loggers": {"app": {"handlers": ["out"], "propagate": False}},
        })
        logging.getLogger("app").warning("password=hunter2", extra={"operation": "charge"})
        print(stream.getvalue(), end="")
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["service"] == "checkout"
    assert line["api_token"] == "[redacted]"
    assert "@timestamp" in line
    assert line["message"] == "password=[redacted]"
    assert line["operation"] == "charge"


def test_tuples_of_any_kind_in_a_library_records_extra_are_redacted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # was TypeError out of the logging call (the library filter rebuilt a namedtuple
    # from one iterable); also health details holding sys.version_info
    import collections
    import sys

    from coordination._logging import component_logger
    from coordination._redact import redact_mapping

    pair = collections.namedtuple("pair", "name value")
    logger = component_logger("attacks_ops")
    with caplog.at_level(logging.WARNING, logger="coordination.attacks_ops"):
        logger.warning("odd", extra={"v": pair("dsn", "password=hunter2"), "py": sys.version_info})
    (record,) = caplog.records
    assert record.__dict__["v"] == ("dsn", "password=[redacted]")
    assert record.__dict__["py"][0] == sys.version_info[0]
    assert redact_mapping({"python": sys.version_info})["python"] == tuple(sys.version_info)
