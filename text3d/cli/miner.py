"""``text3d miner ...``: run the miner neuron (the same flags as ``python -m neurons.miner``);
``text3d miner status ...``: the miner's standing on chain and what its logs say (``text3d.cli.miner_status``)."""

import argparse

from text3d.cli.passthrough import passthrough

__all__ = ["add_parser", "run"]

HELP = "run a miner: serve POST /v1/text3d with Shap-E (`text3d miner status`: its standing, its recent answers)"
_, _run_neuron = passthrough("miner", HELP, "neurons.miner")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("miner", help=HELP, add_help=False, prefix_chars="\0")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.argv[:1] == ["status"]:
        from text3d.cli.miner_status import main

        return main(args.argv[1:])
    return _run_neuron(args)
