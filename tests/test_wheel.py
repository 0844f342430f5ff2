"""The package as users install it: a wheel built from this source, installed into a bare folder
and run from outside the checkout.

Rules pinned here:
- the wheel's top-level import names are exactly ``text3d`` and ``neurons`` (a generic
  ``protocol`` or ``reward`` would shadow, or be shadowed by, another package);
- it carries what the code reads from beside itself: the LLaVA build script, the validator's
  prompt and word lists, and the repository's ``min_compute.yml`` (copied in by ``setup.py``'s
  ``BuildPy``; ``text3d doctor`` reads it from there);
- installed with ``pip install --no-deps --target T`` and run with ``PYTHONPATH=T`` from a
  folder outside the checkout, ``python -m text3d miner --help``, ``python -m text3d validator
  --help`` and ``python -m neurons.miner --help`` work, and every module comes from ``T``.

The build runs on a copy of the source (a build writes ``build/`` and ``*.egg-info`` beside
``setup.py``), without build isolation: the project's venv already has setuptools, and the
test needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration

DATA = {f"text3d/validator/data/{name}.txt" for name in ("prompts", "objects", "colours", "materials", "styles",
                                                          "attributes")}  # fmt: skip
DATA |= {f"text3d/gateway/static/{name}" for name in ("index.html", "gateway.js", "gateway.css")}  # the gateway's page


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "out"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(work / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = (work / "dist").glob("text3d-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site") / "T"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def test_the_wheel_holds_two_import_names_and_the_files_the_code_reads(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"text3d", "neurons"}
    assert {"text3d/ops/llava/build_llama_server.sh", "text3d/ops/doctor/min_compute.yml"} | DATA <= set(names)
    packaged = zipfile.ZipFile(wheel).read("text3d/ops/doctor/min_compute.yml")
    assert packaged == (REPO / "min_compute.yml").read_bytes()
    mode = zipfile.ZipFile(wheel).getinfo("text3d/ops/llava/build_llama_server.sh").external_attr >> 16
    assert mode & 0o111, "the build script must stay executable"


def run_installed(installed: Path, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """``python ARGV`` with only the installed copy importable, from a folder outside the checkout."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(installed), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, *argv], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, says", [
    (["-m", "text3d", "miner", "--help"], "usage: text3d miner"),
    (["-m", "text3d", "validator", "--help"], "usage: text3d validator"),
    (["-m", "neurons.miner", "--help"], "usage: text3d miner"),
])  # fmt: skip
def test_the_installed_commands_run_from_outside_the_checkout(installed, tmp_path, argv, says):
    done = run_installed(installed, tmp_path, *argv)
    assert done.returncode == 0 and done.stdout.startswith(says), done.stderr[-2000:]
    assert "--subtensor.network" in done.stdout


def test_everything_is_imported_from_the_installed_copy(installed, tmp_path):
    probe = (
        "import sys, text3d, neurons.miner, text3d.cli.main, text3d.miner.main, text3d.validator.main\n"
        "from text3d.ops.doctor.machine import min_compute_path\n"
        "from text3d.ops.llava.binary import BUILD_SCRIPT\n"
        "from text3d.validator.prompts import DEFAULT_PROMPTS_PATH\n"
        "mods = [m.__file__ for n, m in sorted(sys.modules.items()) if n.split('.')[0] in ('text3d', 'neurons')]\n"
        "print('\\n'.join(mods + [str(min_compute_path()), str(BUILD_SCRIPT), str(DEFAULT_PROMPTS_PATH)]))\n"
    )
    done = run_installed(installed, tmp_path, "-c", probe)
    assert done.returncode == 0, done.stderr[-2000:]
    paths = [Path(line) for line in done.stdout.split()]
    assert len(paths) > 10
    outside = [str(p) for p in paths if not p.resolve().is_relative_to(installed.resolve())]
    assert outside == []  # not the checkout, not the editable install
    assert all(p.is_file() for p in paths[-3:])  # min_compute.yml, the build script, the prompt list
