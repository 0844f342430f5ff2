"""``text3d miner ...``: run the miner neuron (the same flags as ``python -m neurons.miner``)."""

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "miner", help="run a miner: serve POST /v1/text3d with Shap-E", add_help=False, prefix_chars="\0"
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from neurons.miner import main

    return main(args.argv)
