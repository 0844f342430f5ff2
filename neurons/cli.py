"""The ``text3d`` command line: one entry point, one module per subcommand.

Subcommand modules live in ``neurons/commands/`` and expose ``add_parser(subparsers)``
and ``run(args) -> int``. They keep heavy imports (torch, bittensor) inside ``run`` so
that ``text3d --help`` and ``text3d score`` stay fast and never touch the chain.
"""

import argparse
import importlib
import sys
from typing import Sequence

from protocol.version import SPEC_VERSION, __version__

# name -> module; order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "miner": "neurons.commands.miner",
    "generation-server": "neurons.commands.generation_server",
    "validator": "neurons.commands.validator",
    "register": "neurons.commands.register",
    "doctor": "neurons.commands.doctor",
    "generate": "neurons.commands.generate",
    "render": "neurons.commands.render",
    "score": "neurons.commands.score",
    "llava": "neurons.commands.llava",
    "devnet": "neurons.commands.devnet",
    "demo": "neurons.commands.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="text3d", description="text3d: a Bittensor subnet for text-to-3D.")
    parser.add_argument("--version", action="version", version=f"text3d {__version__} (spec_version {SPEC_VERSION})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # subcommand not shipped in this build
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
