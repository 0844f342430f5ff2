"""Shared pieces of the asset-library tests: the tiny model flags and a CLI runner.

``TINY`` are the flags every library test indexes and scores with (tiny random CLIP, two
views at 64 px: seconds, not minutes, on a shared 2-core machine); ``text3d(*argv)`` runs
the real command line in this process and returns (exit status, stdout, stderr).
"""

import json
from pathlib import Path

from text3d.cli.main import main

__all__ = ["TINY", "text3d", "score_json", "index_rows"]

TINY = ["--models", "tiny", "--views", "2", "--resolution", "64"]


def text3d(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``text3d ARGV`` (the real CLI) and return (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def score_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def index_rows(index: Path, columns=("name", "status", "reason")) -> dict[str, dict]:
    """Every row of an index by name (the columns asked for)."""
    from text3d.library.store import AssetStore

    table = AssetStore.open(index).scan(list(columns)).drop_columns(["_offset"])
    return {row["name"]: row for row in table.to_pylist()}
