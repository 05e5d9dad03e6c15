"""The files around the dead-letter journal: where it lives, who may read it, who owns what.

* **Where.** By default the journal lives in the platform's state directory
  (``platformdirs.user_state_path("coordination")``: ``~/.local/state/coordination`` on
  Linux), never the current directory, which may be a source tree, a container's ``/`` or a
  web root.
* **Who may read it.** The journal holds whole payloads, so its file is created ``0600``
  whatever the umask, and a directory made for it ``0700``. SQLite creates the ``-wal`` and
  ``-shm`` files with the database file's own permissions, so they are ``0600`` as well.
* **Who owns an in-flight event.** Each store that opens the file is a *run* with a random
  id (not a pid: pids are reused, and two containers sharing the file both run as pid 1).
  The run holds an exclusive ``flock`` on ``<journal>-owners/<run id>.lock`` while it is
  open. The operating system releases that lock when the process dies, however it dies, and
  a lock is the same lock in every PID namespace that sees the file. So "the run that
  journaled this event has ended" is exactly "its lock can be taken": no clock, no
  heartbeat thread, no guess.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

from .._errors import StoreError
from .._process import pid_alive

__all__ = ["DeadOwner", "RunLease", "create_private_file", "default_journal_path"]

APP_NAME = "coordination"
JOURNAL_NAME = "dead-letters.sqlite3"
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700


def default_journal_path() -> Path:
    """``<platform state dir>/coordination/dead-letters.sqlite3``; the folder is made 0700."""
    import platformdirs

    folder = platformdirs.user_state_path(APP_NAME)
    try:
        make_private_dir(folder)
    except StoreError as exc:  # a read-only home, a container without one
        raise StoreError(
            f"{exc}; set dead_letter_path (COORDINATION_DEAD_LETTER_PATH) to a writable "
            'file, or ":memory:" to keep dead letters in memory only'
        ) from exc
    return folder / JOURNAL_NAME


def make_private_dir(folder: Path) -> None:
    """Create ``folder`` (and its parents) unless it exists; a folder made here is 0700."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, mode=_PRIVATE_DIR)
    except FileExistsError:  # made by another process in between
        return
    except OSError as exc:
        raise StoreError(f"cannot create the folder {str(folder)!r}: {exc}") from exc
    os.chmod(folder, _PRIVATE_DIR)  # mkdir's mode is filtered by the umask


def create_private_file(path: str) -> None:
    """Create ``path`` empty and 0600 (whatever the umask) unless it exists.

    An empty file is a valid, empty SQLite database; SQLite then gives its ``-wal`` and
    ``-shm`` files the same permissions.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the dead-letter store at {path!r}: {exc}") from exc
    try:
        os.fchmod(fd, _PRIVATE_FILE)
    finally:
        os.close(fd)


class DeadOwner:
    """A run found ended, held (its lock taken) while its journal entries are moved."""

    __slots__ = ("_fd", "_lock_path", "owner")

    def __init__(self, owner: object, lock_path: str | None, fd: int | None) -> None:
        self.owner = owner
        self._lock_path = lock_path
        self._fd = fd

    def release(self) -> None:
        """Remove the ended run's lock file (its entries are moved by now)."""
        if self._lock_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._lock_path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RunLease:
    """This run's claim on a journal file: a random id and the lock that proves it is alive.

    >>> lease = RunLease("/tmp/doctest-journal.sqlite3")
    >>> lease.claim_if_ended(lease.id) is None   # alive: its own lock is held
    True
    >>> lease.release()
    """

    __slots__ = ("_fd", "_lock_path", "folder", "id")

    def __init__(self, journal_path: str) -> None:
        self.id = f"run-{secrets.token_hex(8)}"
        self.folder = f"{journal_path}-owners"
        make_private_dir(Path(self.folder))
        self._lock_path = self._path_of(self.id)
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE)
        except OSError as exc:
            raise StoreError(f"cannot create the run lock {self._lock_path!r}: {exc}") from exc
        try:
            os.fchmod(fd, _PRIVATE_FILE)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock the run lock {self._lock_path!r}: {exc}") from exc
        self._fd: int | None = fd

    def _path_of(self, owner: str) -> str:
        return os.path.join(self.folder, f"{owner}.lock")

    def claim_if_ended(self, owner: object) -> DeadOwner | None:
        """``owner``'s run, held, when it has ended; ``None`` while it is alive.

        ``owner`` is a run id, or a pid written by a version before run ids (judged by
        ``pid_alive``, the best that can be done for those).
        """
        if isinstance(owner, int):
            return None if pid_alive(owner) else DeadOwner(owner, None, None)
        if not isinstance(owner, str) or not owner.startswith("run-") or "/" in owner:
            return DeadOwner(owner, None, None)  # not written by this code: no owner lives
        lock_path = self._path_of(owner)
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            return DeadOwner(owner, None, None)  # it closed, or was recovered already
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        return DeadOwner(owner, lock_path, fd)

    def abandon(self) -> None:
        """Drop this process's handle without ending the run (a forked child does this:
        the lock and its file stay the parent's)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        """End this run: its lock file goes, then the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._lock_path)
        os.close(self._fd)
        self._fd = None
