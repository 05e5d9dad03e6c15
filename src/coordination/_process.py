"""Facts about other processes on this machine, for state that outlives a worker."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (signal 0 probes without signalling).

    Used to tell a worker that died mid-job (its claimed dead letters or metric snapshots
    must be taken over) from one that is merely busy.
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True
