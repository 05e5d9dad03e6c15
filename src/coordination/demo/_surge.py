"""The demo's second act: a flash sale on a pricing database that slows down under load.

``PricingDatabase`` is the issue's simulated dependency: up to ``capacity`` (4) queries at
once it answers in ``base_latency``; past it every query takes ``(n / capacity)²`` times
longer, ``n`` being the queries in flight when it starts, so piling on more concurrency
buys less throughput, not more. ``SurgeDriver`` is its traffic: closed-loop clients of two
kinds, shoppers browsing prices (the LOW operation, which may be shed) and buyers checking
out (the CRITICAL one, which must be served), their numbers following the act's phases —
steady, the surge, a backup taking half of the database in the middle of it, calm again.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._sketch import LatencySketch

__all__ = [
    "CLIENT_KINDS",
    "ClientTally",
    "PricingDatabase",
    "SurgeDriver",
    "SurgePhase",
    "surge_phases",
]

_TIMEOUT = 10.0
_THINK = 0.1  # seconds each client waits between its requests, whatever the answer
_LONGEST_QUERY = 2.0  # a bound on the model, so an unlimited pile-up still ends

# Who sends what: the kind of client, its route, and the severity of the call behind it.
CLIENT_KINDS = ("LOW", "CRITICAL")


@dataclass(frozen=True, slots=True)
class SurgePhase:
    """One stretch of the act: its length and how many clients of each kind are busy."""

    name: str
    seconds: float
    low_clients: int
    critical_clients: int
    capacity: int = 4  # the database's: queries it serves at once without slowing down

    def clients(self, kind: str) -> int:
        return self.low_clients if kind == "LOW" else self.critical_clients


def surge_phases(total_seconds: float) -> list[SurgePhase]:
    """Steady (20 %), the surge (30 %), a backup in the surge (25 %), calm again (25 %).

    Steady traffic keeps the database under its capacity; in the surge five times as
    many shoppers arrive (and twice the buyers), far more than it can serve; then a
    backup takes half of it (capacity 2), so the same concurrency costs four times the
    latency, and the limit must come down.
    """
    return [
        SurgePhase("steady", total_seconds * 0.20, low_clients=6, critical_clients=2),
        SurgePhase("surge", total_seconds * 0.30, low_clients=32, critical_clients=4),
        SurgePhase("backup", total_seconds * 0.25, 32, 4, capacity=2),
        SurgePhase("calm", total_seconds * 0.25, low_clients=6, critical_clients=2),
    ]


class PricingDatabase:
    """A dependency whose latency grows with its concurrency past ``capacity``."""

    def __init__(
        self,
        *,
        capacity: int = 4,
        base_latency: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = capacity
        self.base_latency = base_latency
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        self.queries = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def latency_at(self, in_flight: int) -> float:
        """Seconds a query takes when it starts with ``in_flight`` queries running."""
        overload = max(1.0, in_flight / self.capacity)
        return min(_LONGEST_QUERY, self.base_latency * overload * overload)

    def query(self, sku: str) -> float:
        """A price for ``sku``, after the latency the current load earns."""
        with self._lock:
            self._in_flight += 1
            self.queries += 1
            running = self._in_flight
            self.peak_in_flight = max(self.peak_in_flight, running)
        try:
            self._sleep(self.latency_at(running))
        finally:
            with self._lock:
                self._in_flight -= 1
        return 1.0 + (sum(sku.encode()) % 400) / 100.0


@dataclass(slots=True)
class ClientTally:
    """What one kind of client saw: answers by status and the latency of the served ones."""

    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    served: LatencySketch = field(default_factory=LatencySketch)

    @property
    def shed(self) -> int:
        return self.by_status.get(503, 0)

    @property
    def served_count(self) -> int:
        return sum(n for code, n in self.by_status.items() if 200 <= code < 300)

    def copy(self) -> ClientTally:
        return ClientTally(
            self.sent, Counter(self.by_status), self.transport_errors, self.served.copy()
        )


def _request_for(kind: str, rng: random.Random) -> tuple[str, str, bytes | None]:
    sku = f"sku-{rng.randint(1, 500)}"
    if kind == "LOW":
        return "GET", f"/api/prices?sku={sku}", None
    return "POST", "/api/checkout", json.dumps({"sku": sku, "quantity": 1}).encode()


class SurgeDriver:
    """Closed-loop clients of each kind, as many busy as the current phase says.

    Each client sends a request, waits for the answer (a price, or a 503 when its call was
    shed), thinks for a moment and sends the next; a client the phase does not need waits.
    Everything stops after the last phase.
    """

    def __init__(
        self,
        port: int,
        phases: Sequence[SurgePhase],
        *,
        seed: int = 16,
        host: str = "127.0.0.1",
        think: float = _THINK,
    ) -> None:
        self.host = host
        self.port = port
        self.phases = tuple(phases)
        self.seed = seed
        self.think = think
        self.tallies = {kind: ClientTally() for kind in CLIENT_KINDS}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0

    @property
    def duration(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    def phase_at(self, elapsed: float) -> SurgePhase:
        """The phase running ``elapsed`` seconds after the start (the last one after it)."""
        for phase in self.phases:
            if elapsed < phase.seconds:
                return phase
            elapsed -= phase.seconds
        return self.phases[-1]

    def phase_starts(self) -> dict[str, float]:
        starts, at = {}, 0.0
        for phase in self.phases:
            starts[phase.name] = at
            at += phase.seconds
        return starts

    def current_phase(self) -> SurgePhase:
        return self.phase_at(time.monotonic() - self.started_at)

    def start(self) -> None:
        self.started_at = time.monotonic()
        for kind in CLIENT_KINDS:
            for index in range(max(phase.clients(kind) for phase in self.phases)):
                thread = threading.Thread(
                    target=self._run,
                    args=(kind, index),
                    name=f"demo-surge-{kind.lower()}-{index}",
                    daemon=True,
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

    def _run(self, kind: str, index: int) -> None:
        rng = random.Random(f"{self.seed}-{kind}-{index}")
        deadline = self.started_at + self.duration
        # Clients start spread over one think time, not all in the same instant.
        self._stop.wait(self.think * rng.random())
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            if index >= self.phase_at(now - self.started_at).clients(kind):
                self._stop.wait(min(0.05, deadline - now))
                continue
            self._send(kind, *_request_for(kind, rng))
            self._stop.wait(self.think)

    def _send(self, kind: str, method: str, path: str, body: bytes | None) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=_TIMEOUT)
        started = time.perf_counter()
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status: int | None = response.status
        except (OSError, http.client.HTTPException):
            status = None
        finally:
            connection.close()
        took = time.perf_counter() - started
        with self._lock:
            tally = self.tallies[kind]
            tally.sent += 1
            if status is None:
                tally.transport_errors += 1
                return
            tally.by_status[status] += 1
            if 200 <= status < 300:
                tally.served.add(took)

    def snapshot(self) -> dict[str, ClientTally]:
        with self._lock:
            return {kind: tally.copy() for kind, tally in self.tallies.items()}
