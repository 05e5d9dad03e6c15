"""Names a package imports on first use (PEP 562), and names that moved elsewhere.

A package lists each public name with the module defining it; ``import package`` then
costs nothing more, and ``package.Name`` imports that one module the first time:

    __getattr__, __dir__ = lazy_attributes(__name__, {"StatusPage": "._status_page"})

Moved names (``moved={"Old": "coordination.new_place"}``) still resolve, for one release,
with a ``DeprecationWarning`` naming their new place at every use; ``dir()`` leaves them
out, so completion offers only the current names.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str,
    lazy: Mapping[str, str],
    moved: Mapping[str, str] | None = None,
    *,
    subpackages: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` (its ``__name__``).

    ``lazy`` maps a name to the module defining it, relative to ``package``; ``moved`` maps
    a name that left it to the absolute module that exports it now; ``subpackages`` are
    reached as attributes too (``coordination.validation`` after ``import coordination``).
    """
    lazy = dict(lazy)
    moved = dict(moved or {})
    subpackages = frozenset(subpackages)

    def __getattr__(name: str) -> Any:
        where = lazy.get(name)
        if where is not None or name in subpackages:
            if where is None:
                value = import_module(f".{name}", package)
            else:
                value = getattr(import_module(where, package), name)
            # Cached on the package: the next access is a plain attribute read.
            setattr(sys.modules[package], name, value)
            return value
        place = moved.get(name)
        if place is not None:
            warnings.warn(
                f"{package}.{name} moved to {place}.{name}: import it from there "
                "(the old name goes away in the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(import_module(place), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *lazy, *subpackages})

    return __getattr__, __dir__
