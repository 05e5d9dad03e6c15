"""The layers hold where import-linter cannot look, and the one wiring point is honest.

``make layers`` (``lint-imports``, the contract in pyproject.toml) sees every ``import``
statement, lazy ones inside functions included. It does not see imports made by name:
``importlib.import_module("coordination.backends.redis")`` or a ``"module:attribute"``
string resolved later. This scan finds those in the source and holds them to the same
layers, so a dependency cannot be hidden in a string either.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import coordination
from coordination import _shared_state
from coordination._errors import ConfigError

SRC = Path(coordination.__file__).parent

# Lowest first, as in pyproject.toml's contract; the core is every coordination/_*.py.
LAYERS = (
    ("core",),
    ("validation", "error_handling", "performance"),
    ("backends",),
    ("integration", "observability"),
    ("testing", "demo", "_cli", "__main__"),
)
CAPABILITIES = LAYERS[1]

# Imports by a name computed at run time, where the name comes from a table that is
# itself checked: the package facades (their tables are checked by test_exported_members),
# the wiring point (BUILTIN, checked below) and the command line (the top layer); and the
# user's own exception classes named in the configuration.
DYNAMIC_IMPORTS_ALLOWED = {
    "coordination._lazy",
    "coordination._shared_state",
    "coordination._cli",
    # trip_on / breaker_ignores name the user's exception classes in the configuration
    # (checked dotted names): imported when a plan is built, never a module of ours.
    "coordination.error_handling._outcomes",
}
# Strings naming a higher layer on purpose: the table of the one wiring point.
WIRING_POINT = "coordination._shared_state"

MODULE_REFERENCE = re.compile(r"^coordination(\.[A-Za-z_]\w*)+(:[A-Za-z_][\w.]*)?$")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:
        return len(LAYERS)  # the package facade: above everything
    head = parts[1]
    for rank, members in enumerate(LAYERS):
        if head in members:
            return rank
    assert head.startswith("_"), f"{name}: a public package no layer lists"
    return 0


def resolve(importer: str, target: str, package: str | None, is_package: bool) -> str:
    if not target.startswith("."):
        return target
    base = package or (importer if is_package else importer.rpartition(".")[0])
    level = len(target) - len(target.lstrip("."))
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    rest = target.lstrip(".")
    return f"{base}.{rest}" if rest else base


def is_our_module(name: str) -> bool:
    """Whether ``name`` is a module of this package (not a logger or metric name)."""
    relative = Path(*name.split(".")[1:])
    return (SRC / relative).with_suffix(".py").is_file() or (
        SRC / relative / "__init__.py"
    ).is_file()


def is_import_call(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in {"import_module", "__import__"}


def by_name_imports(path: Path) -> tuple[list[tuple[int, str]], list[int]]:
    """(line, module) of every import by a constant name or ``"module:attr"`` string, and
    the lines importing by a name computed at run time."""
    importer = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    dynamic: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and is_import_call(node) and node.args:
            first = node.args[0]
            package = node.args[1] if len(node.args) > 1 else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                pkg = importer if isinstance(package, ast.Name) else None
                found.append((node.lineno, resolve(importer, first.value, pkg, is_package)))
            else:
                dynamic.append(node.lineno)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_REFERENCE.match(node.value)
            and is_our_module(node.value.partition(":")[0])
        ):
            found.append((node.lineno, node.value.partition(":")[0]))
    return sorted(set(found)), dynamic


SOURCES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_no_import_by_name_reaches_a_higher_layer(path: Path) -> None:
    importer = module_name(path)
    if importer == WIRING_POINT:
        return  # its table is the declared exception, checked below
    found, dynamic = by_name_imports(path)
    rank = layer_of(importer)
    upward = [
        f"line {line}: {target}"
        for line, target in found
        if target.split(".")[0] == "coordination" and layer_of(target) > rank
    ]
    assert not upward, f"{importer} imports a higher layer by name: {upward}"
    if importer not in DYNAMIC_IMPORTS_ALLOWED:
        assert not dynamic, f"{importer} imports by a computed name at lines {dynamic}"


@pytest.mark.parametrize("package", CAPABILITIES)
def test_capabilities_do_not_import_each_other_even_lazily(package: str) -> None:
    # lint-imports checks this too; here it also holds when pytest runs alone.
    offenders = []
    for path in sorted((SRC / package).rglob("*.py")):
        importer = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                relative = "." * node.level + (node.module or "")
                target = resolve(importer, relative, None, path.name == "__init__.py")
            elif isinstance(node, ast.Import):
                target = node.names[0].name
            else:
                continue
            parts = target.split(".")
            if (
                parts[0] == "coordination"
                and len(parts) > 1
                and parts[1] != package
                and layer_of(target) >= layer_of(importer)
            ):
                offenders.append(f"{importer} line {node.lineno}: {target}")
    assert not offenders, offenders


def test_the_wiring_table_names_backends_only_and_matches_the_entry_points() -> None:
    for scheme, target in _shared_state.BUILTIN.items():
        module, _, attribute = target.partition(":")
        assert layer_of(module) == LAYERS.index(("backends",)), (scheme, target)
        assert attribute, target
    declared = {ep.name: ep.value for ep in entry_points(group=_shared_state.ENTRY_POINT_GROUP)}
    assert declared == dict(_shared_state.BUILTIN), "pyproject's entry points drifted"


def test_an_unknown_scheme_is_a_config_error_naming_the_schemes() -> None:
    with pytest.raises(
        ConfigError, match=r"scheme 'memcached'.*redis://, rediss://, unix://"
    ) as err:
        _shared_state.provider_for("memcached://user:secret@cache:11211")
    assert err.value.field == "redis_url"
    assert "secret" not in str(err.value)
    with pytest.raises(ConfigError, match="without a scheme"):
        _shared_state.provider_for("localhost:6379")


def test_the_error_handler_refuses_an_unknown_scheme_when_built() -> None:
    from coordination.error_handling import CoordinationErrorHandler

    with pytest.raises(ConfigError, match="no shared-state backend"):
        CoordinationErrorHandler({"redis_url": "http://cache:6379"})


# A backend shipped by another distribution: its entry point is all it takes.
PLUGIN = """
class Store:
    def __init__(self, config):
        self.config = config
    def breaker(self, name, settings, *, clock, on_transition):
        raise AssertionError("not called in this test")
    def rate_limiter(self, rate, *, clock):
        return ("limiter", str(rate))

