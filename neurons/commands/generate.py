"""``text3d generate "a red chair" -o chair.glb``: one prompt -> one coloured mesh file.

Runs the miner's generator (Shap-E through diffusers) locally and writes the mesh with
the wire codec, so the file is exactly what a miner would send. ``--model tiny`` uses
the random-weight offline pipeline (junk shapes, real files) for trying things out
without the 2.7 GB download.
"""

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_parser", "run"]

_EXTENSIONS = {".ply": "ply", ".glb": "glb", ".drc": "draco", ".draco": "draco"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help="generate a coloured mesh from a text prompt with Shap-E",
        description="Generate a mesh from a prompt with Shap-E and write it as PLY, GLB or Draco.",
    )
    parser.add_argument("prompt", help='what to make, e.g. "a red chair"')
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.ply, .glb, .drc)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--steps", type=int, default=64, help="prior denoising steps (default: 64, Shap-E's reference)")
    parser.add_argument("--guidance", type=float, default=15.0, help="classifier-free guidance scale (default: 15)")
    parser.add_argument("--grid-size", type=int, default=128, help="marching-cubes grid per axis (default: 128)")
    parser.add_argument(
        "--model", default="openai/shap-e", help="hub id, local folder, or 'tiny' for the offline test model (default: openai/shap-e)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument(
        "--format", choices=("ply", "glb", "draco"), default=None, help="file format (default: from the file extension)"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    fmt = args.format or _EXTENSIONS.get(args.output.suffix.lower())
    if fmt is None:
        return _fail(f"cannot tell the format from {args.output.name!r}: use .ply, .glb or .drc, or pass --format.")

    if not 0 <= args.seed < 2**64:
        return _fail(f"--seed must be between 0 and 2**64 - 1, got {args.seed}.")

    from pydantic import ValidationError

    from generation import GenerationConfig, GenerationError, ShapEGenerator
    from protocol.mesh_codec import encode_mesh

    try:
        config = GenerationConfig(
            model=args.model,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            grid_size=args.grid_size,
            device=args.device,
            max_batch_size=1,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        return _fail(f"invalid {'.'.join(map(str, first['loc'])) or 'setting'}: {message}.")
    started = time.perf_counter()
    try:
        generator = ShapEGenerator.from_pretrained(config=config)
        mesh = generator.generate([args.prompt], [args.seed])[0]
        data = encode_mesh(mesh, fmt)
    except GenerationError as exc:
        return _fail(str(exc))
    except ValueError as exc:  # a mesh the codec refuses
        return _fail(f"cannot encode the mesh as {fmt}: {exc}.")
    except RuntimeError as exc:  # e.g. CUDA requested but unusable, out of memory
        return _fail(f"generation failed on {config.device}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}.")
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(data)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}.")
    print(
        f"wrote {args.output} ({fmt}, {len(data):,} bytes, {len(mesh.vertices):,} vertices, {len(mesh.faces):,} faces) "
        f"from {args.model} in {time.perf_counter() - started:.1f} s on {generator.device}"
    )
    return 0


def _fail(message: str) -> int:
    print(f"text3d generate: {message}", file=sys.stderr)
    return 1
