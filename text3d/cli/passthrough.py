"""Subcommands that hand their whole command line to a neuron's own ``main(argv)``.

``text3d miner ...`` is ``python -m neurons.miner ...``: the neuron parses its flags itself
(generated from the settings tree), so the CLI adds no flags of its own and ``--help``
reaches the neuron's parser.
"""

import argparse
import importlib
from typing import Callable

__all__ = ["passthrough"]


def passthrough(name: str, help_text: str, module: str) -> tuple[Callable, Callable]:
    """``(add_parser, run)`` for a subcommand ``name`` that runs ``module.main(argv)``."""

    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(module).main(args.argv)

    def add_parser(subparsers: argparse._SubParsersAction) -> None:
        parser = subparsers.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
        parser.add_argument("argv", nargs=argparse.REMAINDER)
        parser.set_defaults(run=run)

    return add_parser, run
