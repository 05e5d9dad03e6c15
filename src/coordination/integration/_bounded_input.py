"""``wsgi.input`` for a body without ``Content-Length``: it raises past the body limit.

A chunked request announces no length, so neither the middleware nor the server can
refuse it up front, and an app that calls ``wsgi.input.read()`` would read without end.
The stream below never asks the server for more than one byte past the limit, and raises
``BodyTooLarge`` (answered 413 by the middleware, or by the handler it registered on a
Flask app) as soon as the body passes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._problems import BodyTooLarge

__all__ = ["BoundedInput"]


class BoundedInput:
    """A WSGI input stream that reads at most ``limit`` bytes of its body."""

    __slots__ = ("_limit", "_seen", "_stream", "overflow")

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._seen = 0
        # Set once the body passed the limit: the middleware answers 413 even when the
        # app catches the error and answers 5xx itself.
        self.overflow: BodyTooLarge | None = None

    def _room(self, size: int | None) -> int:
        # One byte more than the limit leaves tells "exactly at the limit" from "past it".
        room = self._limit - self._seen + 1
        return room if size is None or size < 0 else min(size, room)

    def _count(self, data: bytes) -> bytes:
        self._seen += len(data)
        if self._seen > self._limit:
            self.overflow = BodyTooLarge(self._seen, self._limit)
            raise self.overflow
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self._count(self._stream.read(self._room(None))):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._count(self._stream.read(self._room(size)))

    def readline(self, size: int | None = -1) -> bytes:
        return self._count(self._stream.readline(self._room(size)))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def __getattr__(self, name: str) -> Any:  # anything else a server's stream offers
        return getattr(self._stream, name)
