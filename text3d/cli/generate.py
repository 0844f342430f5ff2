"""``text3d generate "a red chair" -o chair.glb``: one prompt -> one coloured mesh file.

Runs the miner's generator (Shap-E through diffusers) locally and writes the mesh with
the wire codec, so the file is exactly what a miner would send. The flags are the
miner's (``--models``, ``--device``, ``--generation.steps``, ``--generation.guidance``,
``--generation.grid_size``). ``--models tiny`` uses the random-weight offline pipeline
(junk shapes, real files) for trying things out without the 2.7 GB download;
``--model-path`` points ``--models real`` at another hub id or a ``save_pretrained`` folder.

Exit status: 0 written, 78 for a setting to change (a bad value, missing weights, a
device torch cannot use), 1 when generation or writing failed, 2 for a malformed command line.
"""

import argparse
import sys
import time
from pathlib import Path

from text3d.protocol.wire import MAX_SEED

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
    parser.add_argument("--models", choices=("real", "tiny"), default="real",
                        help="real: Shap-E's weights (default); tiny: the offline random-weight test pipeline")
    parser.add_argument("--model-path", default="openai/shap-e", metavar="ID|DIR",
                        help="with --models real: a hub id or a save_pretrained folder (default: openai/shap-e)")
    parser.add_argument("--generation.steps", dest="steps", type=int, default=64, metavar="N",
                        help="prior denoising steps (default: 64, Shap-E's reference)")
    parser.add_argument("--generation.guidance", dest="guidance", type=float, default=15.0, metavar="X",
                        help="classifier-free guidance scale (default: 15)")
    parser.add_argument("--generation.grid_size", dest="grid_size", type=int, default=128, metavar="N",
                        help="marching-cubes grid per axis (default: 128)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument(
        "--format", choices=("ply", "glb", "draco"), default=None, help="file format (default: from the file extension)"
    )
    parser.set_defaults(run=run)
    return parser


_FLAGS = {"num_inference_steps": "--generation.steps", "guidance_scale": "--generation.guidance",
          "grid_size": "--generation.grid_size", "device": "--device", "model": "--model-path"}


def run(args: argparse.Namespace) -> int:
    from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError

    fmt = args.format or _EXTENSIONS.get(args.output.suffix.lower())
    if fmt is None:
        return _fail(f"cannot tell the format from {args.output.name!r}: use .ply, .glb or .drc, or pass --format.",
                     EXIT_CONFIG)

    if not 0 <= args.seed <= MAX_SEED:
        return _fail(f"--seed must be between 0 and {MAX_SEED} (the wire's range), got {args.seed}.", EXIT_CONFIG)

    from pydantic import ValidationError

    from text3d.generation import GenerationConfig, GenerationError, ShapEGenerator
    from text3d.protocol.mesh_codec import encode_mesh
    from text3d.common.device import resolve_device

    model = "tiny" if args.models == "tiny" else args.model_path
    try:
        device = resolve_device(args.device)
        config = GenerationConfig(
            model=model,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            grid_size=args.grid_size,
            device=device,
            max_batch_size=1,
        )
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        field = ".".join(map(str, first["loc"]))
        return _fail(f"{_FLAGS.get(field, field or 'a setting')}: {message}.", EXIT_CONFIG)
    started = time.perf_counter()
    try:
        generator = ShapEGenerator.from_pretrained(config=config)
        mesh = generator.generate([args.prompt], [args.seed])[0]
        data = encode_mesh(mesh, fmt)
    except ConfigError as exc:  # the weights are not there (ModelNotAvailableError): fetch them, or --models tiny
        return _fail(str(exc), EXIT_CONFIG)
    except GenerationError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except ValueError as exc:  # a mesh the codec refuses
        return _fail(f"cannot encode the mesh as {fmt}: {exc}.", EXIT_FAILURE)
    except RuntimeError as exc:  # e.g. out of memory
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _fail(f"generation failed on {config.device}: {reason}.", EXIT_FAILURE)
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(data)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}.", EXIT_FAILURE)
    print(
        f"wrote {args.output} ({fmt}, {len(data):,} bytes, {len(mesh.vertices):,} vertices, {len(mesh.faces):,} faces) "
        f"from {model} in {time.perf_counter() - started:.1f} s on {generator.device}"
    )
    if args.models == "tiny":
        print(TINY_NOTE)
    return EXIT_OK


TINY_NOTE = ("note: --models tiny is Shap-E's architecture with random weights (an offline test pipeline): the mesh is a "
             "random blob whatever the prompt says. Real objects come from --models real (Shap-E's weights, a GPU).")


def _fail(message: str, status: int) -> int:
    print(f"text3d generate: {message}", file=sys.stderr)
    return status
