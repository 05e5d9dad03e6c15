"""Issue 16's series on a real Prometheus scrape: retry budget, hedging, adaptive limits,
reloads, from a real set's components, over HTTP, read back with prometheus_client's
parsers (the text format and OpenMetrics)."""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import start_http_server
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from coordination import BulkheadFull, ConfigError, Coordination

from .exposition import samples

pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Coordination]:
    rules = tmp_path / "rules"
    rules.mkdir()
    config = tmp_path / "coordination.yaml"
    config.write_text(f"base_delay: 0\njitter: none\nvalidation_rules_path: {rules}\n")
    shop = Coordination({"circuit_breaker_threshold": 10_000})
    shop.reload_config(config)
    config.write_text("max_retries: [not, a, number]\n")  # the next reload is refused
    try:
        yield shop
    finally:
        shop.close()


def _exercise(shop: Coordination) -> None:
    @shop.handle_errors(
        operation_name="payments.charge",
        max_retries=3,
        retry_budget=0.1,
        retry_budget_min_per_second=0,
    )
    def charge() -> None:
        raise ConnectionError("down")

    for _ in range(10):
        with pytest.raises(ConnectionError):
            charge()

    attempts = itertools.count()

    @shop.handle_errors(operation_name="catalog.read", hedge_after=0.01, max_retries=0)
    def read() -> str:
        if next(attempts) % 2 == 0:  # each call's first attempt stalls: its hedge wins
            time.sleep(0.2)
        return "catalog"

    for _ in range(3):
        assert read() == "catalog"

    entered, release = threading.Event(), threading.Event()
    group = {
        "adaptive_concurrency": True,
        "concurrency_group": "orders-db",
        "max_concurrency": 1,
        "max_retries": 0,
    }

    @shop.handle_errors(operation_name="orders.hold", error_severity="CRITICAL", **group)
    def hold() -> None:
        entered.set()
        release.wait(5)

    @shop.handle_errors(operation_name="orders.browse", error_severity="LOW", **group)
    def browse() -> None:
        pass

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(5)
        for _ in range(2):
            with pytest.raises(BulkheadFull):
                browse()
    finally:
        release.set()
        holder.join(5)

    with pytest.raises(ConfigError, match="max_retries"):
        shop.reload_config()


def test_the_new_series_are_on_a_real_scrape(shop: Coordination) -> None:
    _exercise(shop)
    exporter = shop.metrics_exporter()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=exporter.registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(request, timeout=5) as response:
            openmetrics = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

    scraped = samples(text)

    def one(name: str, **labels: str) -> float:
        found = [
            v
            for (n, got), v in scraped.items()
            if n == name and all((k, w) in got for k, w in labels.items())
        ]
        assert len(found) == 1, f"{name} {labels}: {found} in\n{text}"
        return found[0]

    # 10 calls, 10 % of them over the window and no floor: one retry, the rest held.
    assert one("coordination_retry_budget_exhausted_total", operation="payments.charge") >= 8
    assert one("coordination_retries_total", operation="payments.charge") <= 2
    hedged = one("coordination_hedged_attempts_total", operation="catalog.read")
    wins = one("coordination_hedge_wins_total", operation="catalog.read")
    assert hedged >= wins == 3
    assert one("coordination_concurrency_limit", group="orders-db") == 1
    assert one("coordination_concurrency_shed_total", group="orders-db", severity="LOW") == 2
    assert one("coordination_config_reloads_total") == 1
    assert one("coordination_config_reload_errors_total") == 1

    families = {f.name: f for f in parse_openmetrics(openmetrics)}
    for name in (
        "coordination_retry_budget_exhausted",
        "coordination_hedged_attempts",
        "coordination_hedge_wins",
        "coordination_concurrency_shed",
        "coordination_config_reloads",
        "coordination_config_reload_errors",
    ):
        assert families[name].type == "counter", name
    assert families["coordination_concurrency_limit"].type == "gauge"
