"""Starting over with the process-wide components, for test suites."""

from __future__ import annotations

import sys

from .._defaults import reset_process_defaults
from ..error_handling import CoordinationErrorHandler, set_on_retry_hooks
from ..performance import CoordinationPerformanceMonitor

__all__ = ["reset_default_coordination"]


def reset_default_coordination() -> None:
    """Forget the process's set (``default_coordination()``), its configuration and the
    process-wide ``on_retry`` hooks (``set_on_retry_hooks``).

    The next door, decorator or reader that needs them makes new ones, reading the
    configuration file and the environment again. The old handler and monitor are closed.
    Functions decorated earlier keep the components they were decorated with, so reset
    before importing or building what a test uses; a pytest fixture::

        @pytest.fixture(autouse=True)
        def fresh_coordination():
            reset_default_coordination()
            yield
            reset_default_coordination()
    """
    set_on_retry_hooks(None)  # one test's hooks must not see the next test's retries
    # a set exists only once its module is loaded: not imported for a reset otherwise
    sets = sys.modules.get("coordination.integration._coordination")
    for old in reset_process_defaults():
        if isinstance(old, CoordinationErrorHandler):
            old.close()
        elif isinstance(old, CoordinationPerformanceMonitor):
            old.stop_monitoring()
        elif sets is not None and isinstance(old, sets.Coordination):  # watcher, SIGHUP
            old.close()
