"""Per-component loggers. The library never configures the root logger."""

from __future__ import annotations

import logging


def component_logger(component: str, *, debug: bool = False) -> logging.Logger:
    """The logger ``coordination.<component>``; ``debug=True`` sets it to DEBUG.

    Handlers stay the application's business: without any, Python's last-resort handler
    shows warnings and errors only, so debug output appears once the application
    configures logging (as the spec's debug-mode example does).
    """
    logger = logging.getLogger(f"coordination.{component}")
    if debug:
        logger.setLevel(logging.DEBUG)
    return logger
