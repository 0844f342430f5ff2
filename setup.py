"""text3d: a Bittensor subnet for text-to-3D (Shap-E miners, LLaVA + CLIP validators)."""

import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "text3d" / "protocol" / "version.py").read_text()).group(1)
MIN_COMPUTE = "min_compute.yml"  # the subnet's hardware table, at the repository root where people look for it


class BuildPy(build_py):
    """Builds the packages, then copies the repository's ``min_compute.yml`` into ``text3d/ops/doctor/``,
    where an installed ``text3d doctor`` reads it (``text3d.ops.doctor.machine.min_compute_path``):
    a wheel carries no file from outside its packages."""

    def run(self) -> None:
        super().run()
        source = HERE / MIN_COMPUTE
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing: the doctor's hardware table must ship with the package")
        target = Path(self.build_lib) / "text3d" / "ops" / "doctor" / MIN_COMPUTE
        self.mkpath(str(target.parent))
        self.copy_file(str(source), str(target))


# Pins that must not drift (docs/architecture.md, "Pinned versions"): bittensor 11 is the chain SDK and btauth/1
# identity layer (the HTTP transport is ours: FastAPI + uvicorn, httpx), and only this
# torch/torchvision pair imports together.
CORE = [
    "bittensor==11.3.0",
    "torch==2.14.1",
    "torchvision==0.29.1",
    "numpy==2.4.6",
    "trimesh==5.2.0",
    "DracoPy==2.2.0",
    "zstandard>=0.22",
    "pydantic==2.14.4",
    "httpx==0.28.1",
    "fastapi==0.163.2",
    "uvicorn==0.54.0",
    "pydantic-settings==2.16.3",
    "rich>=13",
    "tqdm>=4.66",
    "pillow>=10",
    "prometheus-client==0.26.0",  # /metrics on the miner, the validator and the gateway
]
MINER = [
    "diffusers==0.42.1",
    "transformers==5.24.0",
    "safetensors>=0.4",
    "open_clip_torch==3.3.0",  # ships the CLIP BPE vocabulary used by the tiny tokenizer
]
VALIDATOR = [
    "open_clip_torch==3.3.0",
    "sentence-transformers==6.2.0",
    "transformers==5.24.0",
    "moderngl==5.13.0",
    "gguf==0.19.0",
    "rapidocr-onnxruntime==1.4.4",  # OCR on the views (bundled PP-OCRv4 ONNX models; offline)
    "lxml==6.1.3",  # trimesh's 3MF, XAML, 3DXML and COLLADA (.dae, .zae) loaders for `text3d score`
    "pycollada==0.9.3",
    "watchfiles==1.3.0",  # `text3d score --watch`: re-score a file on each save (already here via uvicorn[standard])
]
PYRENDER = ["pyrender-maintained", "PyOpenGL>=3.1.7"]
# A miner's generation on a Ray cluster (--generation.ray_address); adds packages beside the
# pins above without changing any (checked with `pip check`); also brings uvicorn[standard]
# (uvloop, httptools), which uvicorn then picks by itself.
RAY = ["ray[serve]==2.60.0"]
# The organic gateway's shared store when several gateway processes serve one key table
# (SQLite is the embedded default and needs nothing).
GATEWAY = ["psycopg[binary]==3.3.9"]
# Asset libraries: an embedded on-disk vector store (LanceDB: Arrow-based, no server) and
# indexing on a Ray cluster (Ray Data actor pools, one per GPU).
LIBRARY = ["lancedb==0.40.0", "ray[data]==2.60.0"]
DEV = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "psutil>=5.9",
    "scipy>=1.10",  # cKDTree in codec tests and bench/codec.py (already pulled in by sentence-transformers)
    "ruff==0.17.6",  # pyflakes' rules over the whole tree, run by tests/test_hygiene.py
    "playwright==1.65.2",  # drives Debian's chromium (executable_path) in the browser tests; never downloads a browser
]

setup(
    name="text3d",
    version=VERSION,
    description=__doc__,
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",  # tomllib and asyncio.timeout
    # Two top-level import names only: the package, and the template's thin entry points.
    packages=find_packages(include=["text3d", "text3d.*", "neurons"]),
    package_data={"text3d.validator": ["data/*.txt"], "text3d.ops.llava": ["*.sh"], "text3d.gateway": ["static/*"]},
    cmdclass={"build_py": BuildPy},
    install_requires=CORE,
    extras_require={
        "miner": MINER,
        "validator": VALIDATOR,
        "pyrender": PYRENDER,
        "ray": RAY,
        "gateway": GATEWAY,
        "library": LIBRARY,
        "dev": sorted(set(MINER + VALIDATOR + PYRENDER + RAY + GATEWAY + LIBRARY + DEV)),
    },
    entry_points={"console_scripts": ["text3d=text3d.cli.main:main"]},
)
