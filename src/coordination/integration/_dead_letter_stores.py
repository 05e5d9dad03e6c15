"""Which dead-letter store a location names: a SQLite file (or ``":memory:"``), or a
``postgresql://`` URL for one store a fleet shares.

Every door that keeps dead letters (the event processor, Celery tasks) opens its store
here, so a location means the same everywhere. psycopg is imported only when a database
URL is given (the ``postgres`` extra).
"""

from __future__ import annotations

from ._dead_letters import DeadLetterStore, LetterStore
from ._journal_files import default_journal_path

__all__ = ["is_database_url", "open_dead_letter_store"]

_DATABASE_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(location: str) -> bool:
    """Whether ``location`` names a database (not a SQLite file)."""
    return location.lower().startswith(_DATABASE_SCHEMES)


def open_dead_letter_store(location: str | None, namespace: str = "default") -> LetterStore:
    """The store at ``location`` (None: the SQLite file in the platform's state
    directory). ``namespace`` keeps services apart in a shared (PostgreSQL) store; a
    SQLite file is one service's own, so it has none."""
    if isinstance(location, str) and is_database_url(location):
        from ._postgres_dead_letters import PostgresDeadLetterStore

        return PostgresDeadLetterStore(location, namespace)
    path = location or default_journal_path()
    return DeadLetterStore(path)
