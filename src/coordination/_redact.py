"""The one redaction policy: keeping secrets and huge values out of everything shown.

Every output of the library goes through ``redact``: log records (by the filter on every
``coordination.*`` logger), reports (``recent_errors``, ``recent_failures``, health
``output`` and check details), ``str()`` and ``repr()`` of the library's exceptions, the
dead-letter journal's error text, and the configuration as shown (``repr``,
``describe_config``, ``coordination config``). It runs when something is *shown* — a
record emitted, a report read, an exception printed — never on a successful call.

What is masked (the full list, with examples, is in docs/troubleshooting.md):

* the value of a secret-looking name in ``name=value``, ``name: value``, ``"name": "value"``
  (JSON, Python reprs, escaped JSON inside JSON), ``('name', 'value')`` pairs and
  ``Name: value`` headers (``Authorization``, ``Cookie``… to the end of the line);
* ``Bearer``/``Basic`` credentials, URL userinfo (``redis://user:***@host``), bare JWTs,
  PEM private keys and common provider token shapes (AWS, GitHub, Slack, Stripe, Google,
  ``sk-…`` keys);
* whatever a pattern added with ``add_redaction_pattern`` matches.

Every built-in pattern is linear in the length of the text: quantifiers are possessive
and every match may only start where a token starts, so no input makes Python's
backtracking engine go quadratic or worse (tests/test_redact.py times adversarial input).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "add_redaction_pattern",
    "error_text",
    "is_secret_name",
    "redact",
    "redact_mapping",
    "redact_value",
    "remove_redaction_pattern",
    "safe_repr",
    "truncate",
]

REDACTED = "[redacted]"
URL_MASK = "***"

# --- which names hold secrets ------------------------------------------------------------

# A name is cut into lower-case words (at separators and camelCase humps): "X-Api-Key" ->
# x, api, key; "userPassword" -> user, password. It is secret when a word is one of these…
_SECRET_WORDS = frozenset(
    [
        "password",
        "passwd",
        "passphrase",
        "passcode",
        "pwd",
        "pass",
        "secret",
        "secrets",
        "token",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "creds",
        "cookie",
        "session",
        "sessionid",
        "signature",
        "csrf",
        "xsrf",
        "bearer",
        "jwt",
        "pin",
        "cvv",
        "cvc",
        "ssn",
        "otp",
        "apikey",
        "privatekey",
    ]
)
# …or the words run together contain one of these (distinctive even inside other words)…
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "clientsecret",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "sessionid",
    "sessionkey",
    "authorization",
    "credential",
    "cookie",
)
# …or end with one of these ("githubToken", "dbPwd", "clientSecret").
_SECRET_ENDINGS = ("token", "secret", "pwd", "passwd", "password")
# Headers whose whole value (to the end of the line) is the credential.
_WHOLE_LINE_NAMES = frozenset(
    ("authorization", "proxyauthorization", "cookie", "setcookie", "xapikey", "xauthtoken")
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)
def _words(name: str) -> tuple[tuple[str, ...], str]:
    words = tuple(word.lower() for word in _WORDS.findall(name))
    return words, "".join(words)


@functools.lru_cache(maxsize=4096)
def _is_secret_str(name: str) -> bool:
    words, joined = _words(name)
    return (
        any(word in _SECRET_WORDS for word in words)
        or any(part in joined for part in _SECRET_PARTS)
        or joined.endswith(_SECRET_ENDINGS)
    )


def is_secret_name(name: object) -> bool:
    """True when a field, header or argument name looks like it holds a secret.

    ``password``, ``api_key``, ``X-Api-Key``, ``userPassword``, ``auth`` are; ``tokenizer``,
    ``author``, ``mapping``, ``max_tokens`` are not.
    """
    if not isinstance(name, str):
        return False
    # A very long name is judged by its end ("…_db_password"), so the cache stays small.
    return _is_secret_str(name if len(name) <= 200 else name[-64:])


# --- the patterns --------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----[^-]*+(?:-----END[A-Z ]{0,40}PRIVATE KEY-----)?"
)
# scheme://userinfo@host: the authority ends where RFC 3986 ends it (/ ? #), or at a
# character no URL holds unencoded; the userinfo is what comes before its last "@".
_URL = re.compile(r"""(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*+://)([^\s/?#"<>\\{}|^`]*+)""")
# A name, perhaps quoted (also \"escaped\" and b'bytes'), then = or : (not ://), or the
# comma of a ('name', 'value') pair. Matches start only where a token starts.
_KEY = re.compile(
    r"""(?<![\w.\-])(?P<oq>b?\\{0,4}+["'])?(?P<name>-{0,2}[A-Za-z_][\w.\-]*+)"""
    r"""(?P<cq>\\{0,4}+["'])?"""
    r"""(?P<sep>[ \t]*+(?:=|:(?!//)|(?(cq),|(?!)))[ \t]*+)"""
)
_SCHEME = re.compile(r"(?i:bearer|basic|digest|token|negotiate|ntlm|apikey)[ \t]++(?=\S)")
_BARE = re.compile(r"[^\s,;&]++")
_OPENER = re.compile(r"""b?(\\{0,4}+)["']""")
_LINE = {
    None: re.compile(r"(?:[^\r\n\\]|\\(?![rn]))*+"),
    '"': re.compile(r"""(?:[^\r\n\\"]|\\(?![rn"]))*+"""),
    "'": re.compile(r"""(?:[^\r\n\\']|\\(?![rn']))*+"""),
}
_FLAT_CONTAINER = {
    "{": re.compile(r"\{[^{}\[\]]*+\}"),
    "[": re.compile(r"\[[^{}\[\]]*+\]"),
    "(": re.compile(r"\([^{}\[\]()]*+\)"),
}
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<", '"': '"', "'": "'"}
# Words after "name:" that are prose, not a value: "password: must be a string".
_PROSE = frozenset(
    [
        "must",
        "is",
        "are",
        "was",
        "were",
        "be",
        "does",
        "do",
        "did",
        "has",
        "have",
        "had",
        "not",
        "no",
        "yes",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "ok",
        "missing",
        "required",
        "expected",
        "invalid",
        "empty",
        "unset",
        "present",
        "absent",
        "provided",
        "failed",
        "expired",
        "too",
        "cannot",
        "should",
        "will",
        "may",
    ]
) | {REDACTED}
_STANDALONE_SCHEME = re.compile(r"(?<![\w-])(?i:bearer|basic)[ \t]++([A-Za-z0-9._~+/-]{8,}+=*+)")
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{2,}+\.[A-Za-z0-9_-]{2,}+\.[A-Za-z0-9_-]*+"
    r"(?:\.[A-Za-z0-9_-]*+){0,2}"
)
_PROVIDER_TOKENS = re.compile(
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)"
    r"[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{30,}+)"
    r"|(?<![A-Za-z0-9-])xox[abposre]-[A-Za-z0-9-]{10,}+"
    r"|(?<![A-Za-z0-9_])[sr]k_(?:live|test)_[A-Za-z0-9]{16,}+"
    r"|(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"
    r"|(?<![A-Za-z0-9_-])sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}+"
)

