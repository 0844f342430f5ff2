"""``text3d render MESH -o DIR``: render a mesh file from the validators' camera rig.

Shows what a validator sees (and captions and scores) for a mesh: the file is loaded
as ``text3d score`` loads it (any format trimesh reads, with textures and material
colours, ``text3d.reward.assets.loader``), then rendered with the canonical rig into ``view_00.png``
... in DIR, through the same drawing path as the validator's. The views are written
without following links planted in DIR.
"""

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "render",
        help="render a mesh file (GLB, glTF, OBJ, PLY, STL, OFF, Draco, ...) from the validators' camera rig into PNGs",
        description="Render a mesh the way validators do: N views around it, one PNG each.",
    )
    parser.add_argument("mesh", type=Path, help="mesh file in any format `text3d score` reads")
    parser.add_argument("-o", "--output", type=Path, default=Path("views"), help="output folder (default: views)")
    parser.add_argument("--views", type=int, default=8, help="number of views around the mesh (default: 8)")
    parser.add_argument("--resolution", type=int, default=512, help="image size in pixels (default: 512)")
    parser.add_argument("--backend", choices=("moderngl", "pyrender"), default="moderngl", help="renderer (default: moderngl)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import io

    from text3d.reward.assets.loader import load_asset
    from text3d.reward.errors import InvalidAssetError
    from text3d.reward.render.views import RendererUnavailable, get_renderer
    from text3d.reward.reporting.terminal import terminal_safe
    from text3d.reward.assets.safe_fs import write_inside

    from text3d.protocol.errors import EXIT_CONFIG

    if args.views < 1:
        return _fail(f"--views must be at least 1, got {args.views}.", EXIT_CONFIG)
    if not 8 <= args.resolution <= 4096:
        return _fail(f"--resolution must be between 8 and 4096 pixels, got {args.resolution}.", EXIT_CONFIG)
    try:
        asset = load_asset(args.mesh, args.mesh.parent)
        renderer = get_renderer(args.backend)
        images = renderer.render(asset.mesh, args.views, args.resolution)
    except InvalidAssetError as exc:
        return _fail(f"{args.mesh} is not a renderable mesh: {exc}")
    except RendererUnavailable as exc:
        return _fail(str(exc))
    try:
        paths = []
        for i, image in enumerate(images):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            paths.append(write_inside(args.output, f"view_{i:02d}.png", buffer.getvalue()))
    except OSError as exc:
        return _fail(f"cannot write to {args.output}: {exc.strerror or exc}.")
    print(terminal_safe(
        f"wrote {len(paths)} views of {args.mesh} ({asset.n_faces} faces, {asset.colours}, {args.resolution} px, "
        f"{args.backend} on {renderer.gl_renderer}) to {paths[0]} .. {paths[-1].name}"
    ))
    for note in asset.notes:
        print(terminal_safe(f"note: {note}"))
    return 0


def _fail(message: str, status: int = 1) -> int:
    """Print the one sentence; ``status``: 78 (EXIT_CONFIG) for a setting to change, 1 for a failure."""
    from text3d.reward.reporting.terminal import terminal_safe

    print(terminal_safe(f"text3d render: {message}"), file=sys.stderr)
    return status
