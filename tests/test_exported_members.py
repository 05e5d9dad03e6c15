"""`__all__` stays honest: what is listed exists, what is public is listed; the top level
holds the user-facing names only (at most 40) and the names that left it still work, for
one release, with a DeprecationWarning naming their new place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from types import ModuleType

import pytest

import coordination

# Public packages whose names are reached through their own modules; the top level
# re-exports only the user-facing ones.
CAPABILITIES = ("validation", "error_handling", "performance", "integration", "observability")
OWN_MODULES = ("testing", "backends", "demo")
MAX_TOP_LEVEL = 40


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
