"""``text3d request``: ask a gateway for an asset and save it, for scripts and terminals.

    text3d request "a red chair" -o chair.glb --gateway http://127.0.0.1:8095 --key t3d_...
    TEXT3D_GATEWAY_URL=... TEXT3D_GATEWAY_KEY=... text3d request "a blue vase" -o vase.ply --seed 7

The format follows the output's extension (.glb, .ply, .drc) unless --format says otherwise.
Progress goes to stderr (a spinner on a terminal, one line per change otherwise); stdout gets
the saved path, or the job's JSON with --json. Exit status: 0 saved, 1 the job failed or the
gateway could not be reached or refused (its reason is printed), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from text3d.common.argparsing import plain

__all__ = ["add_parser", "run"]

_FORMATS = {".glb": "glb", ".ply": "ply", ".drc": "draco", ".draco": "draco"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("request", help="ask a gateway for an asset and save the mesh",
                                   description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", help="what to make, e.g. 'a red wooden chair'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to save the mesh (.glb, .ply, .drc)")
    parser.add_argument("--gateway", default=os.environ.get("TEXT3D_GATEWAY_URL"),
                        help="the gateway's address (env TEXT3D_GATEWAY_URL)")
    parser.add_argument("--key", default=os.environ.get("TEXT3D_GATEWAY_KEY"), help="API key (env TEXT3D_GATEWAY_KEY)")
    parser.add_argument("--seed", type=int, default=None, help="for reproducible results")
    parser.add_argument("--format", choices=("glb", "ply", "draco"), default=None,
                        help="mesh format (default: from the output's extension, else glb)")
    parser.add_argument("--views", type=Path, default=None, help="also save the scored views (PNG) in this folder")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="give up waiting after this long")
    parser.add_argument("--json", action="store_true", help="print the finished job's JSON on stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from text3d.gateway.client import GatewayClient, GatewayRefused, GatewayUnreachable, JobFailed, JobTimedOut

    if not args.gateway:
        print("text3d request: say which gateway: --gateway URL (or TEXT3D_GATEWAY_URL)", file=sys.stderr)
        return 2
    fmt = args.format or _FORMATS.get(args.output.suffix.lower(), "glb")
    console = Console(stderr=True)

    def progress(job: dict) -> None:
        text = job["status"]
        if job["status"] == "queued":
            text += f" ({job.get('queue_position') or 0} ahead)"
        if job.get("attempts", 0) > 1:
            text += f", attempt {job['attempts']}"
        if job.get("note"):
            text += f": {job['note']}"
        if console.is_terminal:
            status.update(f"[bold]{job['id'][:8]}[/] {text}")
        else:
            console.print(f"{job['id'][:8]} {text}", markup=False, highlight=False)

    try:
        with GatewayClient(args.gateway, args.key) as gateway:
            job = gateway.submit(args.prompt, seed=args.seed, format=fmt)
            with console.status(f"{job['id'][:8]} queued") as status:
                done = gateway.wait(job["id"], timeout_s=args.timeout_s, on_status=progress)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_bytes(gateway.mesh(done["id"]))
            if args.views is not None:
                args.views.mkdir(parents=True, exist_ok=True)
                for i in range(len(done["links"]["views"])):
                    (args.views / f"view_{i}.png").write_bytes(gateway.view(done["id"], i))
    except (GatewayRefused, GatewayUnreachable, JobFailed, JobTimedOut) as exc:
        print(f"text3d request: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"text3d request: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    console.print(f"score {done['score']:.3f}, {len(done['links']['views'])} views; saved {args.output}",
                  markup=False, highlight=False)
    print(json.dumps(done) if args.json else args.output)
    return 0
