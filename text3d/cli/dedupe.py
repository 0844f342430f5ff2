"""``text3d dedupe PATH``: groups of near-duplicate assets in an indexed library.

The validator's copycat rule (``text3d.reward.defences.fingerprint.cluster_copies``) over the
fingerprints the index stored; each group is listed with its members, the first being the
one to keep. See ``text3d.library.dedupe`` and docs/library.md.
"""

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "dedupe",
        help="list groups of near-duplicate assets in an indexed library (the validator's copycat rule)",
        description="Group the assets of a text3d index that the validator's copycat rule calls the same object.",
    )
    parser.add_argument("index", type=Path, metavar="PATH", help="the index folder (text3d index ... --index PATH)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the groups as JSON")
    parser.add_argument("--exhaustive", action="store_true",
                        help="judge every pair, however large the library (default: up to 60 assets; the rule "
                             "aligns two surfaces per pair, ~0.1 s)")
    parser.add_argument("--neighbours", type=int, default=8,
                        help="past 60 assets, judge each with its N nearest by looks and by shape (default: 8)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from text3d.library.dedupe import find_duplicates
    from text3d.library.store import AssetStore, LibraryError
    from text3d.protocol.errors import EXIT_CONFIG
    from text3d.reward.assets.safe_fs import write_inside
    from text3d.reward.reporting.terminal import terminal_safe

    if args.neighbours < 1:
        return _fail("--neighbours must be at least 1.", EXIT_CONFIG)
    try:
        result = find_duplicates(AssetStore.open(args.index), neighbours=args.neighbours, exhaustive=args.exhaustive)
    except LibraryError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    how = "every pair compared" if result.exhaustive else \
        f"{result.pairs_compared} neighbour pairs compared (--exhaustive compares every pair)"
    print(f"{len(result.groups)} groups of near-duplicates among {result.assets} assets ({result.duplicates} copies; "
          f"{how})")
    for number, group in enumerate(result.groups, start=1):
        print(f"group {number} ({len(group.members)} assets):")
        for i, (name, size) in enumerate(zip(group.members, group.sizes)):
            print(f"  {'keep' if i == 0 else 'copy'}  {terminal_safe(name, 160)}  ({size} bytes)")
    if result.skipped:
        print(f"{len(result.skipped)} assets have no fingerprint (indexed by another version: text3d index --rebuild)")
    if args.json is not None:
        document = {"index": str(args.index), "assets": result.assets, "exhaustive": result.exhaustive,
                    "pairs_compared": result.pairs_compared, "copies": result.duplicates,
                    "groups": [{"keep": g.members[0], "members": g.members, "sizes": g.sizes} for g in result.groups],
                    "without_fingerprint": result.skipped}
        try:
            write_inside(args.json.parent, args.json.name, json.dumps(document, indent=1))
        except OSError as exc:
            return _fail(f"cannot write {args.json}: {exc.strerror or exc}.")
        print(f"JSON: {terminal_safe(args.json)}")
    return 0


def _fail(message: str, status: int = 1) -> int:
    from text3d.reward.reporting.terminal import terminal_safe

    print(f"text3d dedupe: {terminal_safe(message)}", file=sys.stderr)
    return status
