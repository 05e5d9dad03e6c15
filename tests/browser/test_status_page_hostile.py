"""The status page's data and markup against hostile names, and its tables' bounds.

Operation names are user input (a decorator's ``operation_name``, a route, a message
type), and so are component names and the title: whatever they hold, the JSON must carry
them exactly and the page must never turn them into markup. The browser side of the same
promise is in ``test_status_page_live`` (a ``<script>`` name shown as text).
"""

from __future__ import annotations

import json
import re
import threading
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from coordination import BulkheadFull
from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import StatusPage
from coordination.observability._status_page_html import PAGE_SCRIPT

MARKUP = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "</script><script>x()</script>",
        '"><img src=x onerror=alert(1)>',
        "' onmouseover='x()",
        "&amp;&lt;&#x3c;",
        "<!--",
        "]]>",
        "\u2028\u2029",
        "${alert(1)}",
        "`",
        "\\u003c",
    ]
)
HOSTILE = st.lists(st.one_of(MARKUP, st.text(max_size=30)), min_size=1, max_size=3).map("".join)


class _Tags(HTMLParser):
    """The start tags of a document and the text of its <title> and <h1>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[tuple[str, str | None], ...]]] = []
        self.text: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(attrs)))
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in in ("title", "h1"):
            self.text[self._in] = self.text.get(self._in, "") + data


def _parsed(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser


@settings(max_examples=60, deadline=None)
@given(names=st.lists(HOSTILE.filter(bool), min_size=1, max_size=4, unique=True), component=HOSTILE)
def test_hostile_operation_and_component_names_come_back_exactly_from_the_json(
    names: list[str], component: str
) -> None:
    handler = CoordinationErrorHandler({"max_retries": 0})
    for name in names:
        handler.execute_with_error_handling(lambda: None, operation_name=name)
    client = Client(StatusPage({component: handler}, config={}).wsgi_app)
    response = client.get("/coordination/status.json")
    assert response.status_code == 200
    body = response.get_data()
    body.decode("ascii")  # every character beyond ASCII (a lone surrogate too) is escaped
    data = json.loads(body)
    assert {op["name"] for op in data["operations"]} == set(names)
    assert list(data["components"]) == [component]


@settings(max_examples=100, deadline=None)
@given(title=HOSTILE)
def test_a_hostile_title_is_text_in_the_markup(title: str) -> None:
    benign = _parsed(StatusPage({}, config={}, title="shop").render_html())
    page = StatusPage({}, config={}, title=title)
    hostile = _parsed(page.render_html())
    # The same elements with the same attributes, whatever the title: nothing was injected.
    assert hostile.tags == benign.tags
    assert hostile.text.get("title", "") == title
    assert hostile.text.get("h1", "") == title
    # The served page is UTF-8 even when the title cannot be (a lone surrogate).
    response = Client(page.wsgi_app).get("/coordination")
    assert response.status_code == 200
    response.get_data().decode("utf-8")


def test_the_script_builds_the_page_from_text_only() -> None:
    # Every value of the data reaches the DOM through textContent, createTextNode,
    # setAttribute (on SVG numbers and colours) or dataset: never parsed as markup.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in PAGE_SCRIPT
    assert not re.search(r"\bnew Function\b|setTimeout\(\s*['\"`]", PAGE_SCRIPT)


def test_tables_keep_the_busiest_rows_and_say_how_many_there_were() -> None:
    handler = CoordinationErrorHandler({"max_retries": 0})
    for i in range(120):
        for _ in range(1 + i // 30):  # ops 90..119 are the busiest (4 calls each)
            handler.execute_with_error_handling(lambda: None, operation_name=f"op{i:03}")
    entered, release = threading.Event(), threading.Event()

    def busy() -> None:
        entered.set()
        release.wait(5)

    limited = {"adaptive_concurrency": True, "max_concurrency": 1, "min_concurrency": 1}
    for g in range(30):
        handler.execute_with_error_handling(
            lambda: None, operation_name=f"limited{g}", concurrency_group=f"g{g:02}", **limited
        )
    # One group refuses a call: it is kept before the quiet ones.
    hold = threading.Thread(
        target=handler.execute_with_error_handling,
        args=(busy,),
        kwargs={"operation_name": "limited29", "concurrency_group": "g29", **limited},
    )
    hold.start()
    try:
        assert entered.wait(5)
        with pytest.raises(BulkheadFull):
            handler.execute_with_error_handling(
                lambda: None, operation_name="limited29", concurrency_group="g29", **limited
            )
        data = StatusPage({"errors": handler}, config={}).snapshot()
    finally:
        release.set()
        hold.join(5)
    assert data["operations_total"] == 150
    shown = [op["name"] for op in data["operations"]]
    assert len(shown) == 50
    assert shown[:30] == [f"op{i:03}" for i in range(90, 120)]  # busiest, then by name
    assert data["concurrency_total"] == 30
    groups = list(data["concurrency"])
    assert len(groups) == 20
    assert groups[0] == "g29"
    assert groups[1:] == [f"g{g:02}" for g in range(19)]
    json.dumps(data, allow_nan=False)
