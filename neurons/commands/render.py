"""``text3d render MESH -o DIR``: render a mesh file from the validators' camera rig.

Shows exactly what a validator sees (and captions and scores) for a mesh: the file
is decoded with the wire codec's checks, then rendered with the canonical rig into
``view_00.png`` ... in DIR.
"""

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "render",
        help="render a mesh file (PLY, GLB, Draco) from the validators' camera rig into PNGs",
        description="Render a mesh the way validators do: N views around it, one PNG each.",
    )
    parser.add_argument("mesh", type=Path, help="mesh file: PLY, GLB or Draco, with vertex colours")
    parser.add_argument("-o", "--output", type=Path, default=Path("views"), help="output folder (default: views)")
    parser.add_argument("--views", type=int, default=8, help="number of views around the mesh (default: 8)")
    parser.add_argument("--resolution", type=int, default=512, help="image size in pixels (default: 512)")
    parser.add_argument("--backend", choices=("moderngl", "pyrender"), default="moderngl", help="renderer (default: moderngl)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from protocol.limits import MeshDecodeError
    from protocol.mesh_codec import decode_mesh
    from reward.errors import InvalidAssetError
    from reward.render import RendererUnavailable, get_renderer

    if args.views < 1:
        return _fail(f"--views must be at least 1, got {args.views}.")
    if not 8 <= args.resolution <= 4096:
        return _fail(f"--resolution must be between 8 and 4096 pixels, got {args.resolution}.")
    try:
        data = args.mesh.read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {args.mesh}: {exc.strerror or exc}.")
    try:
        mesh = decode_mesh(data)
        renderer = get_renderer(args.backend)
        images = renderer.render(mesh, args.views, args.resolution)
    except (MeshDecodeError, InvalidAssetError) as exc:
        return _fail(f"{args.mesh} is not a renderable mesh: {exc}")
    except RendererUnavailable as exc:
        return _fail(str(exc))
    try:
        args.output.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, image in enumerate(images):
            path = args.output / f"view_{i:02d}.png"
            image.save(path)
            paths.append(path)
    except OSError as exc:
        return _fail(f"cannot write to {args.output}: {exc.strerror or exc}.")
    print(
        f"wrote {len(paths)} views of {args.mesh} ({len(mesh.faces)} faces, {args.resolution} px, "
        f"{args.backend} on {renderer.gl_renderer}) to {paths[0]} .. {paths[-1].name}"
    )
    return 0


def _fail(message: str) -> int:
    print(f"text3d render: {message}", file=sys.stderr)
    return 1
