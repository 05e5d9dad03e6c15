"""`__all__` stays honest: what is listed exists, what is public is listed, and every
public name of the capability packages is importable from `coordination` itself."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import coordination

# Capability packages whose public names are re-exported by `coordination`. `testing`,
# `demo` and `backends` are reached through their own modules (the Redis backend needs an
# optional extra).
CAPABILITIES = ("validation", "error_handling", "performance", "integration", "observability")
OWN_MODULES = ("testing", "backends", "demo")


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


def test_top_level_all_is_honest() -> None:
    check_module(coordination)


@pytest.mark.parametrize("name", public_packages())
def test_subpackage_all_is_honest(name: str) -> None:
    check_module(importlib.import_module(f"coordination.{name}"))


@pytest.mark.parametrize("name", [n for n in public_packages() if n in CAPABILITIES])
def test_capability_names_are_importable_from_the_top(name: str) -> None:
    module = importlib.import_module(f"coordination.{name}")
    missing = [n for n in module.__all__ if n not in coordination.__all__]
    assert not missing, f"coordination.__all__ lacks {name}'s {missing}"
    for exported in module.__all__:
        assert getattr(coordination, exported) is getattr(module, exported)


def test_every_public_package_is_known() -> None:
    unknown = set(public_packages()) - set(CAPABILITIES) - set(OWN_MODULES)
    assert not unknown, f"new public packages {unknown}: add them to CAPABILITIES or OWN_MODULES"


def test_version_is_exposed() -> None:
    from importlib.metadata import version

    assert coordination.__version__ == version("coordination-systems")
