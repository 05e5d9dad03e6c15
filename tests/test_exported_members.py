"""`__all__` stays honest: what is listed exists, what is public is listed; a subpackage
exports the types its public objects hand out (the snapshots); the top level holds the
user-facing names only (at most 42), not every subpackage name, and the names that left it
still work, for one release, with a DeprecationWarning naming their new place."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
import warnings
from types import ModuleType
from typing import Any

import pytest

import coordination

# Public packages whose names are reached through their own modules; the top level
# re-exports only the user-facing ones.
CAPABILITIES = ("validation", "error_handling", "performance", "integration", "observability")
OWN_MODULES = ("testing", "backends", "demo")
# 41: reload_config joined (issue 16): live reload is a process-wide act, like
# default_coordination(), and a service calls it without knowing where the set lives
# 42: json_log_formatter joined (issue 18): it goes into the application's logging
# setup (a handler, or dictConfig's "()"), which knows nothing of the library's layout
MAX_TOP_LEVEL = 42


def public_packages() -> list[str]:
    return sorted(
        name
        for _, name, is_package in pkgutil.iter_modules(coordination.__path__)
        if is_package and not name.startswith("_")
    )


def defined_here(module: ModuleType, value: object) -> bool:
    owner = getattr(value, "__module__", None)
    return isinstance(owner, str) and owner.startswith("coordination")


def check_module(module: ModuleType) -> None:
    exported = list(module.__all__)
    # The order itself is ruff's business (RUF022, isort-style); here: no duplicates.
    assert len(set(exported)) == len(exported), f"{module.__name__}.__all__ has duplicates"
    for name in exported:
        # hasattr also resolves the names a module imports lazily (module __getattr__)
        assert hasattr(module, name), f"{module.__name__}.__all__ lists missing {name!r}"
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and defined_here(module, value)
    }
    missing = public - set(exported)
    assert not missing, f"{module.__name__} has public names missing from __all__: {missing}"
    assert set(exported) <= set(dir(module)), f"dir({module.__name__}) lacks names of __all__"


def test_top_level_all_is_honest() -> None:
    check_module(coordination)


def test_the_top_level_is_small() -> None:
    assert len(coordination.__all__) <= MAX_TOP_LEVEL, len(coordination.__all__)


@pytest.mark.parametrize("name", public_packages())
def test_subpackage_all_is_honest(name: str) -> None:
    check_module(importlib.import_module(f"coordination.{name}"))


def test_redis_backend_all_is_honest() -> None:
    check_module(importlib.import_module("coordination.backends.redis"))


# The public methods whose return types users name (annotations, isinstance): the types
# they return, the types of those types' fields and of their methods' results, and so on.
SNAPSHOT_DOORS = {
    "error_handling": [("CoordinationErrorHandler", "snapshot")],
    "performance": [("CoordinationPerformanceMonitor", "snapshot")],
    "integration": [
        ("CoordinationMiddleware", "http_snapshot"),
        ("CoordinationASGIMiddleware", "http_snapshot"),
    ],
}


def exported_names() -> dict[str, Any]:
    names: dict[str, Any] = {}
    for package in (*CAPABILITIES, *OWN_MODULES, "backends.redis"):
        module = importlib.import_module(f"coordination.{package}")
        names.update({name: getattr(module, name) for name in module.__all__})
    return names


def classes_named(hint: Any) -> set[type]:
    found = {hint} if isinstance(hint, type) else set()
    for argument in typing.get_args(hint):
        found |= classes_named(argument)
    return found


def handed_out(cls: type, names: dict[str, Any]) -> set[type]:
    """The library's classes an instance of ``cls`` hands out: fields and results."""
    hints: list[Any] = []
    if dataclasses.is_dataclass(cls):
        hints += typing.get_type_hints(cls, localns=names).values()
    for name, member in vars(cls).items():
        function = member.fget if isinstance(member, property) else member
        if not name.startswith("_") and inspect.isfunction(function):
            hints.append(typing.get_type_hints(function, localns=names).get("return"))
    return {
        found
        for hint in hints
        for found in classes_named(hint)
        if found.__module__.startswith("coordination") and not getattr(found, "_is_protocol", False)
    }


@pytest.mark.parametrize("package", sorted(SNAPSHOT_DOORS))
def test_a_subpackage_exports_the_snapshot_types_it_hands_out(package: str) -> None:
    """Each door's return type is in its own subpackage's ``__all__``; every class reached
    from it is exported somewhere (its subpackage or, if user-facing, the top level).
    Protocols (``LatencyLike``) describe what a reader may rely on: not required."""
    module = importlib.import_module(f"coordination.{package}")
    names = {
        **exported_names(),
        **{name: getattr(coordination, name) for name in coordination.__all__},
    }
    returned = {
        found
        for owner, method in SNAPSHOT_DOORS[package]
        for found in classes_named(
            typing.get_type_hints(getattr(getattr(module, owner), method), localns=names)["return"]
        )
    }
    assert {cls.__qualname__ for cls in returned} <= set(module.__all__)
    pending, reached = set(returned), set()
    while pending:
        cls = pending.pop()
        reached.add(cls)
        pending |= handed_out(cls, names) - reached
    unexported = {cls.__qualname__ for cls in reached} - set(names)
    assert not unexported, f"handed out by coordination.{package}, exported nowhere: {unexported}"


def test_top_level_names_are_their_subpackages_objects() -> None:
    for name in coordination.__all__:
        value = getattr(coordination, name)
        owner = getattr(value, "__module__", "")
        for package in CAPABILITIES:
            module = importlib.import_module(f"coordination.{package}")
            if name in module.__all__:
                assert getattr(module, name) is value, (name, package)
        assert not owner or owner.startswith("coordination") or name == "__version__"


@pytest.mark.parametrize("name", sorted(coordination._MOVED))
def test_a_moved_name_still_works_and_says_where_it_went(name: str) -> None:
    place = coordination._MOVED[name]
    module = importlib.import_module(place)
    assert name in module.__all__, f"{place} does not export {name}"
    assert name not in coordination.__all__
    assert name not in dir(coordination)
    with pytest.warns(DeprecationWarning, match=rf"coordination\.{name} moved to {place}\.{name}"):
        value = getattr(coordination, name)
    assert value is getattr(module, name)


def test_a_moved_name_warns_at_every_use_and_from_import_too() -> None:
    with pytest.warns(DeprecationWarning, match="coordination.error_handling.BreakerFactory"):
        from coordination import BreakerFactory  # noqa: F401
    with pytest.warns(DeprecationWarning, match="moved to coordination.error_handling"):
        coordination.BreakerFactory  # noqa: B018


def test_the_user_facing_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in coordination.__all__:
            getattr(coordination, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        coordination.Nope  # noqa: B018


def test_every_public_package_is_known() -> None:
    unknown = set(public_packages()) - set(CAPABILITIES) - set(OWN_MODULES)
    assert not unknown, f"new public packages {unknown}: add them to CAPABILITIES or OWN_MODULES"


def test_version_is_exposed() -> None:
    from importlib.metadata import version

    assert coordination.__version__ == version("coordination-systems")
