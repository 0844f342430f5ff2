"""``text3d miner status [--log FILE] [--since-h H] [--json] [MINER FLAGS]``: the miner's own view.

    text3d miner status --netuid 42 --subtensor.network test --wallet.name miner --logging.dir logs
    text3d miner status --netuid 1 --subtensor.network devnet --devnet.db chain.db --wallet.name miner1 \\
        --logging.dir logs --since-h 2

Takes the flags the miner runs with (the same settings tree, env vars and ``--config``):
its uid, stake, incentive and emission come from the chain the flags name; the validators
that asked it, its answers by status and its generation times from its log files
(``--logging.dir``: ``<dir>/<wallet>.log`` and the rotated ones), or the files named with
``--log``. Reads only: it never signs, serves or writes anything.

Exit status: 0, 1 when the chain cannot be read, 78 for a bad flag or a wallet without a
hotkey, 2 for an unknown flag.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from text3d.common.argparsing import plain

__all__ = ["main"]


def _own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="text3d miner status", description=plain(__doc__), add_help=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-h", "--help", action="store_true", help="show this help and the miner's flags")
    parser.add_argument("--log", action="append", type=Path, default=[], metavar="FILE",
                        help="a log file of the miner (repeatable; default: the --logging.dir files)")
    parser.add_argument("--since-h", type=float, default=24.0, metavar="H", help="hours of logs to read (default 24)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


def main(argv: Sequence[str]) -> int:
    from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ConfigError, ValidatorFault

    own = _own_parser()
    try:
        known, rest = own.parse_known_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or EXIT_USAGE)
    from text3d.settings import build_parser, load_settings

    if known.help:
        own.print_help()
        print("\nflags of the miner (read as the miner would read them):")
        build_parser("miner", prog="text3d miner status").print_help()
        return EXIT_OK
    if not 0 < known.since_h <= 24 * 366:
        print("text3d miner status: --since-h must be between 0 and 8784 hours.", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_settings("miner", rest, prog="text3d miner status", require_netuid=True)
    except SystemExit as exc:
        return int(exc.code or EXIT_USAGE)
    except ConfigError as exc:
        print(f"text3d miner status: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    import bittensor

    from text3d.chain.factory import open_chain
    from text3d.miner.status import gather, log_files, read_request_lines, render

    wallet = settings.wallet
    try:
        hotkey = bittensor.Wallet(name=wallet.name, hotkey=wallet.hotkey, path=str(wallet.path)).hotkey.ss58_address
    except Exception as exc:
        print(f"text3d miner status: no readable hotkey {wallet.name}/{wallet.hotkey} under {wallet.path} "
              f"({type(exc).__name__}); pass the miner's --wallet.* flags.", file=sys.stderr)
        return EXIT_CONFIG
    network = settings.subtensor.chain_endpoint or settings.subtensor.network
    try:
        chain = open_chain(settings.subtensor.network, settings.netuid, chain_endpoint=settings.subtensor.chain_endpoint,
                           devnet_db=settings.devnet.db)
        try:
            metagraph = chain.metagraph()
        finally:
            chain.close()
    except ConfigError as exc:
        print(f"text3d miner status: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidatorFault as exc:
        print(f"text3d miner status: cannot read netuid {settings.netuid} on {network}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    paths = list(known.log)
    if not paths and settings.logging.dir is not None:
        paths = log_files(settings.logging.dir, wallet.name)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"text3d miner status: {missing[0]} is not a file.", file=sys.stderr)
        return EXIT_CONFIG
    lines = read_request_lines(paths, since_unix=time.time() - known.since_h * 3600)
    status = gather(metagraph, hotkey, network=network, lines=lines, window_h=known.since_h, log_paths=paths)
    print(json.dumps(status.to_json()) if known.json else render(status))
    return EXIT_OK
