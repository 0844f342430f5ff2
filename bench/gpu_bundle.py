"""Build the offline GPU benchmark bundle: ``python bench/gpu_bundle.py --out DIR [--python-version 3.12]``.

The bundle measures what a miner and a validator cost on a GPU machine that has Python, PyTorch
with CUDA and common numeric packages but no network and none of diffusers, open_clip, trimesh,
moderngl, pydantic, rapidocr...: copy DIR there and run ``python3 DIR/run.py --results OUT
[--llava]`` (docs/gpu-bundle.md). Prints what it wrote; the last line is one JSON object.

    python bench/gpu_bundle.py --out .gpubundle                  # for the lent H200 (Python 3.12)
    python bench/gpu_bundle.py --out /tmp/b --python-version 3.11 # wheels for this machine (the smoke test)
    python bench/gpu_bundle.py --out /tmp/b --no-llama           # without the llama.cpp source (4 MB less)
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu.bundle import DEFAULT_MAX_BYTES, BuildError, build_bundle  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the bundle folder (replaced if it is a bundle)")
    parser.add_argument("--python-version", default="3.12", help="the target's Python (default: 3.12)")
    parser.add_argument("--cache", type=Path, help="download cache (default: $TEXT3D_CACHE/gpu-bundle)")
    parser.add_argument("--no-llama", action="store_true", help="leave out the llama.cpp source (no --llava there)")
    parser.add_argument("--no-debs", action="store_true", help="leave out the GL loader packages")
    parser.add_argument("--max-mib", type=float, default=DEFAULT_MAX_BYTES / 2**20,
                        help="fail when the bundle is larger (default: 58)")
    args = parser.parse_args()
    try:
        built = build_bundle(args.out, python_version=args.python_version, cache=args.cache, llama=not args.no_llama,
                             debs=not args.no_debs, max_bytes=int(args.max_mib * 2**20))
    except BuildError as exc:
        print(f"gpu_bundle: {exc}", file=sys.stderr)
        print(json.dumps({"bench": "gpu_bundle_build", "ok": False, "error": str(exc)}))
        print(f"FAILED: {str(exc).splitlines()[0]}")
        return 1
    print(f"wrote {built['out']}: {built['mib']} MiB in {built['files']} files "
          f"({', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in built['bytes_by_kind'].items())})", file=sys.stderr)
    print(f"run it there with: python3 {built['out']}/run.py --results OUT [--llava]", file=sys.stderr)
    print(json.dumps({"bench": "gpu_bundle_build", "ok": True, **built}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
