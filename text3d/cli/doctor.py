"""``text3d doctor [--role miner|validator] [NEURON FLAGS]``: is this machine ready to run a neuron?

    text3d doctor                                   # the machine: Python, torch/CUDA, GPU, EGL, models, disk
    text3d doctor --role miner --netuid 42 --subtensor.network test --wallet.name m --axon.port 8091
    text3d doctor --role validator --netuid 42 --subtensor.network test --wallet.name v \\
        --captioner http://127.0.0.1:8080

With a role, doctor takes exactly the flags of ``text3d miner`` / ``text3d validator``
(the same settings tree, env vars and ``--config`` file) and checks what that neuron
would meet: the models it loads, the wallet and its registration on the netuid, the axon
port and external address (miner), the captioner describing a rendered canary
(validator), disk space for state and reports, and the clock against a peer's HTTP Date
header (signed requests expire after 10 s). ``--peer URL`` adds a server to compare the
clock with.

One line per check: PASS, WARN or FAIL, and what fixes it. Exit status: 0 when nothing
failed (warnings allowed), 1 when a check failed, 78 for a bad flag value, 2 for an
unknown flag.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from text3d.common.argparsing import plain

__all__ = ["add_parser", "run", "main"]

ROLES = ("miner", "validator")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="check this machine and a neuron's settings (pass/warn/fail)",
                                   add_help=False, prefix_chars="\0")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def _own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="text3d doctor", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    parser.add_argument("-h", "--help", action="store_true", help="show this help (with --role: the neuron's flags too)")
    parser.add_argument("--role", choices=ROLES, default=None, help="check for this neuron (default: the machine only)")
    parser.add_argument("--peer", action="append", default=[], metavar="URL",
                        help="an HTTP server to compare the clock with (repeatable)")
    return parser


def main(argv: Sequence[str]) -> int:
    from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ConfigError

    own = _own_parser()
    try:
        known, rest = own.parse_known_args(list(argv))
    except SystemExit as exc:  # argparse's usage error (an unknown --role value)
        return int(exc.code or EXIT_USAGE)
    from text3d.settings import build_parser, load_settings

    if known.help:
        own.print_help()
        if known.role:
            print(f"\nflags of the {known.role} (checked as the {known.role} would read them):")
            build_parser(known.role, prog=f"text3d doctor --role {known.role}").print_help()
        return EXIT_OK
    role = known.role
    try:
        # Without a role, the flags every neuron shares (--models, --device, --wallet.*, ...) still apply.
        settings = load_settings(role or "validator", rest, prog=f"text3d doctor{f' --role {role}' if role else ''}",
                                 require_netuid=role is not None)
    except SystemExit as exc:
        return int(exc.code or EXIT_USAGE)
    except ConfigError as exc:
        print(f"text3d doctor: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from text3d.ops.doctor.roles import run_checks

    print(f"text3d doctor{f' --role {role}' if role else ' (machine only; add --role miner|validator)'}: "
          f"--models {settings.models}, --device {settings.device}", flush=True)
    results = run_checks(role, settings, models=settings.models, peers=known.peer,
                         emit=lambda check: print(check.line(), flush=True))
    failed = [check for check in results if check.status == "fail"]
    warned = [check for check in results if check.status == "warn"]
    print(f"{len(results)} checks: {len(results) - len(failed) - len(warned)} passed, {len(warned)} warnings, "
          f"{len(failed)} failed")
    return EXIT_FAILURE if failed else EXIT_OK


def run(args: argparse.Namespace) -> int:
    return main(args.argv)
