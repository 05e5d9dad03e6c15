"""One of the processes sharing a breaker in test_processes.py (run as a script).

Calls a "dependency" that fails while the file ``<dir>/phase`` says ``down``, through the
shared Redis breaker, until ``<dir>/stop`` exists; prints its counts per phase as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from coordination import CircuitOpenError
from coordination.backends.redis import RedisBackend
from coordination.error_handling import BreakerSettings

SETTINGS = BreakerSettings(failure_threshold=5, open_seconds=0.5, half_open_calls=1)


def main(url: str, namespace: str, folder: str, worker: str) -> None:
    here = Path(folder)
    backend = RedisBackend(url, namespace=namespace)
    breaker = backend.breaker(
        "dependency", SETTINGS, clock=time.monotonic, on_transition=lambda t: None
    )
    counts: dict[str, dict[str, int]] = {}
    last: dict[str, str] = {}
    while not (here / "stop").exists():
        phase = (here / "phase").read_text().strip()
        tally = counts.setdefault(phase, {"ok": 0, "failed": 0, "rejected": 0})
        try:
            breaker.acquire()
        except CircuitOpenError:
            outcome = "rejected"
        else:
            if phase == "down":
                breaker.record_failure(0.0)
                outcome = "failed"
            else:
                breaker.record_success(0.0)
                outcome = "ok"
        tally[outcome] += 1
        last[phase] = outcome
        (here / f"ready-{worker}").touch()
        time.sleep(0.002)
    print(json.dumps({"counts": counts, "last": last}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
