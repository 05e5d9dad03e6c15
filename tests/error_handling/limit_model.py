"""A simulated dependency, on a virtual clock, that slows down past its capacity.

The model of issue 16: ``capacity`` calls at a time take ``base`` seconds; past it each
call takes ``base * (n / capacity) ** 2`` with ``n`` calls in flight when it starts
(plus a little seeded noise). ``clients`` callers loop on it through a limit: a call
beyond the limit is refused and its caller tries again ``backoff`` later, as a shed
client would. Events run in virtual time (a heap), so minutes of load take milliseconds
and every run with the same seed gives the same figures.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from coordination.error_handling._limit_algorithms import LimitAlgorithm

__all__ = ["Run", "simulate"]


@dataclass
class Run:
    """What one simulation measured after its warm-up (the first ``warmup`` seconds)."""

    seconds: float
    latencies: list[float] = field(default_factory=list)  # calls served, after warm-up
    refused: int = 0  # calls refused by the limit, after warm-up
    dropped: int = 0  # calls that timed out, after warm-up
    limits: list[tuple[float, int]] = field(default_factory=list)  # (time, limit) traced

    @property
    def goodput(self) -> float:
        """Calls served (not refused, not timed out) per second."""
        return len(self.latencies) / self.seconds

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.99) - 1)]

    def limits_between(self, start: float, end: float) -> list[int]:
        return [limit for at, limit in self.limits if start <= at < end]


def simulate(
    algorithm: LimitAlgorithm | None,
    *,
    seconds: float = 3.0,
    warmup: float = 1.0,
    clients: int = 32,
    capacity: Callable[[float], float] | float = 4.0,
    base: float = 0.005,
    noise: float = 0.1,
    backoff: float = 0.001,
    deadline: float = math.inf,
    seed: int = 1,
) -> Run:
    """``clients`` callers for ``seconds`` of virtual time through ``algorithm`` (None:
    no limit). ``capacity`` may be a function of the time (a dependency that changes);
    a call slower than ``deadline`` fails as a timeout at the deadline (a drop)."""
    capacity_at = capacity if callable(capacity) else (lambda _t, c=capacity: c)
    rng = random.Random(seed)
    run = Run(seconds=seconds - warmup)
    events: list[tuple[float, int, int, float, int]] = []  # (time, order, kind, start, n)
    order = 0
    for _ in range(clients):
        events.append((rng.uniform(0.0, backoff), order, 0, 0.0, 0))
        order += 1
    heapq.heapify(events)
    in_flight = 0
    while events:
        now, _, kind, start, n = heapq.heappop(events)
        if now >= seconds:
            break
        counted = now >= warmup
        if kind == 0:  # a caller tries
            if algorithm is None or in_flight < algorithm.limit:
                in_flight += 1
                over = max(1.0, in_flight / capacity_at(now))
                latency = base * over * over * rng.uniform(1 - noise, 1 + noise)
                heapq.heappush(events, (now + min(latency, deadline), order, 1, now, in_flight))
            else:
                run.refused += counted
                heapq.heappush(events, (now + backoff, order, 0, 0.0, 0))
        else:  # a call ends; its caller tries again at once
            in_flight -= 1
            rtt = now - start
            timed_out = rtt >= deadline
            if counted:
                if timed_out:
                    run.dropped += 1
                else:
                    run.latencies.append(rtt)
            if algorithm is not None:
                run.limits.append((now, algorithm.on_sample(start, rtt, n, timed_out)))
            heapq.heappush(events, (now, order, 0, 0.0, 0))
        order += 1
    return run
