"""A small real shop for the browser tests: Flask under the middleware, served over HTTP.

Each of issue 16's features has an operation that exercises it: a hedged read whose
every other attempt stalls, two operations of different severities sharing one adaptive
limit (``aimd``, so it moves as load arrives), a payment that always fails behind a spent
retry budget, and an operation whose name is markup. The status page is mounted in front
of the app with a short refresh, as an application would mount it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from coordination import BulkheadFull, Coordination

HOSTILE_NAME = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">&amp;'
GROUP = "orders-db"


@dataclass
class LiveShop:
    """The served shop: its base URL, its set, its config file and the load it is under."""

    base: str
    shop: Coordination
    config_file: Path
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            error.read()
            return int(error.code)

    def start_load(self, paths: list[str], threads: int) -> None:
        """``threads`` clients, each going round ``paths`` until ``stop_load``."""

        def client(offset: int) -> None:
            for path in itertools.islice(itertools.cycle(paths), offset, None):
                if self._stop.is_set():
                    return
                self.get(path)

        for i in range(threads):
            thread = threading.Thread(target=client, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_load(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def _shop_app(shop: Coordination) -> Flask:
    stalls = itertools.count()

    @shop.handle_errors(operation_name="catalog.read", hedge_after=0.02, max_hedged_attempts=1)
    def read_catalog() -> str:
        if next(stalls) % 2:  # every other attempt stalls (not the first): a hedge answers
            time.sleep(0.3)
        return "catalog"

    orders: dict[str, Any] = {
        "adaptive_concurrency": True,
        "concurrency_group": GROUP,
        "concurrency_algorithm": "aimd",
        "min_concurrency": 1,
        "max_concurrency": 4,
    }

    @shop.handle_errors(operation_name="orders.browse", error_severity="LOW", **orders)
    def browse_orders() -> str:
        time.sleep(0.03)
        return "orders"

    @shop.handle_errors(operation_name="orders.hold", error_severity="CRITICAL", **orders)
    def hold_order() -> str:
        time.sleep(0.03)
        return "held"

    @shop.handle_errors(
        operation_name="payments.charge",
        max_retries=3,
        retry_budget=0.1,
        retry_budget_min_per_second=0,
    )
    def charge() -> str:
        raise ConnectionError("the payment provider is down")

    @shop.handle_errors(operation_name=HOSTILE_NAME)
    def hostile() -> str:
        return "text"

    app = Flask("live_shop")
    routes: dict[str, Callable[[], str]] = {
        "/catalog": read_catalog,
        "/orders/browse": browse_orders,
        "/orders/hold": hold_order,
        "/pay": charge,
        "/hostile": hostile,
    }
    for path, function in routes.items():

        def view(function: Callable[[], str] = function) -> tuple[str, int]:
            try:
                return function(), 200
            except BulkheadFull:
                return "shed", 503
            except ConnectionError:
                return "down", 502

        app.add_url_rule(path, endpoint=path, view_func=view)
    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # hundreds of requests a second: the test's output stays readable


def write_config(path: Path, *, extra: str = "") -> None:
    rules = path.parent / "rules"
    rules.mkdir(exist_ok=True)
    path.write_text(
        f"base_delay: 0\njitter: none\nmax_retries: 0\nvalidation_rules_path: {rules}\n{extra}"
    )


@contextlib.contextmanager
def serving_live_shop(folder: Path) -> Iterator[LiveShop]:
    """The shop served on a free port, each route called once (so every row and the
    group's limit exist), its status page refreshing every quarter second."""
    config_file = folder / "coordination.yaml"
    write_config(config_file)
    shop = Coordination({"circuit_breaker_threshold": 10_000})
    shop.reload_config(config_file)  # this set reads that file from now on
    page = shop.status_page(refresh_seconds=0.25, min_interval=0.2, title="live shop")
    served = shop.wsgi(_shop_app(shop))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if page.handles(environ.get("PATH_INFO") or "/"):
            return page.wsgi_app(environ, start_response)
        return served(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    live = LiveShop(f"http://127.0.0.1:{server.server_port}", shop, config_file)
    try:
        for path in ("/catalog", "/orders/browse", "/orders/hold", "/pay", "/hostile"):
            live.get(path)
        yield live
    finally:
        live.stop_load()
        server.shutdown()
        server.server_close()
        thread.join(10)
        shop.close()
