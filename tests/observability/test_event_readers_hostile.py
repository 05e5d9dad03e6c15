"""Hostile queue, namespace and event names in the Events series and on the status page.

Queue and subject names come from the users' configuration, event types from the
messages: in a label they must come back exactly through Prometheus' own parser (quotes,
backslashes, newlines escaped; what cannot be UTF-8 replaced, never a failed scrape), and
on the page they must be text, never markup.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from coordination._events_snapshot import shown_name
from coordination.integration import CoordinationEventProcessor
from coordination.observability import CoordinationMetricsExporter, StatusPage
from memory_broker import FAST, MemoryBroker, MemorySource

MARKUP = st.sampled_from(
    [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "\\",
        '"',
        "\n",
        "\r\n",
        "} 1\nfake_total 2",
        "# TYPE x counter",
        "\x00",
        "\ud800",
        "\u2028",
    ]
)
HOSTILE = st.lists(st.one_of(MARKUP, st.text(max_size=20)), min_size=1, max_size=4).map("".join)


def _source_labels(text: str) -> set[str]:
    return {
        sample.labels["source"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.startswith("coordination_broker") and "source" in sample.labels
    }


@settings(max_examples=60, deadline=None)
@given(queue=HOSTILE.filter(bool), event_type=HOSTILE.filter(str.isprintable))
def test_hostile_names_come_back_through_the_parser_and_the_json(
    queue: str, event_type: str
) -> None:
    processor = CoordinationEventProcessor(dead_letter_path=":memory:", config={"max_retries": 0})
    try:
        memory = MemoryBroker()
        source = MemorySource(processor, memory, queue=queue, **FAST)
        if event_type:
            memory.publish({"id": 1}, event_type)
        memory.put(b"\xff not json", {"event-type": event_type or "x"})
        source.run(max_idle_polls=1, handle_signals=False)
        exporter = CoordinationMetricsExporter({"events": processor})
        response = Client(exporter.make_wsgi_app()).get("/metrics")
        assert response.status_code == 200
        text = response.get_data().decode("utf-8")
        assert _source_labels(text) == {shown_name(queue)}
        page = Client(StatusPage({"events": processor}, config={}).wsgi_app)
        answer = page.get("/coordination/status.json")
        assert answer.status_code == 200
        answer.get_data().decode("ascii")  # everything beyond ASCII is escaped
        (shown,) = json.loads(answer.get_data())["events"]["sources"]
        assert shown["source"] == shown_name(queue)
        assert shown["poison"] == 1
        del source
    finally:
        processor.close()


@settings(max_examples=15, deadline=None)
@given(queue=HOSTILE.filter(bool))
def test_promtool_accepts_hostile_source_labels(queue: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        return  # test_event_readers says so (and fails in CI)
    processor = CoordinationEventProcessor(dead_letter_path=":memory:")
    try:
        source = MemorySource(processor, MemoryBroker(), queue=queue, **FAST)
        text = CoordinationMetricsExporter({"events": processor}).export_metrics()
        done = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        del source
    finally:
        processor.close()
