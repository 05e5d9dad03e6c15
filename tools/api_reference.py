"""Writes docs/api.md, the API reference, from the docstrings of the public names.

    .venv/bin/python tools/api_reference.py > docs/api.md    # after changing the API
    .venv/bin/python tools/api_reference.py --check          # exit 1 while it is stale

The public names are ``coordination.__all__`` and the ``__all__`` of every public
subpackage (found by walking the package, so a new one is listed without editing this
file). Each object is documented once, under the subpackage that owns it (the one its
defining module lives in); the top level lists the rest as links. An entry is the
signature as a stub (the class with its public methods and the first paragraph of each
one's docstring), then the whole docstring. tests/docs/test_api_reference.py fails while
docs/api.md and this output disagree.

The output depends on the source only: annotations are rendered as written (every module
uses ``from __future__ import annotations``), defaults by value for literals and by name
for functions, classes and enum members, ``...`` for anything else (a sentinel's repr
holds a memory address); docstrings are the objects' own, never a builtin base's (which
change between Python versions).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"
PACKAGE = "coordination"
WIDTH = 88  # ruff's line length: the stubs are wrapped as ruff would wrap them
# Dunder members worth a reader's eye: the ones that make a class a context manager,
# callable, iterable or composable. Every other dunder is plumbing.
_SHOWN_DUNDERS = frozenset(
    {
        "__call__",
        "__enter__",
        "__exit__",
        "__aenter__",
        "__aexit__",
        "__iter__",
        "__aiter__",
        "__len__",
        "__contains__",
        "__getitem__",
        "__or__",
        "__and__",
    }
)
# "coordination.sub._private.Name", "_time.Clock", "typing.Any" → the bare name, as the
# reader imports it; other modules' names (re.Pattern, redis.Redis) keep their module.
_QUALIFIER = re.compile(
    r"(?<![\w.])(?:coordination(?:\.\w+)*|_\w+|typing|collections\.abc)\.(?=[A-Za-z_])"
)
# "pathlib._local.Path" (3.13) → "pathlib.Path": a module's private parts are not where
# its names are imported from, and they move between Python versions.
_PRIVATE_PART = re.compile(r"\b([a-z]\w*)(?:\._\w+)+\.")
_LITERALS = (type(None), bool, int, float, complex, str, bytes)


# --- finding the public names ---------------------------------------------------------


def public_modules() -> list[ModuleType]:
    """The package and its public subpackages with a non-empty ``__all__``, sorted."""
    root = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(root.__path__, f"{PACKAGE}.", onerror=_ignore):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    modules = [importlib.import_module(name) for name in sorted(names)]
    return [module for module in modules if getattr(module, "__all__", None)]


def _ignore(name: str) -> None:
    """A subpackage that cannot be imported (a missing extra) is left out, not fatal."""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    obj: object
    module: str  # the public module it is documented under


def entries(modules: list[ModuleType]) -> tuple[dict[str, list[Entry]], dict[str, list[Entry]]]:
    """Each public object once, under its home; and per module the names kept elsewhere."""
    listed: dict[int, list[tuple[ModuleType, str]]] = {}
    objects: dict[int, object] = {}
    for module in modules:
        for name in sorted(module.__all__):
            obj = getattr(module, name)
            listed.setdefault(id(obj), []).append((module, name))
            objects[id(obj)] = obj
    homes: dict[str, list[Entry]] = {module.__name__: [] for module in modules}
    elsewhere: dict[str, list[Entry]] = {module.__name__: [] for module in modules}
    for key, places in listed.items():
        obj = objects[key]
        home_module, home_name = _home(obj, places)
        homes[home_module.__name__].append(Entry(home_name, obj, home_module.__name__))
        for module, name in places:
            if module is not home_module or name != home_name:  # another place, or an alias
                elsewhere[module.__name__].append(Entry(name, obj, home_module.__name__))
    for table in (homes, elsewhere):
        for found in table.values():
            found.sort(key=lambda entry: (entry.name.lower(), entry.name))
    return homes, elsewhere


def _home(obj: object, places: list[tuple[ModuleType, str]]) -> tuple[ModuleType, str]:
    """The deepest listing module the object is defined in; else the first subpackage."""
    defined_in = getattr(obj, "__module__", None) or ""
    inside = [
        place
        for place in places
        if defined_in == place[0].__name__ or defined_in.startswith(place[0].__name__ + ".")
    ]
    if inside:  # and of two names in one module, the object's own (not an alias)
        own = getattr(obj, "__name__", None)
        return max(inside, key=lambda place: (len(place[0].__name__), place[1] == own))
    deeper = [place for place in places if place[0].__name__ != PACKAGE]
    return (deeper or places)[0]


# --- signatures -------------------------------------------------------------------------


def annotation(value: object) -> str:
    if isinstance(value, typing.ForwardRef):  # a NamedTuple's field under postponed annotations
        value = value.__forward_arg__
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return _QUALIFIER.sub("", _PRIVATE_PART.sub(r"\1.", text))


def default(value: object) -> str:
    """A default as source text that is the same on every machine and every run."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, _LITERALS):
        return repr(value)
    if isinstance(value, tuple | frozenset | list) and all(
        isinstance(item, _LITERALS) for item in value
    ):
        return repr(value)
    if isinstance(value, dict) and not value:
        return "{}"
    qualname = getattr(value, "__qualname__", None)
    if isinstance(qualname, str) and "<" not in qualname:
        module = getattr(value, "__module__", None) or ""
        if module in ("builtins", "") or module.startswith(PACKAGE):
            return qualname
        return _PRIVATE_PART.sub(r"\1.", f"{module}.{qualname}")
    return "..."


