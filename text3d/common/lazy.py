"""Package exports that load on first use, so importing a package never imports its heavy parts.

A package ``__init__`` lists where each exported name lives; ``lazy_exports`` returns the
module ``__getattr__`` and ``__dir__`` that import the home module only when a name is used::

    _HOMES = {"Miner": "text3d.miner.main", ...}
    __all__ = list(_HOMES)
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose exported names live in ``homes[name]``."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(import_module(homes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
