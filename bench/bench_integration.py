"""Integration overhead: the WSGI middleware and coordinate_operation beside their peers.

Run:  .venv/bin/python bench/bench_integration.py [--quick]

1. In-process WSGI: a hello-world app called the way a server calls it (fresh environ,
   iterate the body, close it), directly and through ``CoordinationMiddleware``; beside
   it the middleware a user would write with prometheus_client (a Histogram timing the
   call and a Counter of status codes). Target: ≤ 15 µs of overhead per request.
2. Under a real server: gunicorn (1 gthread worker, 4 threads) serving the bare app, the
   wrapped app and the bare app again (the noise floor: how far two identical servers
   differ on this machine), loaded in rotating back-to-back rounds by keep-alive clients
   on loopback, bounded in time and in requests. Target: wrapped capacity ≥ 95 % of bare,
   judged on the worker's CPU time per request (a saturated server's throughput is its
   inverse, and it moves less than wall-clock throughput on a shared machine); the
   throughput ratios are printed beside it.
3. ``coordinate_operation`` with retry + circuit breaker + timing around a trivial
   function, beside tenacity + pybreaker + a prometheus Histogram stacked the usual way.
   Target: ≤ 1.0 µs over a bare call.

All figures come from this one run on this (shared, noisy) machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import timeit
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def hello_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def wrapped_app_factory() -> Any:
    """The hello app behind the middleware, with the default config and components."""
    from coordination.integration import CoordinationMiddleware

    return CoordinationMiddleware(hello_app, config={})


def prometheus_middleware(app: Any) -> Any:
    """What a user would otherwise write: a Histogram and a status Counter."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    latency = Histogram("request_seconds", "latency", ["route"], registry=registry)
    statuses = Counter("responses", "status codes", ["status"], registry=registry)

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        seen: list[str] = []

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(status[:3])
            return start_response(status, headers)

        started = time.perf_counter()
        body = list(app(environ, capture))  # buffered: the simple version users write
        latency.labels("unmatched").observe(time.perf_counter() - started)
        statuses.labels(seen[0] if seen else "500").inc()
        return body

    return middleware


