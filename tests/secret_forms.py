"""Hypothesis strategies that plant a generated secret, in each form the redaction policy
promises to mask, inside generated surrounding text.

Each strategy gives a ``Planted(text, secrets)``: ``text`` holds the secret; ``secrets``
are the strings (the value, and its escaped spellings) that must appear nowhere once the
text has been through any output of the library.
"""

from __future__ import annotations

import base64
import json
import string
from dataclasses import dataclass

from hypothesis import strategies as st

__all__ = ["Planted", "any_planted", "leaked", "planted_in_text"]


@dataclass(frozen=True)
class Planted:
    text: str
    secrets: tuple[str, ...]

    def __str__(self) -> str:  # what a message quoting it shows
        return self.text


def _spellings(secret: str) -> tuple[str, ...]:
    """The secret as written, and as JSON and repr() would write it inside a message."""
    return tuple({secret, json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1]})


def leaked(planted: Planted, output: str) -> list[str]:
    """Where ``output`` still shows a spelling of ``planted``'s secret (with context)."""
    found = []
    for secret in planted.secrets:
        at = output.find(secret)
        if at >= 0:
            found.append(f"{secret!r} in ...{output[max(0, at - 120) : at + len(secret) + 40]!r}")
    return found


# --- names ---------------------------------------------------------------------------------

_BASE_NAMES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "auth",
    "credential",
    "credentials",
    "session",
    "client_secret",
    "db_password",
    "x_auth_token",
    "refresh_token",
    "session_id",
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@st.composite
def secret_names(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(_BASE_NAMES))
    style = draw(st.sampled_from(("lower", "upper", "title", "dash", "camel", "dash-upper")))
    if style == "upper":
        return name.upper()
    if style == "title":
        return "_".join(part.title() for part in name.split("_"))
    if style == "dash":
        return name.replace("_", "-")
    if style == "dash-upper":
        return name.replace("_", "-").upper()
    if style == "camel":
        return _camel(name)
    return name


# --- secret values -------------------------------------------------------------------------

_TOKENISH = string.ascii_letters + string.digits + "!#$%*+-./:=@^_~"
_TOKEN68 = string.ascii_letters + string.digits + "-._~+/"
_URL_SAFE = string.ascii_letters + string.digits + "-._~!$*+=%"


def _has_letter_and_digit(text: str) -> bool:
    # and varied enough not to turn up by chance in a timestamp or a count of a report
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text) and len(set(text)) >= 5


# A value written bare (name=value): no whitespace, , ; & (they end a bare value), no
# opening bracket or quote (those start a structured value, covered by their own forms).
bare_values = st.text(_TOKENISH, min_size=8, max_size=40).filter(_has_letter_and_digit)
token68 = st.text(_TOKEN68, min_size=8, max_size=60).filter(_has_letter_and_digit)
url_passwords = st.text(_URL_SAFE, min_size=6, max_size=30).filter(_has_letter_and_digit)
# Inside quotes anything goes: quotes, backslashes, spaces, any letter.
quoted_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=8, max_size=40
).filter(lambda s: sum(c.isalnum() for c in s) >= 4 and len(set(s)) >= 5)


# --- the forms -----------------------------------------------------------------------------


@st.composite
def key_value(draw: st.DrawFn) -> Planted:
    """``name=value``, ``name: value``, ``name = value``, ``--name=value``, ``?name=value&``."""
    name, value = draw(secret_names()), draw(bare_values)
    shape = draw(
        st.sampled_from(("{n}={v}", "{n}: {v}", "{n} = {v}", "--{n}={v}", "url?{n}={v}&x=1"))
    )
    return Planted(shape.format(n=name, v=value), _spellings(value))


@st.composite
def quoted_key_value(draw: st.DrawFn) -> Planted:
    """JSON ``"name": "value"`` (also nested, and JSON inside a JSON string), Python reprs
    of dicts and of ``(name, value)`` header pairs, with any characters in the value."""
    name, value = draw(secret_names()), draw(quoted_values)
    shape = draw(st.sampled_from(("json", "json-nested", "json-in-json", "repr", "pairs")))
    if shape == "json":
        text = json.dumps({"user": "bob", name: value, "n": 1}, ensure_ascii=False)
    elif shape == "json-nested":
        text = json.dumps({"outer": {name: value}, "ok": True}, ensure_ascii=False)
    elif shape == "json-in-json":
        inner = json.dumps({name: value}, ensure_ascii=False)
        text = json.dumps({"body": inner}, ensure_ascii=False)
        twice = json.dumps(json.dumps(value, ensure_ascii=False)[1:-1], ensure_ascii=False)
        return Planted(text, (*_spellings(value), twice[1:-1]))
    elif shape == "repr":
        text = repr({"user": "bob", name: value})
    else:
        text = repr([(name, value), ("host", "example.org")])
    return Planted(text, _spellings(value))