# Every secret name holds one of these (lower-cased), and so does every scheme word.
_NAME_STEMS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "cred",
    "cookie",
    "session",
    "signature",
    "csrf",
    "xsrf",
    "bearer",
    "basic",
    "jwt",
    "pin",
    "cvv",
    "cvc",
    "ssn",
    "otp",
    "key",
)
_PROVIDER_PREFIXES = (
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "AGPA",
    "AIDA",
    "AIPA",
    "ANPA",
    "ANVA",
    "APKA",
    "AROA",
    "ASCA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "k_live_",
    "k_test_",
    "AIza",
    "sk-",
)

_extra_lock = threading.Lock()
_extra_patterns: tuple[re.Pattern[str], ...] = ()


def redaction_patterns() -> tuple[re.Pattern[str], ...]:
    """The patterns added by the application, as one value that changes (a new tuple)
    whenever one is added or removed: a cache of redacted texts keys on it."""
    return _extra_patterns


def add_redaction_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """Also mask what ``pattern`` matches, everywhere (process-wide); the compiled pattern.

    When the pattern has a group named ``secret``, only that group is replaced:
    ``add_redaction_pattern(r"member-(?P<secret>\\d{6})")`` turns ``member-123456`` into
    ``member-[redacted]``. The built-in patterns are linear-time; keep yours so too (no
    nested quantifiers such as ``(a+)+``), since it runs on every log line.
    """
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    if not isinstance(compiled, re.Pattern) or not isinstance(compiled.pattern, str):
        raise TypeError(f"a redaction pattern must be a str regex, got {pattern!r}")
    if compiled.fullmatch(""):
        raise ValueError(f"redaction pattern {compiled.pattern!r} matches the empty string")
    global _extra_patterns
    with _extra_lock:
        if compiled not in _extra_patterns:
            _extra_patterns = (*_extra_patterns, compiled)
    return compiled