# --- 1. in-process WSGI ----------------------------------------------------------------

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/hello",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "SCRIPT_NAME": "",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "HTTP_ACCEPT_ENCODING": "gzip, deflate",
    "HTTP_CONNECTION": "keep-alive",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def _start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def serve_once(app: Any) -> None:
    environ = dict(ENVIRON)
    environ["wsgi.input"] = io.BytesIO(b"")
    body = app(environ, _start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def per_call_ns(func: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best and median nanoseconds per call over ``repeat`` runs of about 0.2 s each."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    runs = [t / number * 1e9 for t in timer.repeat(number=number, repeat=repeat)]
    return min(runs), statistics.median(runs)


def bench_in_process(quick: bool) -> list[tuple[str, float, float]]:
    repeat = 3 if quick else 9
    apps = {
        "bare hello-world": hello_app,
        "coordination CoordinationMiddleware": wrapped_app_factory(),
        "prometheus_client Histogram+Counter": prometheus_middleware(hello_app),
    }
    rows = []
    for name, app in apps.items():
        best, median = per_call_ns(lambda app=app: serve_once(app), repeat)
        rows.append((name, best, median))
    return rows


# --- 2. under gunicorn -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_gunicorn(target: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT / 'src'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            target,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"gunicorn did not start serving {target}")


def _load(port: int, seconds: float, max_requests: int, clients: int = 4) -> tuple[int, float]:
    """Requests done by ``clients`` keep-alive connections, and the seconds it took
    (bounded both in time and in requests)."""
    done = [0] * clients
    stop_at = time.monotonic() + seconds
    budget = max_requests // clients

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while done[index] < budget and time.monotonic() < stop_at:
                connection.request("GET", "/hello")
                response = connection.getresponse()
                if response.read() != b"hello":
                    raise RuntimeError("unexpected response")
                done[index] += 1
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done), time.monotonic() - started


class _Server:
    """A gunicorn server and the CPU time its worker has used."""

    def __init__(self, target: str) -> None:
        import psutil

        self.process, self.port = _start_gunicorn(target)
        # The master listens before it forks its worker: wait for the worker to exist.
        deadline = time.monotonic() + 30
        while not (children := psutil.Process(self.process.pid).children()):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn started no worker for {target}")
            time.sleep(0.05)
        (self.worker,) = children

    def cpu(self) -> float:
        times = self.worker.cpu_times()
        return float(times.user + times.system)

    def round(self, seconds: float, max_requests: int) -> tuple[float, float]:
        """Requests per second, and worker CPU microseconds per request, for one round."""
        cpu_before = self.cpu()
        count, elapsed = _load(self.port, seconds, max_requests)
        return count / elapsed, (self.cpu() - cpu_before) / max(count, 1) * 1e6

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def bench_server(quick: bool) -> dict[str, list[tuple[float, float]]]:
    """Rounds of each server, back to back, in rotating order.

    Each set of rounds runs within about two seconds, so the load other processes put on
    the machine hits its members alike. Beside the rate, the worker's CPU time per request
    is measured: it moves less with that load than the rate does. A second, identical
    bare server shows how far two equal servers differ here: the noise floor.
    """
    pairs, seconds, max_requests = (3, 0.4, 5_000) if quick else (16, 0.4, 10_000)
    targets = {
        "bare hello-world": "bench_integration:hello_app",
        "coordination CoordinationMiddleware": "bench_integration:wrapped_app_factory()",
        "bare again (noise floor)": "bench_integration:hello_app",
    }
    servers: dict[str, _Server] = {}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    try:
        for name, target in targets.items():
            servers[name] = _Server(target)
        for server in servers.values():
            server.round(0.3, 500)  # warm up
        names = list(servers)
        for pair in range(pairs):
            shift = pair % len(names)
            for name in names[shift:] + names[:shift]:
                results[name].append(servers[name].round(seconds, max_requests))
    finally:
        for server in servers.values():
            server.stop()
    return results


# --- 3. coordinate_operation -------------------------------------------------------------


def bench_decorators(quick: bool) -> list[tuple[str, float, float]]:
    import pybreaker
    import tenacity
    from prometheus_client import CollectorRegistry, Histogram

    from coordination import CoordinationErrorHandler, CoordinationPerformanceMonitor
    from coordination.integration import coordinate_operation

    def work(x: int) -> int:
        return x

    ours = coordinate_operation(
        error_config={"max_retries": 3},
        operation_name="bench_op",
        error_handler=CoordinationErrorHandler({}),
        performance_monitor=CoordinationPerformanceMonitor({}),
    )(work)

    histogram = Histogram("op_seconds", "latency", registry=CollectorRegistry())
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    @histogram.time()
    @tenacity.retry(stop=tenacity.stop_after_attempt(4), wait=tenacity.wait_exponential())
    @breaker
    def peers(x: int) -> int:
        return x

    repeat = 3 if quick else 9
    rows = []
    for name, func in (
        ("bare call", work),
        ("coordination coordinate_operation", ours),
        ("tenacity + pybreaker + prometheus", peers),
    ):
        best, median = per_call_ns(lambda func=func: func(1), repeat)
        rows.append((name, best, median))
    return rows


# --- report ------------------------------------------------------------------------------


def print_table(title: str, rows: list[tuple[str, float, float]], target_us: float) -> None:
    """Times and overheads over the first row; the verdict uses the best runs (noise from
    other processes only adds time), the medians are shown beside them."""
    base_best, base_median = rows[0][1], rows[0][2]
    print(f"\n{title}")
    print(f"  {'':40} {'best µs':>9} {'median µs':>10} {'overhead best/median µs':>24}")
    for name, best, median in rows:
        overhead = ""
        if name != rows[0][0]:
            overhead = f"{(best - base_best) / 1000:.2f} / {(median - base_median) / 1000:.2f}"
        print(f"  {name:40} {best / 1000:9.2f} {median / 1000:10.2f} {overhead:>24}")
    ours = rows[1][1] - base_best
    peer = rows[2][1] - base_best
    verdict = "meets" if ours / 1000 <= target_us else "MISSES"
    print(
        f"  coordination overhead {ours / 1000:.2f} µs ({verdict} the ≤ {target_us:g} µs target); "
        f"the peer stack adds {peer / 1000:.2f} µs, {peer / max(ours, 1):.1f}x as much"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a shorter, rougher run")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))

    print_table("1. WSGI hello-world, in process, per request", bench_in_process(args.quick), 15)

    results = bench_server(args.quick)
    bare, wrapped, again = results.values()

    def pair_median(rounds: list[tuple[float, float]], field: int) -> float:
        """Median over rounds of bare/other CPU (field 1) or other/bare rate (field 0)."""
        if field == 0:
            return statistics.median(o[0] / b[0] for o, b in zip(rounds, bare, strict=True))
        return statistics.median(b[1] / o[1] for o, b in zip(rounds, bare, strict=True))

    print("\n2. gunicorn (1 gthread worker, 4 threads), 4 keep-alive clients on loopback")
    print(
        f"  {'':40} {'median req/s':>13} {'CPU µs/req':>11} {'rate vs bare':>13} "
        f"{'capacity vs bare':>17}"
    )
    for name, rounds in results.items():
        rate = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[1] for r in rounds)
        print(
            f"  {name:40} {rate:13.0f} {cpu:11.1f} {pair_median(rounds, 0):13.1%} "
            f"{pair_median(rounds, 1):17.1%}"
        )
    # A saturated server's throughput is the inverse of its CPU per request (capacity);
    # both are medians of per-set ratios. Judge the wrapped row against the noise floor.
    capacity = pair_median(wrapped, 1)
    verdict = "meets" if capacity >= 0.95 else "MISSES"
    print(
        f"  wrapped capacity {capacity:.1%}: {verdict} the ≥ 95 % target; two identical bare "
        f"servers differ by {abs(1 - pair_median(again, 1)):.1%} here"
    )

    print_table(
        "3. retry + breaker + timing around a trivial function, per call",
        bench_decorators(args.quick),
        1.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