class Provider:
    made = []
    def shared_state(self, config):
        self.made.append(config.redis_url)
        return Store(config)
    def error_collectors(self):
        return ()

provider = Provider()
"""

PLUGIN_CHECK = textwrap.dedent(
    """
    import sys
    from coordination import CoordinationErrorHandler
    import memo_backend

    handler = CoordinationErrorHandler({"redis_url": "memo://shared/0"})
    assert memo_backend.provider.made == ["memo://shared/0"], memo_backend.provider.made
    assert handler._rate_limiter_factory.__self__.config.redis_url == "memo://shared/0"
    assert "coordination.backends.redis" not in sys.modules, "the built-in was imported"
    print("plugin ok")
    """
)


def test_a_backend_from_another_distribution_is_found_by_its_entry_point(
    tmp_path: Path,
) -> None:
    (tmp_path / "memo_backend.py").write_text(PLUGIN, encoding="utf-8")
    info = tmp_path / "memo_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memo-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[coordination.backends]\nmemo = memo_backend:provider\n", encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, "-c", PLUGIN_CHECK],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "plugin ok" in done.stdout


def test_a_scrape_does_not_import_a_backend_nobody_used() -> None:
    script = textwrap.dedent(
        """
        import sys
        from coordination._shared_state import error_collectors
        assert error_collectors() == []
        assert "coordination.backends.redis" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
