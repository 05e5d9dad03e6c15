"""Event processors and broker sources in /metrics and on the status page (issue 17).

A processor's dead-letter store (SQLite here; the PostgreSQL store offers the same
``kind``, ``namespace``, ``count()``, ``pending_count()``) and the broker sources feeding
it are read when a reader asks: an exporter or a status page given no components finds
the set's processors themselves, as they find its middlewares. A store that is down or
slow never breaks a scrape or the page. Expositions are read back with prometheus_client's
parser and checked with ``promtool check metrics``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from coordination import StoreError
from coordination import _events_snapshot as events_module
from coordination.integration import Coordination, CoordinationEventProcessor, DeadLetterStore
from coordination.observability import CoordinationMetricsExporter, StatusPage
from memory_broker import FAST, MemoryBroker, MemorySource

from .exposition import samples, value

SET_CONFIG = {"max_retries": 0}


class FlakyStore(DeadLetterStore):
    """A SQLite store whose counts fail (``down``) or hang (``gate``) on request."""

    namespace = "orders"  # as a shared store's would be
    down = False
    gate: threading.Event | None = None

    def count(self, event_type: str | None = None) -> int:
        if self.gate is not None:
            self.gate.wait(10)
        if self.down:
            raise StoreError("the database is unreachable")
        return super().count(event_type)


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scrape reads the store again (the one-second sharing is tested on its own)."""
    monkeypatch.setattr(events_module, "STORE_READ_TTL", 0.0)


@pytest.fixture
def coordination() -> Iterator[Coordination]:
    return Coordination(SET_CONFIG)


@pytest.fixture
def processor(coordination: Coordination) -> Iterator[CoordinationEventProcessor]:
    made = coordination.event_processor(dead_letter_path=":memory:")

    @made.on("broken")
    def broken(event: Any, event_type: str) -> None:
        raise ValueError("the handler failed")

    yield made
    made.close()


def flaky(processor: CoordinationEventProcessor) -> FlakyStore:
    """The processor's store swapped for one that can fail (its counts are read only)."""
    processor.dead_letters.close()
    store = FlakyStore(":memory:")
    processor.dead_letters = store
    return store


