"""The ``text3d`` command line: one entry point, one module per subcommand.

Subcommand modules live beside this one (``text3d/cli/``) and expose ``add_parser(subparsers)``
and ``run(args) -> int``. They keep heavy imports (torch, bittensor) inside ``run`` so
that ``text3d --help`` and ``text3d score`` stay fast and never touch the chain.
"""

import argparse
import importlib
import sys
from typing import Sequence

from text3d.common.argparsing import CommandParser
from text3d.protocol.version import SPEC_VERSION, __version__

# name -> module; order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "miner": "text3d.cli.miner",
    "generation-server": "text3d.cli.generation_server",
    "validator": "text3d.cli.validator",
    "register": "text3d.cli.register",
    "doctor": "text3d.cli.doctor",
    "generate": "text3d.cli.generate",
    "render": "text3d.cli.render",
    "score": "text3d.cli.score",
    "index": "text3d.cli.index",
    "search": "text3d.cli.search",
    "dedupe": "text3d.cli.dedupe",
    "llava": "text3d.cli.llava",
    "devnet": "text3d.cli.devnet",
    "demo": "text3d.cli.demo",
    "gateway": "text3d.cli.gateway",
    "request": "text3d.cli.request",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``text3d`` parser; every subcommand's parser refuses unknown flags with its own short usage."""
    parser = CommandParser(prog="text3d", description="text3d: a Bittensor subnet for text-to-3D.")
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
