"""``Runtime``: what every plan of one handler shares, built once by the handler.

A plan needs the handler's clock and sleeps, its logger and error log, the timeout workers
of an operation and the place a failed call is recorded; it gets them here, as one frozen
object, and never looks at the handler itself (the knowledge points one way: handler →
runtime → plan → runners).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._time import AsyncSleep, Clock, Sleep

if TYPE_CHECKING:
    from ._options import Options
    from ._plan import OperationState
    from ._report import ErrorLog
    from ._severity import ErrorSeverity
    from ._workers import AttemptPool

__all__ = ["FinalErrorRecorder", "Runtime"]

# (operation, error, severity, attempts, log level, critical): keep, log and alert.
FinalErrorRecorder = Callable[
    ["OperationState", BaseException, "ErrorSeverity", int, int, bool], None
]


@dataclass(frozen=True, slots=True)
class Runtime:
    """The handler's services, as a plan uses them.

    ``attempt_pool_for(op, options)`` gives the operation's own timeout workers (made on
    its first timed sync attempt); ``record_final_error`` keeps, logs and alerts on a
    failed call (failure paths only).
    """

    clock: Clock
    sleep: Sleep
    async_sleep: AsyncSleep
    logger: logging.Logger
    error_log: ErrorLog
    attempt_pool_for: Callable[[OperationState, Options], AttemptPool]
    record_final_error: FinalErrorRecorder
