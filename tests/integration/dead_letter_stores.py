"""The two dead-letter stores side by side, for the tests every store must pass.

``store_location`` is a parametrized fixture: a SQLite file, and a PostgreSQL URL with a
namespace of the test's own (marked ``postgres``; its rows are deleted afterwards, even
when the test fails). ``open_store`` opens a store at that location; each is closed when
the test ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordination.integration._dead_letter_stores import open_dead_letter_store
from coordination.integration._dead_letters import LetterStore


@dataclass(frozen=True)
class StoreLocation:
    """Where a test's store lives: ``location`` and ``namespace`` as a processor takes
    them (``dead_letter_path``, ``dead_letter_namespace``)."""

    kind: str
    location: str
    namespace: str


def delete_namespace(url: str, namespace: str) -> None:
    """Remove every row a test wrote under ``namespace`` (the tables may not exist yet)."""
    import psycopg

    from coordination.integration._postgres_dead_letters import TABLES

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        for table in TABLES:
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                conn.execute(f"DELETE FROM {table} WHERE namespace = %s", (namespace,))


@contextlib.contextmanager
def postgres_namespace(url: str, namespace: str) -> Iterator[str]:
    try:
        yield namespace
    finally:
        delete_namespace(url, namespace)


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def store_location(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> Iterator[StoreLocation]:
    if request.param == "sqlite":
        yield StoreLocation("sqlite", str(tmp_path / "letters.sqlite3"), unique_name)
        return
    url = request.getfixturevalue("postgres_url")
    with postgres_namespace(url, unique_name):
        yield StoreLocation("postgres", url, unique_name)


@pytest.fixture
def open_store(store_location: StoreLocation) -> Iterator[Callable[[], LetterStore]]:
    """Opens a store at the test's location (each one closed when the test ends)."""
    opened: list[LetterStore] = []

    def make() -> LetterStore:
        store = open_dead_letter_store(store_location.location, store_location.namespace)
        opened.append(store)
        return store

    yield make
    while opened:
        opened.pop().close()
