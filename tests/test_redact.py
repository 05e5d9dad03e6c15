"""The redaction policy itself: every promised form is masked, innocent text is left alone,
and no input makes it slow (every pattern is linear-time)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import add_redaction_pattern, redact, remove_redaction_pattern
from coordination._redact import is_secret_name, redact_mapping, safe_repr
from secret_forms import FORMS, Planted, leaked, planted_in_text


@pytest.mark.parametrize("form", sorted(FORMS))
@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_every_planted_secret_is_masked(form: str, data: st.DataObject) -> None:
    planted: Planted = data.draw(planted_in_text(FORMS[form]))
    shown = redact(planted.text)
    assert not leaked(planted, shown), (planted.text, shown)
    assert redact(shown) == shown  # masking twice changes nothing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login failed: password=hunter2", "login failed: password=[redacted]"),
        ("unreachable: password=x", "unreachable: password=[redacted]"),
        ("DB_PASSWORD = s3cr:et end", "DB_PASSWORD = [redacted] end"),
        ("--api-key=abc123 next", "--api-key=[redacted] next"),
        ("GET /cb?code=1&access_token=abc123&x=2", "GET /cb?code=1&access_token=[redacted]&x=2"),
        ('{"api_key": "ab\\"cd", "user": "bob"}', '{"api_key": "[redacted]", "user": "bob"}'),
        ("{'Password': 'hunter2', 'n': 1}", "{'Password': '[redacted]', 'n': 1}"),
        ('{"clientSecret":"x1y2"}', '{"clientSecret":"[redacted]"}'),
        ("{'auth': {'token': 'tk123'}}", "{'auth': [redacted]}"),
        ("token: Bearer abc.def-123", "token: Bearer [redacted]"),
        ("Authorization: Bearer abc.def-ghi\nHost: x", "Authorization: Bearer [redacted]\nHost: x"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic [redacted]"),
        ("X-Api-Key: 0123abcd", "X-Api-Key: [redacted]"),
        ("Cookie: sid=abc; theme=dark", "Cookie: [redacted]"),
        ("[(b'authorization', b'Bearer abcdefgh123')]", "[(b'authorization', b'[redacted]')]"),
        ("redis://admin:pw@cache:6379/0", "redis://admin:***@cache:6379/0"),
        ("postgres://u:p%40ss@db/app?sslmode=require", "postgres://u:***@db/app?sslmode=require"),
        ("https://ghp_abcdef@github.com/x", "https://***@github.com/x"),
        ("redis://:onlypw@cache", "redis://***@cache"),
        ("call Bearer abcdefgh123 now", "call Bearer [redacted] now"),
        ("key AKIAIOSFODNN7EXAMPLE here", "key [redacted] here"),
        ("xoxb-123456789012-abcdEF", "[redacted]"),
        ("sk_live_" + "a1" * 12, "[redacted]"),
        (
            "t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl done",
            "t=[redacted] done",
        ),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "[redacted]",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----",
            "[redacted]",
        ),
    ],
)
def test_fixed_cases(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the tokenizer split the text into 5 tokens",
        "max_tokens=100 author=Bob mapping=x passenger=3 spinner=on",
        "key=value host=db port=5432 path=/a/b",
        "mail bob@example.com at 12:30:45",
        "see https://example.com:8443/path?q=1#frag and redis://cache:6379/0",
        "Basic authentication failed for this bearer of news",
        "password: must be a string, got [redacted]",
        "token: is required",
        "user.password: must have at least 8 characters, got 3 ([redacted])",
        "operation 'db' failed after 3 attempt(s) [HIGH]: ConnectionError: refused",
        "ratio 3:2, time 10:00, a=b=c",
        "eyJust a word, and AKIA alone",
    ],
)
def test_innocent_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


_INNOCENT_WORDS = st.sampled_from(
    (
        "tokenizer", "author", "mapping", "user", "name", "host", "port", "path", "status",
        "count", "tokens", "route", "method", "operation", "attempts", "retry", "ok", "failed",
        "200", "503", "GET", "/api/v1", "db", "cache", "redis", "12:30",
    )
)  # fmt: skip


@given(
    st.lists(
        st.tuples(_INNOCENT_WORDS, st.sampled_from(("=", ": ", " ", ", ")), _INNOCENT_WORDS),
        max_size=12,
    )
)
def test_text_of_innocent_names_is_unchanged(pairs: list[tuple[str, str, str]]) -> None:
    text = " ".join(f"{a}{sep}{b}" for a, sep, b in pairs)
    assert redact(text) == text


def test_names_that_look_secret() -> None:
    secret = ["password", "DB_PASSWORD", "userPassword", "X-Api-Key", "apiKey", "auth", "pwd"]
    secret += ["access_key", "AWS_SECRET_ACCESS_KEY", "session", "githubToken", "Set-Cookie"]
    plain = ["tokenizer", "author", "mapping", "max_tokens", "passenger", "classname", "key"]
    assert all(is_secret_name(name) for name in secret)
    assert not any(is_secret_name(name) for name in plain)
    assert is_secret_name("x" * 500 + "_db_password")  # a long name is judged by its end
    # Documented either way: a name *about* a secret is treated as one.
    assert redact("password_policy_version: 3") == "password_policy_version: [redacted]"


def test_mappings_mask_secret_keys_and_secrets_in_strings() -> None:
    shown = redact_mapping({"api_token": "t", "dsn": "postgres://u:pw@db/x", "n": [{"pwd": 1}]})
    assert shown == {
        "api_token": "[redacted]",
        "dsn": "postgres://u:***@db/x",
        "n": [{"pwd": "[redacted]"}],
    }


@pytest.fixture
def member_pattern() -> Iterator[re.Pattern[str]]:
    pattern = add_redaction_pattern(r"member-(?P<secret>\d{6})")
    yield pattern
    remove_redaction_pattern(pattern)


def test_an_added_pattern_masks_its_group(member_pattern: re.Pattern[str]) -> None:
    assert redact("for member-123456 now") == "for member-[redacted] now"
    remove_redaction_pattern(member_pattern)
    assert redact("for member-123456 now") == "for member-123456 now"


def test_an_added_pattern_without_a_group_masks_the_match() -> None:
    add_redaction_pattern(r"acct-\d{8}")
    try:
        assert redact("acct-12345678 ok") == "[redacted] ok"
    finally:
        remove_redaction_pattern(r"acct-\d{8}")


def test_bad_added_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="empty string"):
        add_redaction_pattern(r"x*")
    with pytest.raises(re.error):
        add_redaction_pattern(r"(unclosed")


# --- linear time -------------------------------------------------------------------------

_SIZE = 60_000
# Each would be quadratic (or worse) for a pattern that can start mid-token, rescan from
# every position, or backtrack through nested quantifiers.
_ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "names without separators": lambda n: "a-" * (n // 2),
    "many secret names": lambda n: "password=" * (n // 9),
    "names then colons": lambda n: "token:" * (n // 6),
    "unclosed quotes": lambda n: 'password="' * (n // 10),
    "escaped quotes": lambda n: '"api_key": "' + '\\"' * (n // 2),
    "backslash runs": lambda n: '"api_key": "' + "\\" * n + '"',
    "json in json": lambda n: '\\"token\\": \\"' * (n // 13),
    "opening brackets": lambda n: "auth: " + "{[(" * (n // 3),
    "nested secrets": lambda n: '{"auth": ' * (n // 9),
    "schemes": lambda n: "a://" * (n // 4),
    "userinfo": lambda n: "redis://" + "a:b@" * (n // 4),
    "bearer words": lambda n: "Bearer " * (n // 7),
    "jwt prefixes": lambda n: "eyJa." * (n // 5),
    "private key headers": lambda n: "-----BEGIN PRIVATE KEY-----" * (n // 27),
    "provider prefixes": lambda n: "AKIA" * (n // 4) + "ghp_" * (n // 4),
    "headers": lambda n: "Authorization: " * (n // 15),
    "camel humps": lambda n: "Aa" * (n // 2) + "=1",
    "long name": lambda n: "x" * n + "password=1",
}


def _seconds(text: str, runs: int = 1) -> float:
    """The best of ``runs`` timings (the machine is shared: the best is the least noisy)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        redact(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("name", sorted(_ADVERSARIAL))
def test_adversarial_input_takes_linear_time(name: str) -> None:
    build = _ADVERSARIAL[name]
    small, large = _seconds(build(_SIZE // 4), 3), _seconds(build(_SIZE), 3)
    # Four times the text: about four times the time. Quadratic would be sixteen; the
    # absolute bound catches a pattern that is slow at every size.
    assert large < 1.0, f"{name}: {large:.3f}s for {_SIZE} characters"
    assert large < 10 * max(small, 0.01), f"{name}: {small:.4f}s then {large:.4f}s"


@given(
    st.lists(
        st.sampled_from([*"=:\"'\\ -_.@/{[(,;&", "eyJ", "password", "Bearer ", "://"]),
        min_size=1000,
        max_size=3000,
    ).map("".join)
)
@settings(max_examples=25, deadline=None)
def test_generated_adversarial_text_is_fast(text: str) -> None:
    assert _seconds(text * 10) < 0.5


@given(
    padding=st.integers(0, 120),
    limit=st.integers(8, 120),
    password=st.text(alphabet="ABCDEF0123456789", min_size=6, max_size=12),
    wrap=st.sampled_from(["plain", "dict", "list"]),
)
def test_safe_repr_never_cuts_a_secret_in_half_before_redacting(
    padding: int, limit: int, password: str, wrap: str
) -> None:
    """It redacts before it shortens: a cut before the '@' of a URL's userinfo would
    otherwise leave the password visible and no longer recognisable."""
    text = "-" * padding + f" rediss://default:{password}@cache"
    value: object = {"plain": text, "dict": {"note": text}, "list": [text]}[wrap]
    shown = safe_repr(value, limit)
    assert password not in shown
    assert len(shown) <= limit + 40  # bounded: the limit and the note of what was cut
