"""The status page's Events section in real headless chromium (issue 17).

A set with two event processors — one whose dead-letter store is down — and a broker
source named with markup, served over HTTP: the page shows each store (kind, namespace,
counts, whether it answers) and the source's counts, follows them as they change, shows
the markup as text, and keeps answering while the store is down.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from coordination import StoreError
from coordination.integration import Coordination, DeadLetterStore
from memory_broker import FAST, MemoryBroker, MemorySource

from ._chromium import CHROMIUM, Chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE_QUEUE = '<img src=x onerror="window.pwned=1">orders'

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELL = """((table, key, value, heading) => {
  const headings = [...document.querySelectorAll(`#${table}-table th`)]
    .map(th => th.textContent);
  const column = headings.indexOf(heading);
  const row = [...document.querySelectorAll(`#${table} tr`)]
    .find(tr => tr.dataset[key] === value);
  return row && column >= 0 ? row.children[column].textContent : null;
})"""


@pytest.fixture(autouse=True)
def _need_chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


class DownStore(DeadLetterStore):
    namespace = "audit"  # as a shared store's would be

    def count(self, event_type: str | None = None) -> int:
        raise StoreError("the database is unreachable")


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_events_section_shows_stores_and_sources_and_survives_a_store_down() -> None:
    shop = Coordination({"max_retries": 0})
    orders = shop.event_processor(dead_letter_path=":memory:")
    audit = shop.event_processor(dead_letter_path=":memory:")
    audit.dead_letters.close()
    audit.dead_letters = DownStore(":memory:")

    @orders.on("broken")
    def broken(event: Any, event_type: str) -> None:
        raise ValueError("no")

    memory = MemoryBroker()
    source = MemorySource(orders, memory, queue=HOSTILE_QUEUE, **FAST)
    memory.publish({"id": 1}, "created")
    memory.put(b"not json", {"event-type": "created"})
    source.run(max_idle_polls=1, handle_signals=False)
    page = shop.status_page(refresh_seconds=0.25, min_interval=0.2)
    try:
        with serving(page.wsgi_app) as base, Chromium() as browser:
            browser.navigate(f"{base}/coordination")
            browser.wait_for("document.body && document.body.dataset.loaded === 'true'")

            def cell(table: str, key: str, value: str, heading: str) -> str | None:
                args = ", ".join(json.dumps(a) for a in (table, key, value, heading))
                result = browser.evaluate(f"{CELL}({args})")
                return None if result is None else str(result)

            hidden = browser.evaluate("document.querySelector('#events-section').hidden")
            assert cell("stores", "processor", "events", "store") == "sqlite"
            assert cell("stores", "processor", "events", "namespace") == "default"
            assert cell("stores", "processor", "events", "dead letters") == "1"  # the poison
            assert cell("stores", "processor", "events_2", "dead letters") == "–"
            audit_state = cell("stores", "processor", "events_2", "state")
            assert cell("sources", "source", HOSTILE_QUEUE, "processed") == "1"
            assert cell("sources", "source", HOSTILE_QUEUE, "poison") == "1"
            assert cell("sources", "source", HOSTILE_QUEUE, "queue / subject") == HOSTILE_QUEUE
            # The page follows the counts without a reload.
            for _ in range(2):
                memory.publish({"id": 2}, "broken")
            source.run(max_idle_polls=1, handle_signals=False)
            deadline = time.monotonic() + 20
            # (The store's counts are at most a second old: read once for every reader.)
            while (
                cell("sources", "source", HOSTILE_QUEUE, "dead-lettered") != "2"
                or cell("stores", "processor", "events", "dead letters") != "3"
            ):
                assert time.monotonic() < deadline, "the page never showed the dead letters"
                time.sleep(0.1)
            injected = browser.evaluate("document.querySelectorAll('main img').length")
            pwned = browser.evaluate("typeof window.pwned")
            browser.screenshot(ARTIFACTS / "status-page-events.png")
            browser.evaluate("1")
            problems = list(browser.problems)
    finally:
        del source
        orders.close()
        audit.close()
    assert hidden is False
    assert audit_state is not None
    assert audit_state.startswith("down")
    assert "StoreError: the database is unreachable" in audit_state
    assert injected == 0
    assert pwned == "undefined"
    assert problems == []
