"""Wheels: which carried file fits a Python, which packages a machine lacks, and installing them privately.

Stdlib only (``packaging`` from the machine, else the copy inside pip): the bundle's ``run.py``
calls this before anything is installed.

    wheel_fits(filename, python_version)   a cpXY / abi3 / py3 wheel that this Python can install
    install_plan(specs, installed)         which carried packages the machine lacks or has too old
    installed_versions(dists)              what this interpreter has, read from metadata (no imports)
    install_private(wheels, target_dir)    ``pip install --no-index --no-deps --target``: never site-packages
    sha256_file(path)                      the digest the manifest records for every carried file
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from bench.gpu.manifest import WheelSpec, canonical

__all__ = ["WheelName", "parse_wheel_name", "wheel_fits", "installed_versions", "meets", "install_plan",
           "PlanItem", "install_private", "sha256_file"]

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
                    r"-(?P<plat>[^-]+)\.whl$")


@dataclass(frozen=True)
class WheelName:
    dist: str  # canonical
    version: str
    python_tags: tuple[str, ...]
    abi_tags: tuple[str, ...]
    platform_tags: tuple[str, ...]


def parse_wheel_name(filename: str) -> WheelName:
    """The parts of a wheel's file name (PEP 427); ``ValueError`` for anything else."""
    match = _WHEEL.match(Path(filename).name)
    if not match:
        raise ValueError(f"{filename!r} is not a wheel file name")
    return WheelName(canonical(match["name"]), match["version"], tuple(match["py"].split(".")),
                     tuple(match["abi"].split(".")), tuple(match["plat"].split(".")))


def wheel_fits(filename: str, python_version: str, machine: str = "x86_64") -> bool:
    """Can CPython ``python_version`` ("3.12") on Linux ``machine`` install this wheel?

    Pure wheels (``py3``), the exact ``cpXY`` tag, and ``abi3`` wheels built for an older or equal
    CPython; platform ``any`` or a ``manylinux``/``linux`` tag of ``machine``.
    """
    name = parse_wheel_name(filename)
    major, minor = (int(x) for x in python_version.split(".")[:2])
    cp = f"cp{major}{minor}"
    platform_ok = any(p == "any" or (p.endswith(machine) and ("linux" in p)) for p in name.platform_tags)
    if not platform_ok:
        return False
    for py in name.python_tags:
        if py in (f"py{major}", f"py{major}{minor}") or (py == cp and ({cp, "abi3", "none"} & set(name.abi_tags))):
            return True
        if py.startswith(f"cp{major}") and "abi3" in name.abi_tags and int(py[len(f'cp{major}'):] or 0) <= minor:
            return True
    return False


def _specifier_set(spec: str):
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pip always carries one
        from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore[no-redef]
    return SpecifierSet(spec)


def meets(version: str | None, need: str) -> bool:
    """True when an installed ``version`` satisfies the specifier set ``need`` (None: not installed)."""
    if version is None:
        return False
    try:
        return _specifier_set(need).contains(version, prereleases=True)
    except Exception:  # an unparsable local version: treat as not meeting, install ours privately
        return False


def installed_versions(dists: Iterable[str]) -> dict[str, str | None]:
    """``{canonical dist: version or None}`` for this interpreter, from metadata alone (nothing imported)."""
    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[canonical(dist)] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[canonical(dist)] = None
    return out


@dataclass(frozen=True)
class PlanItem:
    spec: WheelSpec
    present: str | None  # the version the machine has, if any
    install: bool
    reason: str


def install_plan(specs: Sequence[WheelSpec], installed: Mapping[str, str | None],
                 force: Iterable[str] = ()) -> list[PlanItem]:
    """One item per carried package: install it unless the machine's version meets ``need``.

    ``force`` names distributions (or ``"all"``) to install privately even when present: the smoke
    test uses it to exercise the install path on a machine that already has everything.
    """
    forced = {canonical(f) for f in force}
    plan = []
    for spec in specs:
        have = installed.get(canonical(spec.dist))
        if "all" in forced or canonical(spec.dist) in forced:
            plan.append(PlanItem(spec, have, True, "forced (--install)"))
        elif have is None:
            plan.append(PlanItem(spec, None, True, "missing"))
        elif not meets(have, spec.need):
            plan.append(PlanItem(spec, have, True, f"{have} does not meet {spec.need}"))
        else:
            plan.append(PlanItem(spec, have, False, f"{have} meets {spec.need}"))
    return plan


def install_private(wheels: Sequence[Path], target_dir: Path, *, timeout_s: float = 300.0) -> str:
    """``pip install --no-index --no-deps --target target_dir`` the given files; returns pip's output.

    ``--target`` never touches the interpreter's site-packages; ``--no-index`` never reaches a
    registry; ``--no-deps``: the plan already decided every package. ``CalledProcessError`` on failure.
    """
    if not wheels:
        return ""
    target_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
            "--disable-pip-version-check", "--no-warn-conflicts", "--upgrade", "--target", str(target_dir),
            *map(str, wheels)]
    # no config file: a machine's pip.conf (constraints, extra indexes) must not change what is installed
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return done.stdout + done.stderr


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
