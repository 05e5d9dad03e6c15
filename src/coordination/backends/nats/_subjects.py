"""NATS names, checked before anything is sent: subjects, stream and consumer names, and
whether a stream's subjects capture the source's subject (``*`` and ``>`` wildcards)."""

from __future__ import annotations

import re

from ..._errors import ConfigError
from ..._quote import quote

__all__ = ["check_name", "check_subject", "covers", "is_wildcard", "stream_name_for"]

_MAX_SUBJECT = 1024
_MAX_NAME = 200  # stream and consumer names are file names on the server
_NAME_FORBIDDEN = frozenset(".*>/\\")


def check_subject(subject: object) -> str:
    """``subject`` if it is a NATS subject a source can consume (wildcards whole tokens,
    ``>`` last), else a ``ConfigError`` naming what is wrong."""
    if not isinstance(subject, str) or not subject:
        raise ConfigError(
            f"subject: expected a non-empty string, got {quote(subject)}", field="subject"
        )
    if len(subject) > _MAX_SUBJECT:
        raise ConfigError(f"subject: longer than {_MAX_SUBJECT} characters", field="subject")
    if not subject.isprintable() or any(c.isspace() for c in subject):
        raise ConfigError(
            f"subject: expected printable text without spaces, got {quote(subject)}",
            field="subject",
        )
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token:
            raise ConfigError(
                f"subject: {quote(subject)} has an empty token (two dots, or a dot at an end)",
                field="subject",
            )
        if token != "*" and token != ">" and ("*" in token or ">" in token):
            raise ConfigError(
                f"subject: the wildcards '*' and '>' must be whole tokens, got {quote(subject)}",
                field="subject",
            )
        if token == ">" and index != len(tokens) - 1:
            raise ConfigError(
                f"subject: '>' may only be the last token, got {quote(subject)}", field="subject"
            )
    return subject


def check_name(field: str, name: object) -> str:
    """A stream or durable consumer name: printable, no spaces, none of ``. * > / \\``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{field}: expected a non-empty string, got {quote(name)}", field=field)
    if (
        len(name) > _MAX_NAME
        or not name.isprintable()
        or any(c.isspace() or c in _NAME_FORBIDDEN for c in name)
    ):
        raise ConfigError(
            f"{field}: expected at most {_MAX_NAME} printable characters without spaces or any "
            f"of . * > / \\, got {quote(name)}",
            field=field,
        )
    return name


def is_wildcard(subject: str) -> bool:
    return any(token in ("*", ">") for token in subject.split("."))


def covers(pattern: str, subject: str) -> bool:
    """Whether every subject ``subject`` matches is also matched by ``pattern`` (a stream's
    subject): ``orders.>`` covers ``orders.*`` and ``orders.eu.new``; ``orders.*`` does not
    cover ``orders.>``."""
    wanted = pattern.split(".")
    given = subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given):
            return False
        if token == "*":
            if given[index] == ">":
                return False
            continue
        if token != given[index]:
            return False
    return len(given) == len(wanted)


def stream_name_for(subject: str) -> str:
    """The name of the stream made for ``subject`` when none captures it and none was
    named: ``orders.created`` -> ``orders_created`` (``*`` -> ``any``, ``>`` -> ``all``)."""
    words = ["any" if t == "*" else "all" if t == ">" else t for t in subject.split(".")]
    return re.sub(r"[^A-Za-z0-9_-]", "_", "_".join(words))[:_MAX_NAME]
