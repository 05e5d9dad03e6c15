"""Bounded load for the demo: a few client threads posting to the app on loopback.

The mix is mostly valid orders, some invalid ones (for validation to reject) and some
calls to the plain ``/api/users`` route. Each thread keeps its own pace so the total rate
stays near ``rate`` requests per second, and everything stops at ``duration`` seconds.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["LoadDriver", "LoadTotals"]

_TIMEOUT = 10.0


@dataclass(slots=True)
class LoadTotals:
    """What the clients saw: responses by status code and transport failures."""

    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0


def _request_for(rng: random.Random, number: int) -> tuple[str, dict[str, object]]:
    """The path and JSON body of request ``number``: about 10 % invalid on purpose."""
    roll = rng.random()
    if roll < 0.10:
        return "/api/users", {"name": f"user{number}", "email": f"user{number}@example.com"}
    if roll < 0.20:
        bad: dict[str, object] = rng.choice(
            [
                {"item": "apple"},  # no quantity
                {"item": "apple", "quantity": -2},  # below the minimum
                {"item": "", "quantity": 1},  # empty item
                {"item": "apple", "quantity": "lots"},  # wrong type
            ]
        )
        return "/api/orders", bad
    item = rng.choice(["apple", "pear", "plum", "fig"])
    return "/api/orders", {"item": item, "quantity": rng.randint(1, 5)}


class LoadDriver:
    """``workers`` threads sending about ``rate`` requests per second for ``duration`` s.

    With several ``ports`` (one server process each) the requests take turns among them.
    """

    def __init__(
        self,
        ports: int | Sequence[int],
        *,
        duration: float,
        rate: float = 80.0,
        workers: int = 4,
        seed: int = 9,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.ports = (ports,) if isinstance(ports, int) else tuple(ports)
        self.duration = duration
        self.rate = rate
        self.workers = workers
        self.seed = seed
        self.totals = LoadTotals()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._run, args=(index,), name=f"demo-load-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=_TIMEOUT + 1)

    @property
    def done(self) -> bool:
        return all(not thread.is_alive() for thread in self._threads)

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        interval = self.workers / self.rate
        deadline = self.started_at + self.duration
        next_at = self.started_at + interval * index / self.workers
        number = index
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            if next_at > now:
                self._stop.wait(min(next_at - now, deadline - now))
                continue
            next_at = max(next_at + interval, now - interval)  # never burst to catch up
            path, body = _request_for(rng, number)
            port = self.ports[number % len(self.ports)]
            number += self.workers
            self._send(port, path, body)

    def _send(self, port: int, path: str, body: dict[str, object]) -> None:
        connection = http.client.HTTPConnection(self.host, port, timeout=_TIMEOUT)
        try:
            payload = json.dumps(body).encode()
            connection.request(
                "POST", path, body=payload, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            status: int | None = response.status
        except (OSError, http.client.HTTPException):
            status = None
        finally:
            connection.close()
        with self._lock:
            self.totals.sent += 1
            if status is None:
                self.totals.transport_errors += 1
            else:
                self.totals.by_status[status] += 1

    def snapshot(self) -> LoadTotals:
        with self._lock:
            return LoadTotals(
                self.totals.sent, Counter(self.totals.by_status), self.totals.transport_errors
            )