def remove_redaction_pattern(pattern: str | re.Pattern[str]) -> None:
    """Stop masking with a pattern added by ``add_redaction_pattern`` (absent: no-op)."""
    text = pattern if isinstance(pattern, str) else pattern.pattern
    global _extra_patterns
    with _extra_lock:
        _extra_patterns = tuple(p for p in _extra_patterns if p.pattern != text)


# --- applying them ----------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with every secret the policy recognises replaced by ``[redacted]``.

    >>> redact('login failed: password=hunter2, url=redis://admin:pw@cache:6379/0')
    'login failed: password=[redacted], url=redis://admin:***@cache:6379/0'
    """
    if not isinstance(text, str):
        text = str(text)
    if "PRIVATE KEY" in text:
        text = _PRIVATE_KEY.sub(REDACTED, text)
    if "://" in text:
        text = _URL.sub(_mask_userinfo, text)
    # Each pattern runs only when the text holds a word it needs (str's own search is
    # far cheaper than a regex scan), so a line with nothing secret costs a few µs.
    lowered = text.lower()
    if any(stem in lowered for stem in _NAME_STEMS):
        text = _redact_pairs(text)
        if "bearer" in lowered or "basic" in lowered:
            text = _STANDALONE_SCHEME.sub(_mask_scheme, text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if any(prefix in text for prefix in _PROVIDER_PREFIXES):
        text = _PROVIDER_TOKENS.sub(REDACTED, text)
    for pattern in _extra_patterns:
        text = pattern.sub(_mask_extra, text)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, authority = match.groups()
    userinfo, at, host = authority.rpartition("@")
    if not at or userinfo in (URL_MASK, REDACTED):  # already masked (here or by its writer)
        return match.group(0)
    user, colon, _ = userinfo.partition(":")
    if colon and user and not is_secret_name(user) and user != URL_MASK:
        return f"{scheme}{user}:{URL_MASK}@{host}"
    return f"{scheme}{URL_MASK}@{host}"


def _mask_scheme(match: re.Match[str]) -> str:
    credential = match.group(1)
    if credential.isalpha() and credential.islower():  # an English word: "Basic authentication"
        return match.group(0)
    return match.group(0)[: match.start(1) - match.start()] + REDACTED


def _mask_extra(match: re.Match[str]) -> str:
    if not match.group(0):
        return ""
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        start, end = match.span("secret")
        offset = match.start()
        whole = match.group(0)
        return whole[: start - offset] + REDACTED + whole[end - offset :]
    return REDACTED


def _redact_pairs(text: str) -> str:
    """Mask the values of secret-looking names, scanning left to right once."""
    out: list[str] = []
    done = 0  # text[:done] is already in out
    pos = 0
    search = _KEY.search
    while True:
        match = search(text, pos)
        if match is None:
            break
        pos = match.end()
        name = match.group("name").lstrip("-")
        if not is_secret_name(name):
            continue
        sep = match.group("sep")
        if "," in sep and not _is_pair(text, match):
            continue
        enclosing = None
        start = match.start()
        if match.group("oq") is None and start > 0 and text[start - 1] in "\"'":
            enclosing = text[start - 1]
        span = _value_span(text, pos, name, ":" in sep, enclosing)
        if span is None:
            continue
        value_start, value_end, replacement = span
        out.append(text[done:value_start])
        out.append(replacement)
        done = pos = value_end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _is_pair(text: str, match: re.Match[str]) -> bool:
    """A quoted name then a comma is a pair only inside ( or [: ``('token', 'abc')``."""
    start = match.start()
    if match.group("oq") is None:
        return False
    before = text[max(0, start - 2) : start].rstrip(" ")
    return before.endswith(("(", "["))


def _value_span(
    text: str, pos: int, name: str, colon: bool, enclosing: str | None
) -> tuple[int, int, str] | None:
    """Where the value starting at ``pos`` is, and what replaces it; None: not a value."""
    if pos >= len(text):
        return None
    first = text[pos]
    opener = _OPENER.match(text, pos)
    if opener:
        quoted = _quoted_span(text, opener.end() - 1, len(opener.group(1)))
        if quoted is not None:
            inner_start, inner_end = quoted
            if inner_end == inner_start:
                return None
            return inner_start, inner_end, REDACTED
    if first in _FLAT_CONTAINER:
        flat = _FLAT_CONTAINER[first].match(text, pos)
        # A nested value is not masked whole: its own names get their turn.
        return (pos, flat.end(), REDACTED) if flat else None
    if colon and _words(name)[1] in _WHOLE_LINE_NAMES:
        line = _LINE[enclosing].match(text, pos)  # always matches, perhaps empty
        end = line.end() if line else pos
        value = text[pos:end].rstrip()
        if not value or value.split(None, 1)[0].lower() in _PROSE:
            return None
        scheme = _SCHEME.match(value)
        if scheme:
            return pos + scheme.end(), pos + len(value), REDACTED
        return pos, pos + len(value), REDACTED
    scheme = _SCHEME.match(text, pos)
    if scheme:
        pos = scheme.end()
    bare = _BARE.match(text, pos)
    if bare is None:
        return None
    value = _strip_closers(bare.group(0))
    if not value or value.lower() in _PROSE:
        return None
    return pos, pos + len(value), REDACTED


def _strip_closers(value: str) -> str:
    """``abc')`` -> ``abc``: closing brackets and quotes that belong to the text around."""
    while value and value[-1] in _CLOSERS and _CLOSERS[value[-1]] not in value[:-1]:
        value = value[:-1]
    return value


def _quoted_span(text: str, quote_at: int, escapes: int) -> tuple[int, int] | None:
    """The inside of the string literal whose opening quote is at ``quote_at``, preceded by
    ``escapes`` backslashes (``"…"``; ``\\"…\\"`` in JSON inside JSON; ``\\\\"…\\\\"`` in
    its repr), or None when it never closes. Linear: ``find`` jumps quote to quote.

    It closes at the first quote escaped no more than the opening one: a quote inside
    is always escaped more (``\\"`` inside ``"…"``, ``\\\\\\"`` inside ``\\"…\\"``). A
    string that ends in a backslash makes it mask a little too much: the safe side.
    """
    quote = text[quote_at]
    start = quote_at + 1
    index = start
    while True:
        found = text.find(quote, index)
        if found < 0:
            return None
        slashes = 0
        while slashes <= escapes and found - slashes - 1 >= start:
            if text[found - slashes - 1] != "\\":
                break
            slashes += 1
        if slashes <= escapes:
            return start, found - slashes
        index = found + 1


def redact_value(value: Any, depth: int = 6) -> Any:
    """``value`` with every string redacted and secret-named keys' values replaced (a copy)."""
    if isinstance(value, str):
        return redact(value)
    if depth <= 0:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_name(key) else redact_value(item, depth - 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        items = [redact_value(item, depth - 1) for item in value]
        # a subclass (a namedtuple, sys.version_info) is not made from one iterable
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_mapping(data: Mapping[Any, Any], depth: int = 6) -> dict[Any, Any]:
    """A copy of ``data`` with secret-looking keys' values replaced and strings redacted."""
    result: dict[Any, Any] = redact_value(dict(data), depth)
    return result


def error_text(error: BaseException, limit: int = 2000) -> str:
    """``str(error)``, redacted then bounded, and never raising (for stored error text:
    a lone surrogate, which no UTF-8 store can hold, is written as its escape)."""
    try:
        text = str(error)
    except Exception:  # a hostile __str__ must not lose the event it describes
        text = f"<unprintable {type(error).__name__}>"
    text = truncate(redact(text), limit)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# --- bounding ---------------------------------------------------------------------------


def truncate(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


# safe_repr redacts before it cuts (cutting first can split a token or a URL's userinfo
# so that the policy no longer recognises it, and show its first half); past this many
# characters beyond the limit nothing can be shown, so nothing more is redacted.
_SAFE_REPR_WINDOW = 4096


def safe_repr(value: Any, limit: int = 80) -> str:
    """A short ``repr`` for messages: redacted, bounded in length and never raising."""
    try:
        if isinstance(value, str) and len(value) > limit:
            shown = redact(value[: limit + _SAFE_REPR_WINDOW])[:limit]
            text = repr(shown) + f"… [{len(value)} in all]"
        elif isinstance(value, bytes) and len(value) > limit:
            text = repr(value[:limit]) + f"… [{len(value)} in all]"
        elif isinstance(value, list | tuple | set | frozenset | dict) and len(value) > 20:
            text = f"<{type(value).__name__} of {len(value)} items>"
        else:
            text = repr(value)
    except Exception:  # a hostile __repr__ must not break error reporting
        text = f"<{type(value).__name__} object>"
    if len(text) > limit + _SAFE_REPR_WINDOW:
        shown = redact(text[: limit + _SAFE_REPR_WINDOW])[:limit]
        return f"{shown}… [{len(text) - limit} more characters]"
    return truncate(redact(text), limit)
