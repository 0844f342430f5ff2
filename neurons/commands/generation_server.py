"""``text3d generation-server ...``: one generator behind HTTP on one device, for miners' generation pools."""

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generation-server",
        help="serve one generator over HTTP on one device (a miner's --generation.endpoints)",
        add_help=False,
        prefix_chars="\0",
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from neurons.generation_server import main

    return main(args.argv)