@st.composite
def headers(draw: st.DrawFn) -> Planted:
    """``Authorization: Bearer …``, ``Basic``, raw keys, cookies, set-cookies."""
    value = draw(token68)
    kind = draw(st.sampled_from(("authorization", "cookie", "set-cookie", "api-key")))
    if kind == "authorization":
        header = draw(
            st.sampled_from(
                ("Authorization", "authorization", "Proxy-Authorization", "AUTHORIZATION")
            )
        )
        scheme = draw(st.sampled_from(("Bearer ", "Basic ", "bearer ", "Token ", "")))
        text = f"{header}: {scheme}{value}"
    elif kind == "cookie":
        text = f"Cookie: theme=dark; sid={value}; lang=en"
    elif kind == "set-cookie":
        text = f"Set-Cookie: id={value}; Path=/; HttpOnly"
    else:
        text = f"{draw(st.sampled_from(('X-Api-Key', 'x-api-key')))}: {value}"
    return Planted(text, _spellings(value))


@st.composite
def bearer_anywhere(draw: st.DrawFn) -> Planted:
    value = draw(token68)
    scheme = draw(st.sampled_from(("Bearer", "bearer", "BEARER", "Basic")))
    return Planted(f"sent {scheme} {value} upstream", _spellings(value))


@st.composite
def url_userinfo(draw: st.DrawFn) -> Planted:
    scheme = draw(
        st.sampled_from(
            ("redis", "rediss", "postgresql+psycopg", "amqp", "https", "mongodb+srv", "ftp")
        )
    )
    host = draw(st.sampled_from(("cache", "10.0.0.5:6379", "db.internal", "[::1]:5432")))
    path = draw(st.sampled_from(("", "/0", "/app?sslmode=require", "/")))
    secret = draw(url_passwords)
    if draw(st.booleans()):
        user = draw(st.sampled_from(("admin", "app_user", "", "default")))
        return Planted(f"{scheme}://{user}:{secret}@{host}{path}", _spellings(secret))
    return Planted(f"{scheme}://{secret}@{host}{path}", _spellings(secret))  # token as user


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def jwts(draw: st.DrawFn) -> Planted:
    header = _b64(json.dumps({"alg": draw(st.sampled_from(("HS256", "RS256")))}).encode())
    payload = _b64(
        json.dumps({"sub": draw(st.text(string.ascii_letters, min_size=1, max_size=12))}).encode()
    )
    signature = _b64(draw(st.binary(min_size=16, max_size=64)))
    token = f"{header}.{payload}.{signature}"
    return Planted(token, (token, signature, f"{payload}.{signature}"))


@st.composite
def provider_tokens(draw: st.DrawFn) -> Planted:
    upper = string.ascii_uppercase + string.digits
    alnum = string.ascii_letters + string.digits
    kind = draw(st.sampled_from(("aws", "github", "slack", "stripe")))
    if kind == "aws":
        token = "AKIA" + draw(st.text(upper, min_size=16, max_size=16))
    elif kind == "github":
        token = draw(st.sampled_from(("ghp_", "gho_", "ghs_"))) + draw(
            st.text(alnum, min_size=36, max_size=36)
        )
    elif kind == "slack":
        token = "xoxb-" + draw(st.text(string.digits, min_size=10, max_size=12)) + "-abcDEF123"
    else:
        token = "sk_live_" + draw(st.text(alnum, min_size=24, max_size=24))
    return Planted(token, (token,))


FORMS = {
    "key_value": key_value(),
    "quoted_key_value": quoted_key_value(),
    "headers": headers(),
    "bearer": bearer_anywhere(),
    "url_userinfo": url_userinfo(),
    "jwt": jwts(),
    "provider_token": provider_tokens(),
}
any_planted = st.one_of(*FORMS.values())

# Text around the form: words and punctuation, never a newline (a header's value runs to
# the end of its line, which must not end inside the form).
_AROUND = string.ascii_letters + string.digits + " .,;!?()-_/'\"#"
surroundings = st.text(_AROUND, max_size=40)


@st.composite
def planted_in_text(draw: st.DrawFn, forms: st.SearchStrategy[Planted] = any_planted) -> Planted:
    """A planted form between generated text (that does not itself hold the secret)."""
    form = draw(forms)
    before, after = draw(surroundings), draw(surroundings)
    text = f"{before} {form.text} {after}".strip()
    around = f"{before} {after}"
    if any(secret in around or secret in "[redacted]***" for secret in form.secrets):
        from hypothesis import assume

        assume(False)
    return Planted(text, form.secrets)