def _quoted(text: str) -> str:
    """``repr`` with double quotes, as ruff formats a string."""
    rendered = repr(text)
    if rendered.startswith("'") and '"' not in text:
        rendered = f'"{rendered[1:-1]}"'
    return rendered


def _factory(factory: Callable[[], object]) -> str:
    """A dataclass field's ``default_factory`` as the value it makes."""
    shown = {list: "[]", dict: "{}", tuple: "()", set: "set()", frozenset: "frozenset()"}
    if factory in shown:
        return shown[factory]
    name = default(factory)
    return "..." if name == "..." else f"{name}()"


def _parameters(
    signature: inspect.Signature,
    first: str | None,
    factories: dict[str, Callable[[], object]] | None = None,
) -> list[str]:
    rendered: list[str] = [first] if first else []
    star_done = False
    positional_only = False
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if positional_only and kind is not inspect.Parameter.POSITIONAL_ONLY:
            rendered.append("/")
            positional_only = False
        if kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_only = True
        if kind is inspect.Parameter.KEYWORD_ONLY and not star_done:
            rendered.append("*")
            star_done = True
        text = parameter.name
        if kind is inspect.Parameter.VAR_POSITIONAL:
            text = f"*{text}"
            star_done = True
        elif kind is inspect.Parameter.VAR_KEYWORD:
            text = f"**{text}"
        has_annotation = parameter.annotation is not inspect.Parameter.empty
        if has_annotation:
            text += f": {annotation(parameter.annotation)}"
        if parameter.default is not inspect.Parameter.empty:
            if factories and parameter.name in factories:
                value = _factory(factories[parameter.name])
            else:
                value = default(parameter.default)
            text += (" = " if has_annotation else "=") + value
        rendered.append(text)
    if positional_only:
        rendered.append("/")
    return rendered


