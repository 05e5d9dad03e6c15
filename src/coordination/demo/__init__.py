"""``coordination demo``: a Flask app, a failing dependency, and the library coping.

Run it with ``coordination demo`` (or ``make demo``); ``--serve`` keeps the app running
for the status page and a Prometheus scrape afterwards.
"""

from ._run import demo_config, run_demo

__all__ = ["demo_config", "run_demo"]
