"""Which of the project's modules the bundle must carry, and which third-party packages they import.

The bundle copies only the ``text3d`` modules its measurements can reach, so it stays small and
never drags in the chain, the neurons or the services. Reachability is read from the source, not
from one run: every ``import``/``from ... import`` anywhere in a module (inside functions too: the
project imports heavy parts lazily) and every string constant that names a ``text3d`` module (the
packages' lazy-export maps, ``text3d.common.lazy``). A module's parent packages come with it.

``third_party_imports`` lists the top-level names of everything else the carried code imports,
outside the standard library: the builder checks each against the target's packages and the
carried wheels.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Iterable

__all__ = ["module_file", "closure", "third_party_imports", "imported_names"]

_MODULE_STRING = re.compile(r"^text3d(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def module_file(root: Path, name: str) -> Path | None:
    """The file of module ``name`` under ``root`` (a package's ``__init__.py``), or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path, module: str) -> tuple[set[str], set[str]]:
    """``(absolute module names imported, candidate module names from string constants)`` of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    imports: set[str] = set()
    strings: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            imports.add(prefix)
            imports.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            strings.add(node.value)
    return imports, strings


def closure(root: Path, start: Iterable[Path], package: str = "text3d", exclude: Iterable[str] = ()) -> set[Path]:
    """Every file of ``package`` reachable from the ``start`` files (which are included when inside ``root``).

    Modules named in ``exclude`` (and what only they reach) are left out.
    """
    excluded = set(exclude)
    todo = [Path(p).resolve() for p in start]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        module = _module_name(root, path)
        imports, strings = imported_names(path, module)
        for name in imports | strings:
            if name != package and not name.startswith(package + "."):
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # parents, and the longest prefix that is a module
                if ".".join(parts[:i]) in excluded:
                    break
                found = module_file(root, ".".join(parts[:i]))
                if found is not None and found.resolve() not in seen:
                    todo.append(found.resolve())
    return {p for p in seen if p.is_relative_to(root.resolve())}


def third_party_imports(root: Path, files: Iterable[Path], own: Iterable[str] = ("text3d", "bench")) -> set[str]:
    """Top-level import names outside the standard library and ``own`` packages."""
    own = set(own)
    names: set[str] = set()
    for path in files:
        imports, _ = imported_names(path, _module_name(root, path))
        for name in imports:
            top = name.split(".")[0]
            if top and top not in own and top not in sys.stdlib_module_names and top != "__future__":
                names.add(top)
    return names
