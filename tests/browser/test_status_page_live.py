"""Issue 16's features on the live status page of a real app, in real headless chromium.

The shop of ``_live_app`` is served over HTTP and put under load while the page is open;
the page must show, as they change and without being reloaded, the group's adaptive
limit moving, the calls it shed (by severity in the limits table, per operation in the
operations table), the failures held by the retry budget, the hedged attempts and their
wins, and a reload refused because the file was wrong. An operation named with markup
must show as text.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from coordination import ConfigError

from ._chromium import CHROMIUM, Chromium
from ._live_app import GROUP, HOSTILE_NAME, serving_live_shop, write_config

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The text of one cell: an operation's (or a group's) row, the column under a heading.
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


def _cell(browser: Chromium, table: str, key: str, value: str, heading: str) -> str | None:
    args = ", ".join(json.dumps(a) for a in (table, key, value, heading))
    result = browser.evaluate(f"{CELL}({args})")
    return None if result is None else str(result)


def _open(browser: Chromium, base: str) -> None:
    browser.navigate(f"{base}/coordination")
    browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
    # Set once: still there at the end means the page was never reloaded.
    browser.evaluate("window.sameDocument = 'yes'")


def _number(text: str | None) -> int:
    assert text is not None
    return int(text)


def _wait(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what}")
        time.sleep(0.1)


def test_the_live_page_follows_limits_shedding_budget_hedging_and_reloads(
    tmp_path: Path,
) -> None:
    with serving_live_shop(tmp_path) as live, Chromium() as browser:
        _open(browser, live.base)

        def look(table: str, key: str, value: str, heading: str) -> str | None:
            return _cell(browser, table, key, value, heading)

        first_limit = _number(look("concurrency", "group", GROUP, "limit"))
        assert look("concurrency", "group", GROUP, "algorithm") == "aimd"
        assert look("concurrency", "group", GROUP, "bounds") == "1–4"
        # Each count as the page first showed it (after one call of each route): the
        # page must show them grow.
        first = {
            (op, heading): _number(look("operations", "operation", op, heading))
            for op, heading in [
                ("orders.browse", "shed"),
                ("payments.charge", "held by budget"),
                ("catalog.read", "hedged"),
                ("catalog.read", "hedge wins"),
            ]
        }

        def grew(op: str, heading: str) -> bool:
            return _number(look("operations", "operation", op, heading)) > first[op, heading]

        live.start_load(["/orders/hold", "/orders/browse"] * 2 + ["/catalog", "/pay"], 6)
        limits_seen = {first_limit}

        def limit_moved() -> bool:
            limits_seen.add(_number(look("concurrency", "group", GROUP, "limit")))
            return len(limits_seen) > 1

        _wait(limit_moved, "the group's limit move")
        _wait(lambda: "LOW" in (look("concurrency", "group", GROUP, "shed") or ""), "LOW shed")
        _wait(lambda: grew("orders.browse", "shed"), "orders.browse's calls shed")
        _wait(lambda: grew("payments.charge", "held by budget"), "payments held by the budget")
        _wait(lambda: grew("catalog.read", "hedged"), "hedged attempts")
        _wait(lambda: grew("catalog.read", "hedge wins"), "a hedge's win")
        hedged = _number(look("operations", "operation", "catalog.read", "hedged"))
        wins = _number(look("operations", "operation", "catalog.read", "hedge wins"))
        assert hedged >= wins > 0

        # A wrong file: refused, the old settings kept, the error on the page.
        write_config(live.config_file, extra="max_retriez: 2\n")
        with pytest.raises(ConfigError, match="max_retriez"):
            live.shop.reload_config()
        reload_text = "document.querySelector('#reload').textContent"
        _wait(lambda: "max_retriez" in browser.evaluate(reload_text), "the refused reload")
        said = browser.evaluate(reload_text)
        reload_class = browser.evaluate("document.querySelector('#reload').className")
        live.stop_load()
        browser.screenshot(ARTIFACTS / "status-page-issue16.png")
        same_document = browser.evaluate("window.sameDocument")
        browser.evaluate("1")  # collect any console events that arrived meanwhile
        problems = list(browser.problems)

    assert max(limits_seen) > min(limits_seen)
    assert "refused: unknown configuration key 'max_retriez'" in said
    assert "1 applied, 1 refused" in said
    assert reload_class == "problem"
    assert same_document == "yes"
    assert problems == []


def test_an_operation_named_with_markup_shows_as_text(tmp_path: Path) -> None:
    with serving_live_shop(tmp_path) as live, Chromium() as browser:
        browser.navigate(f"{live.base}/coordination")
        browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
        shown = browser.evaluate(
            "[...document.querySelectorAll('#operations tr')]"
            ".map(tr => [tr.dataset.operation, tr.children[0].textContent])"
        )
        injected = browser.evaluate(
            "document.querySelectorAll('main script, main img, #operations a').length"
        )
        pwned = browser.evaluate("typeof window.pwned")
        browser.evaluate("1")
        problems = list(browser.problems)
    assert [HOSTILE_NAME, HOSTILE_NAME] in shown
    assert injected == 0
    assert pwned == "undefined"
    assert problems == []


def test_many_operations_keep_the_page_bounded_and_readable(tmp_path: Path) -> None:
    with serving_live_shop(tmp_path) as live, Chromium() as browser:
        for i in range(60):  # named to sort after the shop's own, at one call each
            live.shop.handle_errors(operation_name=f"zz.quiet{i:02}")(lambda: None)()
        long_name = "zz." + "unbroken" * 40  # no hyphen, no space: nowhere to wrap
        shown_long = live.shop.handle_errors(operation_name=long_name)(lambda: None)
        for _ in range(3):  # busier than the rest: among the rows shown
            shown_long()
        browser.navigate(f"{live.base}/coordination")
        browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
        rows = browser.evaluate("document.querySelectorAll('#operations tr').length")
        long_shown = browser.evaluate(
            f"!!document.querySelector('#operations tr[data-operation={json.dumps(long_name)}]')"
        )
        note = browser.evaluate("document.querySelector('#operations-note').textContent")
        overflow = browser.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        browser.evaluate("1")
        problems = list(browser.problems)
        total = len(live.shop.error_handler.snapshot().operations)
    assert rows == 50
    assert long_shown
    assert total > 60
    # The page counts the monitor's operations (the middleware's routes) as well.
    assert note.startswith("showing 50 of ")
    assert note.endswith(" operations: the busiest")
    assert int(note.split()[3]) >= total
    assert overflow <= 0  # a long name wraps; the page does not scroll sideways
    assert problems == []
