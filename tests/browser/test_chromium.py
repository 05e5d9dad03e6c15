"""The status page in real headless chromium, served by ``coordination demo --serve``.

The page must load, show the demo's operations and the inventory breaker's state, draw
its charts, and log no console error or uncaught exception. A screenshot is kept in
test-artifacts/ for people to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from demo._serving import serving_demo

from ._chromium import CHROMIUM, Chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _need_chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


def test_status_page_shows_operations_and_breaker_without_console_errors() -> None:
    with serving_demo(duration=3) as (base, _), Chromium() as browser:
        browser.navigate(f"{base}/coordination")
        browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
        # Let it refresh until the charts have lines of at least two points.
        browser.wait_for(
            "[...document.querySelectorAll('#throughput path')]"
            ".some(p => p.getAttribute('d').includes(' L'))"
        )
        operations = browser.evaluate(
            "[...document.querySelectorAll('#operations tr')].map(r => r.dataset.operation)"
        )
        breaker = browser.evaluate(
            "document.querySelector('tr[data-operation=\"inventory.reserve\"] .badge')?.textContent"
        )
        status = browser.evaluate("document.querySelector('#status .badge').textContent")
        cards = browser.evaluate("document.querySelector('#cards').innerText")
        latency_lines = browser.evaluate("document.querySelectorAll('#latency path').length")
        browser.screenshot(ARTIFACTS / "status-page.png")
        browser.evaluate("1")  # collect any console events that arrived meanwhile
        problems = list(browser.problems)

    assert {"POST /api/orders", "POST /api/users", "inventory.reserve"} <= set(operations)
    assert breaker in {"CLOSED", "OPEN", "HALF_OPEN"}
    assert status in {"HEALTHY", "DEGRADED", "UNHEALTHY"}
    assert "rejected by breaker" in cards
    assert "rejected by validation" in cards
    assert latency_lines > 0
    assert problems == []
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_a_console_error_would_be_caught() -> None:
    # The check above means something only if errors do reach ``problems``.
    with Chromium() as browser:
        browser.navigate("data:text/html,<script>console.error('boom'); null.x</script>")
        browser.wait_for("document.readyState === 'complete'")
        browser.evaluate("1")
        problems = list(browser.problems)
    assert any("console.error: boom" in p for p in problems)
    assert any("uncaught exception" in p and "TypeError" in p for p in problems)