def _def_line(
    indent: str, keyword: str, name: str, parameters: list[str], returns: str, tail: str
) -> list[str]:
    """``def name(...) -> R:`` on one line, or one parameter a line when it is too long."""
    arrow = f" -> {returns}" if returns else ""
    line = f"{indent}{keyword} {name}({', '.join(parameters)}){arrow}:{tail}"
    if len(line) <= WIDTH or not parameters:
        return [line]
    inner = indent + "    "
    return [
        f"{indent}{keyword} {name}(",
        *(f"{inner}{parameter}," for parameter in parameters),
        f"{indent}){arrow}:{tail}",
    ]


def _signature(obj: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin without a text signature
        return None


def _returns(signature: inspect.Signature) -> str:
    if signature.return_annotation is inspect.Signature.empty:
        return ""
    return annotation(signature.return_annotation)


# --- docstrings -------------------------------------------------------------------------


def own_doc(obj: object) -> str:
    """The object's own docstring, cleaned; '' when it has none of its own."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        written_by_dataclasses = isinstance(doc, str) and doc.startswith(f"{obj.__name__}(")
        if dataclasses.is_dataclass(obj) and written_by_dataclasses:
            doc = None
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def first_paragraph(doc: str) -> str:
    paragraph = doc.split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def markdown(doc: str) -> str:
    """A docstring as Markdown: doctest runs and ``::`` blocks become fenced code."""
    lines = doc.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.lstrip().startswith(">>>"):
            block: list[str] = []
            while index < len(lines) and lines[index].strip():
                block.append(lines[index])
                index += 1
            out.extend(["", "```pycon", *textwrap.dedent("\n".join(block)).splitlines(), "```"])
            continue
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-1]  # "foo::" reads "foo:"
            out.append(stripped.rstrip(":") + ":" if stripped.strip() != ":" else "")
            index += 1
            block = []
            while index < len(lines) and (not lines[index].strip() or lines[index][:1] == " "):
                block.append(lines[index])
                index += 1
            code = textwrap.dedent("\n".join(block)).strip("\n")
            out.extend(["", "<!-- fragment -->", "```python", *code.splitlines(), "```", ""])
            continue
        out.append(line)
        index += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def _docstring(indent: str, text: str) -> list[str]:
    """A stub's docstring, wrapped at ``WIDTH``: raw when it holds backslashes."""
    text = text.replace('"""', "'''")
    if text.endswith('"'):
        text += " "
    quotes = 'r"""' if "\\" in text else '"""'
    line = f'{indent}{quotes}{text}"""'
    if len(line) <= WIDTH:
        return [line]
    wrapped = textwrap.wrap(
        text,
        WIDTH - len(indent) - 3,  # room for the closing quotes on the last line
        initial_indent=quotes,
        break_on_hyphens=False,
        break_long_words=False,
    )
    wrapped[-1] += '"""'
    return [indent + part for part in wrapped]


# --- stubs ------------------------------------------------------------------------------


def function_stub(name: str, function: Callable[..., Any]) -> list[str]:
    signature = _signature(function)
    keyword = "async def" if inspect.iscoroutinefunction(function) else "def"
    if signature is None:
        return [f"{keyword} {name}(*args, **kwargs): ..."]
    return _def_line("", keyword, name, _parameters(signature, None), _returns(signature), " ...")


def _bases(cls: type) -> str:
    if typing.NamedTuple in getattr(cls, "__orig_bases__", ()):
        return "(NamedTuple)"
    names = []
    for base in cls.__bases__:
        if base is object:
            continue
        origin = typing.get_origin(base) or base
        names.append(getattr(origin, "__name__", annotation(base)))
    return f"({', '.join(names)})" if names else ""


def _own_classes(cls: type) -> list[type]:
    """The class and its bases defined in this package, nearest first."""
    return [klass for klass in cls.__mro__ if klass.__module__.startswith(PACKAGE)]


def members(cls: type) -> Iterator[tuple[str, object, type]]:
    """Public members in definition order, the class's own first, then its bases'."""
    seen: set[str] = set()
    for klass in _own_classes(cls):
        for name, value in vars(klass).items():
            if name in seen:
                continue
            if name.startswith("_") and name not in _SHOWN_DUNDERS:
                continue
            seen.add(name)
            yield name, value, klass


def _member_doc(cls: type, name: str) -> str:
    for klass in _own_classes(cls):
        value = vars(klass).get(name)
        if value is None:
            continue
        target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if isinstance(value, property | staticmethod | classmethod) or callable(target):
            doc = own_doc(target)
            if doc:
                return first_paragraph(doc)
    return ""


def class_stub(name: str, cls: type) -> list[str]:
    lines = [f"class {name}{_bases(cls)}:"]
    body: list[list[str]] = []
    is_protocol = bool(getattr(cls, "_is_protocol", False))
    if issubclass(cls, enum.Enum):
        body.append([f"    {member.name} = {default(member.value)}" for member in cls])
    elif not is_protocol and _has_constructor(cls):
        signature = _signature(cls)
        factories = {
            field.name: field.default_factory
            for field in (dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ())
            if field.default_factory is not dataclasses.MISSING
        }
        if signature is not None:
            parameters = _parameters(signature, "self", factories)
            body.append(_def_line("    ", "def", "__init__", parameters, "None", " ..."))
    if is_protocol:
        hints = [
            f"    {attribute}: {annotation(hint)}"
            for klass in _own_classes(cls)
            for attribute, hint in vars(klass).get("__annotations__", {}).items()
            if not attribute.startswith("_")
        ]
        if hints:
            body.append(hints)
    for member_name, value, _ in members(cls):
        rendered = _member(cls, member_name, value)
        if rendered:
            body.append(rendered)
    if not body:
        return [*lines, "    ..."]
    for index, block in enumerate(body):
        if index and (len(block) > 1 or len(body[index - 1]) > 1):
            lines.append("")
        lines.extend(block)
    return lines


def _has_constructor(cls: type) -> bool:
    if dataclasses.is_dataclass(cls):
        return True
    return any("__init__" in vars(k) or "__new__" in vars(k) for k in _own_classes(cls))


def _member(cls: type, name: str, value: object) -> list[str]:
    decorator = ""
    if isinstance(value, property):
        function = value.fget
        decorator = "@property"
    elif isinstance(value, classmethod):
        function = value.__func__
        decorator = "@classmethod"
    elif isinstance(value, staticmethod):
        function = value.__func__
        decorator = "@staticmethod"
    elif inspect.isfunction(value) or inspect.ismethoddescriptor(value):
        function = value
    elif hasattr(value, "__get__") and hasattr(value, "func"):  # functools.cached_property
        function = value.func
        decorator = "@cached_property"
    else:
        return []
    if function is None:
        return []
    signature = _signature(function)
    keyword = "async def" if inspect.iscoroutinefunction(function) else "def"
    doc = _member_doc(cls, name)
    tail = "" if doc else " ..."
    if signature is None:
        head = [f"    {keyword} {name}(self, *args, **kwargs):{tail}"]
    else:
        head = _def_line(
            "    ", keyword, name, _parameters(signature, None), _returns(signature), tail
        )
    lines = [f"    {decorator}"] if decorator else []
    lines.extend(head)
    if doc:
        lines.extend(_docstring("        ", doc))
    return lines


def stub(name: str, obj: object) -> list[str]:
    if inspect.isclass(obj):
        return class_stub(name, obj)
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return function_stub(name, obj)
    if typing.get_origin(obj) is not None or isinstance(obj, typing.TypeVar):
        return [f"{name} = {annotation(obj)}"]
    if callable(obj):  # an instance with __call__ (a process-wide default, say)
        return function_stub(name, obj)
    if isinstance(obj, _LITERALS) and not name.startswith("__"):
        return [f"{name}: {type(obj).__name__} = {default(obj)}"]
    return [f"{name}: {type(obj).__name__}"]


# --- the page ---------------------------------------------------------------------------


class Slugs:
    """GitHub's heading anchors: lower case, punctuation dropped, repeats numbered."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, heading: str) -> str:
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = self._seen.get(slug, 0)
        self._seen[slug] = count + 1
        return slug if count == 0 else f"{slug}-{count}"


def render() -> str:
    modules = public_modules()
    homes, elsewhere = entries(modules)
    slugs = Slugs()
    slugs("API reference")
    slugs("Contents")
    anchors: dict[tuple[str, str], str] = {}
    module_anchor: dict[str, str] = {}
    for module in modules:
        module_anchor[module.__name__] = slugs(f"`{module.__name__}`")
        for entry in homes[module.__name__]:
            anchors[(module.__name__, entry.name)] = slugs(f"`{entry.name}`")

    out = [
        "# API reference",
        "",
        "<!-- Generated by tools/api_reference.py from the docstrings: do not edit by hand.",
        "     Regenerate with `.venv/bin/python tools/api_reference.py > docs/api.md`. -->",
        "",
        "Every public name of `coordination`, with its signature and docstring. The names",
        "of `coordination.__all__` are importable from the top level; the others from their",
        "subpackage. Each object is described once, under the subpackage that owns it.",
        "Signatures are written as stubs: a class shows its constructor and its public",
        "methods, each with the first paragraph of its docstring. Guides explain how the",
        "parts work together: start with the [quick start](quickstart.md); coming from",
        "the integration-patterns spec, read [migration.md](migration.md).",
        "",
        "## Contents",
        "",
    ]
    for module in modules:
        summary = first_paragraph(own_doc(module)).removeprefix(f"{module.__name__}: ")
        out.append(f"- [`{module.__name__}`](#{module_anchor[module.__name__]}) — {summary}")
    for module in modules:
        out.extend(_module_section(module, homes, elsewhere, anchors))
    return "\n".join(out).rstrip("\n") + "\n"


def _module_section(
    module: ModuleType,
    homes: dict[str, list[Entry]],
    elsewhere: dict[str, list[Entry]],
    anchors: dict[tuple[str, str], str],
) -> Iterable[str]:
    name = module.__name__
    yield from ["", f"## `{name}`", "", markdown(own_doc(module))]
    others = elsewhere[name]
    if others:
        where = "here" if name == PACKAGE else f"from `{name}`"
        yield from [
            "",
            f"Also importable {where}, and described with the module that owns them:",
            "",
        ]
        for owner in sorted({entry.module for entry in others}):
            links = ", ".join(
                f"[`{entry.name}`](#{anchors[(owner, _home_name(homes, entry))]})"
                for entry in others
                if entry.module == owner
            )
            yield f"- `{owner}`: {links}"
    for entry in homes[name]:
        yield from ["", f"### `{entry.name}`", "", "<!-- fragment -->", "```python"]
        yield from stub(entry.name, entry.obj)
        yield "```"
        doc = own_doc(entry.obj) if _documents_itself(entry.obj) else ""
        if doc:
            yield from ["", markdown(doc)]


def _home_name(homes: dict[str, list[Entry]], entry: Entry) -> str:
    for found in homes[entry.module]:
        if found.obj is entry.obj:
            return found.name
    raise LookupError(entry.name)


def _documents_itself(obj: object) -> bool:
    """Classes, functions and callables carry their docs; a str's __doc__ is str's."""
    return inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)


def is_current(path: Path = DOC) -> bool:
    """Whether ``path`` holds exactly what ``render()`` makes now."""
    return path.exists() and path.read_text(encoding="utf-8") == render()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 when {DOC.relative_to(ROOT)} is stale"
    )
    arguments = parser.parse_args(argv)
    if not arguments.check:
        sys.stdout.write(render())
        return 0
    if is_current():
        return 0
    page = DOC.relative_to(ROOT)
    print(f"{page} is out of date: run .venv/bin/python tools/api_reference.py > {page}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
