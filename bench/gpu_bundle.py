"""Build the offline GPU benchmark bundle: ``python bench/gpu_bundle.py --out DIR [--python-version 3.12]``.

The bundle measures what a miner and a validator cost on a GPU machine that has Python, PyTorch
with CUDA and common numeric packages but no network and none of diffusers, open_clip, trimesh,
moderngl, pydantic, rapidocr...: copy DIR there and run ``python3 DIR/run.py --results OUT
[--llava]`` (docs/gpu-bundle.md). Prints what it wrote; the last line is one JSON object.

    python bench/gpu_bundle.py --out .gpubundle                  # for the lent H200 (Python 3.12)
    python bench/gpu_bundle.py --out /tmp/b --python-version 3.11 # wheels for another Python
    python bench/gpu_bundle.py --out /tmp/b --no-llama           # without the llama.cpp source (4 MB less)
    python bench/gpu_bundle.py --smoke                           # build for this Python, run its --smoke
    python bench/gpu_bundle.py                                   # the same as --smoke

``--smoke`` builds the bundle for this interpreter (in a temporary folder unless ``--out``), runs
``run.py --smoke --install all --gl private`` from it on this CPU with the tiny models (every
carried wheel installed privately, the carried EGL loader; with ``--llava`` on the tiny LLaVA pair
when a ``llama-server`` is at hand: ``$LLAMA_SERVER``, PATH or the project's cached build) and
prints that run's JSON line last; it exits non-zero, with the reason on its last line, when the
build or any required part faults. Results and logs: ``OUT/smoke-results``, ``OUT/work``.
Argument parsing is argparse (a bench script, like the others under bench/).

``make bench`` does not run it (``SUITE_RUNS = []``): its figures come from a GPU machine
(docs/gpu-runs/), and the bundle's JSON line is its own (docs/gpu-bundle.md), not the harness's.
Its smoke test is ``SMOKE_TEST`` below (bench/README.md).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu.bundle import DEFAULT_MAX_BYTES, BuildError, build_bundle  # noqa: E402

SUITE_RUNS: list[list[str]] = []  # measured on a GPU machine, not by make bench
SMOKE_TEST = ("tests/test_gpu_bundle.py::"
              "test_smoke_run_installs_privately_and_measures_every_part_with_the_software_renderer_marked")


def _smoke(out: Path) -> int:
    """Run the built bundle's smoke mode with this interpreter; its output is this script's."""
    from text3d.ops.llava import LlavaSetupError, find_llama_server

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = [sys.executable, str(out / "run.py"), "--smoke", "--results", str(out / "smoke-results"),
            "--install", "all", "--gl", "private"]
    try:
        argv += ["--llava", "--llama-server", str(find_llama_server(build=False))]
    except LlavaSetupError as exc:
        print(f"gpu_bundle --smoke: no captions ({exc})", file=sys.stderr)
    return subprocess.run(argv, env=env, timeout=1800).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the bundle folder (replaced if it is a bundle); without it, "
                        "--smoke in a temporary folder")
    parser.add_argument("--python-version", default=None, help="the target's Python (default: 3.12; this "
                        "interpreter's with --smoke)")
    parser.add_argument("--cache", type=Path, help="download cache (default: $TEXT3D_CACHE/gpu-bundle)")
    parser.add_argument("--no-llama", action="store_true", help="leave out the llama.cpp source (no --llava there)")
    parser.add_argument("--no-debs", action="store_true", help="leave out the GL loader packages")
    parser.add_argument("--max-mib", type=float, default=DEFAULT_MAX_BYTES / 2**20,
                        help="fail when the bundle is larger (default: 58)")
    parser.add_argument("--smoke", action="store_true", help="build for this Python and run the bundle's smoke mode")
    args = parser.parse_args()
    args.smoke = args.smoke or args.out is None  # nothing to keep: check that a bundle builds and runs
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    python_version = args.python_version or (here if args.smoke else "3.12")
    if args.smoke and python_version != here:
        parser.error(f"--smoke runs the bundle with this Python ({here}): drop --python-version {python_version}")
    scratch = tempfile.TemporaryDirectory(prefix="gpu-bundle-") if args.out is None else None
    out = args.out if args.out is not None else Path(scratch.name) / "bundle"
    try:
        try:
            built = build_bundle(out, python_version=python_version, cache=args.cache, llama=not args.no_llama,
                                 debs=not args.no_debs, max_bytes=int(args.max_mib * 2**20))
        except BuildError as exc:
            print(f"gpu_bundle: {exc}", file=sys.stderr)
            print(json.dumps({"bench": "gpu_bundle_build", "ok": False, "error": str(exc)}))
            print(f"FAILED: {str(exc).splitlines()[0]}")
            return 1
        print(f"wrote {built['out']}: {built['mib']} MiB in {built['files']} files "
              f"({', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in built['bytes_by_kind'].items())})", file=sys.stderr)
        if args.smoke:
            return _smoke(out)
        print(f"run it there with: python3 {built['out']}/run.py --results OUT [--llava]", file=sys.stderr)
        print(json.dumps({"bench": "gpu_bundle_build", "ok": True, **built}))
        return 0
    finally:
        if scratch is not None:
            scratch.cleanup()


if __name__ == "__main__":
    sys.exit(main())
