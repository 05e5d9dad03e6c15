"""Beyond the Python peers: a retry budget, and one adaptive limit shedding LOW first.

Two things no other Python resilience library does, each against a simulated dependency:

1. ``retry_budget=0.2`` (Finagle's RetryBudget, Envoy's retry_budget): against a service
   that always fails, 500 calls with ``max_retries=3`` would send it 1 500 retries; the
   budget lets retries be at most 20 % of the calls (above a small floor), and a failure
   past it is raised at once, with a note saying the budget is spent.
2. ``adaptive_concurrency=True`` with ``concurrency_group`` (Netflix concurrency-limits):
   a database that serves 4 queries at once and slows down quadratically past that, hit
   by 16 LOW and 4 CRITICAL threads. The limit follows its latency, and while CRITICAL
   calls are about the LOW ones are shed first (``BulkheadFull``) so the CRITICAL ones
   are served.

    .venv/bin/python examples/12_beyond_the_peers.py
"""

import logging
import threading
import time
from collections import Counter

from coordination import BulkheadFull, CoordinationErrorHandler, handle_errors

# Each failed CRITICAL call is logged at ERROR (and the budget's spending once): this
# example counts them instead of printing a line per call.
logging.getLogger("coordination").addHandler(logging.NullHandler())

# --- 1. a retry budget -------------------------------------------------------------------

budgeted = CoordinationErrorHandler()


@handle_errors(
    handler=budgeted,
    operation_name="quotes.fetch",
    max_retries=3,
    base_delay=0,
    retry_budget=0.2,
    retry_budget_min_per_second=1.0,  # the floor: a quiet service can still retry
    circuit_breaker_threshold=10_000,  # keep the breaker out of this part of the story
)
def fetch_quote(symbol):
    raise ConnectionError("quote service down")


last_note = ""
for _ in range(500):
    try:
        fetch_quote("ACME")
    except ConnectionError as error:
        last_note = " ".join(getattr(error, "__notes__", [])) or last_note

quotes = budgeted.snapshot().operations["quotes.fetch"]
print(f"retry budget: {quotes.calls} calls, {quotes.retries} retries (not 1500)")
print(f"retry budget: {quotes.retry_budget_exhausted} failures raised at once, unretried")
# 20 % of the calls plus the floor (1 a second over the 10 s window)
print(f"retries within 20 % + floor: {quotes.retries <= 0.2 * quotes.calls + 10}")
print(f"the note on such a failure: {last_note}")

# --- 2. adaptive concurrency, shedding LOW before CRITICAL -------------------------------

CAPACITY, BASE_LATENCY = 4, 0.01
in_flight = 0
lock = threading.Lock()


def query_database():
    """Up to CAPACITY queries at once take BASE_LATENCY; past it, (n / CAPACITY)² more."""
    global in_flight
    with lock:
        in_flight += 1
        running = in_flight
    time.sleep(BASE_LATENCY * max(1.0, running / CAPACITY) ** 2)
    with lock:
        in_flight -= 1


limited = CoordinationErrorHandler()
shared = {
    "handler": limited,
    "adaptive_concurrency": True,
    "concurrency_group": "orders-db",
    "concurrency_algorithm": "vegas",
    "min_concurrency": 2,
    "max_concurrency": 40,
    "max_retries": 0,
}


@handle_errors(operation_name="orders.recommend", error_severity="LOW", **shared)
def recommend():
    query_database()


@handle_errors(operation_name="orders.checkout", error_severity="CRITICAL", **shared)
def checkout():
    query_database()


outcomes = Counter()
limits = []
stop = threading.Event()


def client(severity, call):
    while not stop.is_set():
        try:
            call()
            outcomes[severity, "served"] += 1
        except BulkheadFull:
            outcomes[severity, "shed"] += 1
            time.sleep(0.005)  # a shed client comes back a moment later


threads = [threading.Thread(target=client, args=("LOW", recommend)) for _ in range(16)]
threads += [threading.Thread(target=client, args=("CRITICAL", checkout)) for _ in range(4)]
for thread in threads:
    thread.start()
for _ in range(30):  # 1.5 s, the limit read every 50 ms
    time.sleep(0.05)
    limit = limited.snapshot().concurrency.get("orders-db")
    if limit is not None:
        limits.append(limit.limit)
stop.set()
for thread in threads:
    thread.join()

group = limited.snapshot().concurrency["orders-db"]
print(f"adaptive limit of orders-db: {' '.join(map(str, limits[::3]))}")
print(f"the limit moved: {min(limits) < max(limits)}")
for severity in ("LOW", "CRITICAL"):
    served, shed = outcomes[severity, "served"], outcomes[severity, "shed"]
    print(f"{severity}: {served} served, {shed} shed ({shed / (served + shed):.0%})")
low_share = outcomes["LOW", "shed"] / (outcomes["LOW", "served"] + outcomes["LOW", "shed"])
critical_total = outcomes["CRITICAL", "served"] + outcomes["CRITICAL", "shed"]
critical_share = outcomes["CRITICAL", "shed"] / critical_total
print(f"LOW shed before CRITICAL: {low_share > critical_share}")
print(f"the group counted the same: {dict(group.shed)['LOW'] == outcomes['LOW', 'shed']}")