def scrape(exporter: CoordinationMetricsExporter) -> str:
    """A scrape through the exporter's WSGI app, as Prometheus makes it (200 or fail)."""
    response = Client(exporter.make_wsgi_app()).get("/metrics")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def promtool_check(text: str) -> None:
    """``promtool check metrics``: the exposition is valid and follows the naming rules."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (done.stdout + done.stderr).strip() == ""  # no lint problem either


STORE = {"component": "events", "store": "sqlite", "namespace": "default"}
FLAKY = {**STORE, "namespace": "orders"}


def test_an_exporter_given_nothing_shows_the_sets_processors_and_their_stores(
    coordination: Coordination, processor: CoordinationEventProcessor
) -> None:
    exporter = coordination.metrics_exporter()
    text = scrape(exporter)
    assert value(text, "coordination_dead_letters", **STORE) == 0
    assert value(text, "coordination_dead_letters_pending", **STORE) == 0
    assert value(text, "coordination_dead_letter_store_available", **STORE) == 1
    assert value(text, "coordination_dead_letter_store_errors_total", **STORE) == 0
    for _ in range(3):
        with pytest.raises(Exception, match="the handler failed"):
            processor.process_event({"id": 1}, "broken")
    assert value(scrape(exporter), "coordination_dead_letters", **STORE) == 3
    # A processor made after the exporter shows too, as events_2; a closed one is gone.
    later = coordination.event_processor(dead_letter_path=":memory:")
    assert (
        value(scrape(exporter), "coordination_dead_letters", **{**STORE, "component": "events_2"})
        == 0
    )
    later.close()
    processor.close()
    text = scrape(exporter)
    assert "coordination_dead_letters{" not in text
    promtool_check(text)


def test_the_path_of_a_store_never_becomes_a_label(
    coordination: Coordination, tmp_path: Any
) -> None:
    path = tmp_path / "secret-place.sqlite3"
    with coordination.event_processor(dead_letter_path=str(path)):
        text = scrape(coordination.metrics_exporter())
    assert "secret-place" not in text
    assert value(text, "coordination_dead_letters", **STORE) == 0


def test_a_store_that_is_down_is_left_out_counted_and_logged_once(
    coordination: Coordination,
    processor: CoordinationEventProcessor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = flaky(processor)
    exporter = coordination.metrics_exporter()
    page = Client(coordination.status_page().wsgi_app)
    caplog.set_level(logging.WARNING, logger="coordination")
    store.down = True
    for scrapes in (1, 2, 3):
        text = scrape(exporter)
        found = samples(text)
        assert ("coordination_dead_letters", frozenset(FLAKY.items())) not in found
        assert ("coordination_dead_letters_pending", frozenset(FLAKY.items())) not in found
        assert value(text, "coordination_dead_letter_store_available", **FLAKY) == 0
        # Every read failed counts (the status page's poll below is one too).
        errors = value(text, "coordination_dead_letter_store_errors_total", **FLAKY)
        assert errors == 2 * scrapes - 1
        # The component was read: its other series are there, no export error.
        assert value(text, "coordination_export_error", component="events") == 0
        response = page.get("/coordination/status.json")
        assert response.status_code == 200
        assert page.get("/coordination").status_code == 200
    (shown,) = json.loads(response.get_data())["events"]["stores"]
    assert shown["available"] is False
    assert shown["dead_letters"] is None
    assert shown["error"] == "StoreError: the database is unreachable"
    promtool_check(text)
    logged = [r.getMessage() for r in caplog.records if "dead-letter store" in r.getMessage()]
    assert len(logged) == 1, logged
    store.down = False
    text = scrape(exporter)
    assert value(text, "coordination_dead_letters", **FLAKY) == 0
    assert value(text, "coordination_dead_letter_store_available", **FLAKY) == 1
    assert "answers again" in caplog.records[-1].getMessage()


def test_a_slow_store_holds_a_scrape_for_the_timeout_only(
    coordination: Coordination,
    processor: CoordinationEventProcessor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_module, "STORE_READ_TIMEOUT", 0.2)
    store = flaky(processor)
    store.gate = threading.Event()
    exporter = coordination.metrics_exporter()
    try:
        started = time.monotonic()
        text = scrape(exporter)
        assert time.monotonic() - started < 3.0
        assert value(text, "coordination_dead_letter_store_available", **FLAKY) == 0
        started = time.monotonic()
        page = Client(coordination.status_page().wsgi_app).get("/coordination/status.json")
        assert page.status_code == 200
        assert time.monotonic() - started < 1.0  # the count still running is not waited on
        (shown,) = json.loads(page.get_data())["events"]["stores"]
        assert shown["error"] == "no answer within 0.2 s"
    finally:
        store.gate.set()


def run_source(source: MemorySource) -> int:
    return source.run(max_idle_polls=1, handle_signals=False)


def test_broker_sources_counts_by_broker_queue_and_outcome(
    coordination: Coordination, processor: CoordinationEventProcessor
) -> None:
    memory = MemoryBroker()
    source = MemorySource(processor, memory, queue="orders.created", **FAST)
    for i in range(3):
        memory.publish({"id": i}, "created")
    memory.publish({"id": 9}, "broken")  # the handler fails: dead-lettered
    memory.put(b"{not json", {"event-type": "created"})  # poison
    body = json.dumps({"id": 7}).encode()
    memory.put(body, {"event-type": "created"}, 10)  # delivered too often
    assert run_source(source) == 6
    text = scrape(coordination.metrics_exporter())
    labels = {"component": "events", "broker": "memory", "source": "orders.created"}
    for outcome, count in (
        ("processed", 3),
        ("dead_lettered", 1),
        ("poison", 1),
        ("redelivered", 1),
    ):
        assert value(text, "coordination_broker_messages_total", **labels, outcome=outcome) == count
    assert value(text, "coordination_broker_requeued_total", **labels) == 0
    assert value(text, "coordination_broker_source_available", **labels) == 1
    # Three dead letters in the store: failed, poison, redelivered.
    assert value(text, "coordination_dead_letters", **STORE) == 3
    status = processor.get_processor_status()
    assert status["dead_letters"]["kind"] == "sqlite"
    assert status["dead_letters"]["namespace"] == "default"
    (reported,) = status["sources"]
    assert reported["source"] == "orders.created"
    assert reported["processed"] == 3
    promtool_check(text)


def test_two_sources_on_one_queue_are_one_series_and_a_dropped_one_is_forgotten(
    coordination: Coordination, processor: CoordinationEventProcessor
) -> None:
    memory = MemoryBroker()
    first, second = (
        MemorySource(processor, memory, queue="q", **FAST),
        MemorySource(processor, memory, queue="q", **FAST),
    )
    memory.publish({"id": 1}, "created")
    run_source(first)
    memory.publish({"id": 2}, "created")
    run_source(second)
    exporter = coordination.metrics_exporter()
    labels = {"component": "events", "broker": "memory", "source": "q", "outcome": "processed"}
    assert value(scrape(exporter), "coordination_broker_messages_total", **labels) == 2
    del first, second
    import gc

    gc.collect()
    assert "coordination_broker_messages_total{" not in scrape(exporter)


def test_a_broker_outage_shows_on_the_source_and_in_broker_errors_total(
    coordination: Coordination, processor: CoordinationEventProcessor
) -> None:
    memory = MemoryBroker(down=True)
    source = MemorySource(processor, memory, queue="orders", **FAST)
    polls = iter(range(4))
    source.run(stop=lambda: next(polls, None) is None, handle_signals=False)
    exporter = coordination.metrics_exporter()  # a private registry
    text = scrape(exporter)
    labels = {"component": "events", "broker": "memory", "source": "orders"}
    assert value(text, "coordination_broker_source_available", **labels) == 0
    assert value(text, "coordination_broker_reconnects_total", **labels) >= 3
    assert value(text, "coordination_broker_errors_total", broker="memory", component="source") >= 3
    (shown,) = (
        Client(coordination.status_page().wsgi_app)
        .get("/coordination/status.json")
        .json["events"]["sources"]
    )
    assert shown["available"] is False
    assert shown["broker_errors"] >= 3
    assert shown["last_error"] == "BrokerDown: the in-memory broker is down"
    promtool_check(text)
    memory.down = False
    memory.publish({"id": 1}, "created")
    run_source(source)
    assert value(scrape(exporter), "coordination_broker_source_available", **labels) == 1


def test_a_source_given_on_its_own_is_read_without_a_store(
    processor: CoordinationEventProcessor,
) -> None:
    source = MemorySource(processor, MemoryBroker(), queue="alone", **FAST)
    text = CoordinationMetricsExporter({"orders_source": source}).export_metrics()
    labels = {"component": "orders_source", "broker": "memory", "source": "alone"}
    assert value(text, "coordination_broker_source_available", **labels) == 1
    assert "coordination_dead_letters{" not in text


def test_the_middlewares_own_endpoints_show_the_sets_processors(
    coordination: Coordination, processor: CoordinationEventProcessor
) -> None:
    app = coordination.wsgi(Flask("shop").wsgi_app, config={"expose_endpoints": True})
    client = Client(app)
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "coordination_dead_letters", **STORE) == 0
    page = client.get("/coordination/status.json")
    assert page.status_code == 200
    (shown,) = page.json["events"]["stores"]
    assert shown == {
        "component": "events",
        "kind": "sqlite",
        "namespace": "default",
        "dead_letters": 0,
        "pending": 0,
        "available": True,
        "read_errors": 0,
        "error": None,
    }


def test_a_status_page_given_its_components_shows_a_processor_among_them(
    processor: CoordinationEventProcessor,
) -> None:
    source = MemorySource(processor, MemoryBroker(), queue="orders", **FAST)
    page = StatusPage({"orders": processor}, config={})
    data = page.snapshot()
    assert data["components"] == {}  # a processor has no health of its own to show
    assert [s["component"] for s in data["events"]["stores"]] == ["orders"]
    assert [(s["component"], s["source"]) for s in data["events"]["sources"]] == [
        ("orders", "orders")
    ]
    assert data["events"]["sources_total"] == 1
    del source


def test_the_events_tables_are_bounded(coordination: Coordination) -> None:
    processors = [coordination.event_processor(dead_letter_path=":memory:") for _ in range(25)]
    try:
        keep = [
            MemorySource(processors[0], MemoryBroker(), queue=f"q{i:02}", **FAST) for i in range(60)
        ]
        events = coordination.status_page().snapshot()["events"]
        assert (len(events["stores"]), events["stores_total"]) == (20, 25)
        assert (len(events["sources"]), events["sources_total"]) == (50, 60)
        del keep
    finally:
        for made in processors:
            made.close()


def test_openmetrics_output_parses_too(
    coordination: Coordination, processor: CoordinationEventProcessor
) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

    memory = MemoryBroker()
    source = MemorySource(processor, memory, queue="om", **FAST)
    memory.publish({"id": 1}, "created")
    run_source(source)
    text = coordination.metrics_exporter().export_metrics(openmetrics=True)
    names = {family.name for family in parse_om(text)}
    assert {"coordination_dead_letters", "coordination_broker_messages"} <= names
    assert {f.name for f in text_string_to_metric_families(text.replace("# EOF\n", ""))}


def test_the_opentelemetry_bridge_given_nothing_reads_the_sets_processors(
    coordination: Coordination, processor: CoordinationEventProcessor
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from coordination.observability import OpenTelemetryBridge

    reader = InMemoryMetricReader()
    OpenTelemetryBridge(coordination=coordination, meter_provider=MeterProvider([reader]))
    with pytest.raises(Exception, match="the handler failed"):
        processor.process_event({"id": 1}, "broken")
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        metric.name: [(dict(p.attributes or {}), p.value) for p in metric.data.data_points]  # type: ignore[union-attr]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    attributes = {
        "coordination.component": "events",
        "coordination.store": "sqlite",
        "coordination.namespace": "default",
    }
    assert found["coordination.dead_letters"] == [(attributes, 1)]


@pytest.mark.postgres
def test_a_shared_postgresql_store_shows_its_counts_by_namespace(
    postgres_url: str, unique_name: str
) -> None:
    """The same series and page rows for a fleet's store: kind postgresql, the service's
    namespace, never the URL."""
    coordination = Coordination({**SET_CONFIG, "dead_letter_namespace": unique_name})
    processor = coordination.event_processor(dead_letter_path=postgres_url)
    try:

        @processor.on("broken")
        def broken(event: Any, event_type: str) -> None:
            raise ValueError("the handler failed")

        for n in range(2):
            with pytest.raises(Exception, match="the handler failed"):
                processor.process_event({"n": n}, "broken")
        labels = {"component": "events", "store": "postgresql", "namespace": unique_name}
        text = scrape(coordination.metrics_exporter())
        assert value(text, "coordination_dead_letters", **labels) == 2
        assert value(text, "coordination_dead_letters_pending", **labels) == 0
        assert "127.0.0.1:5432" not in text
        page = json.dumps(StatusPage(coordination=coordination).snapshot(), default=str)
        assert unique_name in page
        assert "127.0.0.1:5432" not in page or "***" in page
    finally:
        processor.dead_letters.purge()
        processor.close()


@pytest.mark.redis
def test_a_redis_streams_source_shows_beside_the_broker_sources(
    coordination: Coordination,
    processor: CoordinationEventProcessor,
    namespace: str,
    redis_url: str,
) -> None:
    """The Streams source on real Redis is read like the broker sources: by broker and
    stream, by outcome (the processor's dead letters, the source's poison and
    over-delivered entries apart), on /metrics and the status page."""
    import redis

    from coordination.backends.redis import RedisStreamSource

    url = redis_url
    stream = f"{namespace}:orders"
    source = RedisStreamSource(processor, stream, url=url, block=0.01)
    try:
        source.ensure_group()
        for i in range(3):
            source.publish({"id": i}, "created")
        source.publish({"id": 9}, "broken")  # the handler fails: dead-lettered
        raw = redis.Redis.from_url(url)
        try:
            raw.xadd(stream, {"event_type": "created", "event": "{not json"})  # poison
        finally:
            raw.close()
        assert source.run(max_idle_polls=1, handle_signals=False) == 5
        text = scrape(coordination.metrics_exporter())
        labels = {"component": "events", "broker": "redis", "source": stream}
        for outcome, count in (("processed", 3), ("dead_lettered", 1), ("poison", 1)):
            assert (
                value(text, "coordination_broker_messages_total", **labels, outcome=outcome)
                == count
            )
        assert value(text, "coordination_broker_source_available", **labels) == 1
        promtool_check(text)
        (shown,) = (
            Client(coordination.status_page().wsgi_app)
            .get("/coordination/status.json")
            .json["events"]["sources"]
        )
        assert shown["broker"] == "redis"
        assert shown["source"] == stream
        assert (shown["processed"], shown["dead_lettered"], shown["poison"]) == (3, 1, 1)
        status = source.status()
        assert (status["processed"], status["dead_lettered"], status["poison"]) == (3, 1, 1)
    finally:
        source.close()
