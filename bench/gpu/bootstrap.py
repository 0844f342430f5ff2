"""Before any measurement: check the bundle's files, install what the machine lacks privately, set up GL.

Stdlib only. ``manifest.json`` (written by the builder) lists every carried file with its SHA-256;
a file that is missing or differs stops the run before it is installed or unpacked (a bundle
truncated in transit, or altered, is not run). Wheels go into ``work/site`` with ``pip install
--target`` (never the interpreter's site-packages), only for packages the machine lacks or has at
a version that does not meet the project's need; the workers see them first on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.gpu.gl import GlSetup, egl_environment
from bench.gpu.manifest import WHEELS, canonical
from bench.gpu.wheels import PlanItem, install_plan, install_private, installed_versions, sha256_file, wheel_fits

__all__ = ["BundleError", "Bundle", "load_bundle", "Prepared", "prepare", "worker_env"]


class BundleError(RuntimeError):
    """The bundle cannot be run here; the message says why."""


@dataclass
class Bundle:
    root: Path
    manifest: dict[str, Any]

    def path(self, rel: str) -> Path:
        return self.root / rel

    def files(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.manifest["files"] if f["kind"] == kind]


def load_bundle(root: Path, *, verify: bool = True) -> Bundle:
    """Read ``manifest.json`` and check every listed file's size and SHA-256."""
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{root} has no readable manifest.json ({exc}); rebuild it with bench/gpu_bundle.py") from exc
    bundle = Bundle(root, manifest)
    if verify:
        for entry in manifest["files"]:
            path = root / entry["path"]
            if not path.is_file():
                raise BundleError(f"{entry['path']} is missing from the bundle")
            if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
                raise BundleError(f"{entry['path']} differs from the manifest (size or SHA-256): the bundle was "
                                  "damaged or altered; copy it again")
    return bundle


@dataclass
class Prepared:
    site: Path
    plan: list[PlanItem]
    gl: GlSetup
    pip_output: str = ""
    notes: list[str] = field(default_factory=list)

    def installed(self) -> list[dict[str, Any]]:
        return [{"dist": i.spec.dist, "version": i.spec.version, "reason": i.reason} for i in self.plan if i.install]

    def present(self) -> list[dict[str, Any]]:
        return [{"dist": i.spec.dist, "version": i.present, "need": i.spec.need} for i in self.plan if not i.install]


def prepare(bundle: Bundle, work: Path, *, force: list[str], gl_mode: str) -> Prepared:
    """Install the missing wheels under ``work/site`` and set up EGL (``gl_mode``: auto, system, private)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    built_for = bundle.manifest.get("python_version")
    if built_for != python:
        raise BundleError(f"the bundle's wheels are for Python {built_for}, this is {python} "
                          f"({sys.executable}); rebuild with bench/gpu_bundle.py --python-version {python}")
    by_dist = {canonical(parse["dist"]): parse for parse in bundle.files("wheel")}
    plan = install_plan(WHEELS, installed_versions(s.dist for s in WHEELS), force)
    wheels = []
    for item in plan:
        if not item.install:
            continue
        entry = by_dist.get(canonical(item.spec.dist))
        if entry is None or not wheel_fits(entry["path"], python):
            raise BundleError(f"{item.spec.dist} is needed ({item.reason}) but the bundle carries no wheel for "
                              f"Python {python}")
        wheels.append(bundle.path(entry["path"]))
    site = work / "site"
    output = install_private(wheels, site)
    debs = [bundle.path(f["path"]) for f in bundle.files("deb")]
    gl = egl_environment([] if gl_mode == "system" else debs, work / "gl", force_private=gl_mode == "private")
    return Prepared(site, plan, gl, output)


def worker_env(bundle: Bundle, work: Path, prepared: Prepared, extra_lib_dirs: list[str] = ()) -> dict[str, str]:
    """The environment of every worker: private wheels, then the bundle's code, first on the path;
    offline; the project's cache inside the work folder; the GL libraries."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(prepared.site), str(bundle.path("src"))]),
        "TEXT3D_CACHE": str(work / "cache"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(prepared.gl.env)
    libs = [d for d in prepared.gl.env.get("LD_LIBRARY_PATH", "").split(":") if d] + list(extra_lib_dirs)
    if libs:
        env["LD_LIBRARY_PATH"] = ":".join(libs + [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d])
    return env
