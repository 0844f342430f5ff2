"""``text3d validator ...``: run the validator neuron (the same flags as ``python -m neurons.validator``)."""

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validator", help="run a validator: query miners, score their meshes, set weights", add_help=False, prefix_chars="\0"
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from neurons.validator import main

    return main(args.argv)
