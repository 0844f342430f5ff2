#!/usr/bin/env python3
"""Measure what a text3d miner and validator cost on this machine's GPU, offline, in minutes.

This file is the bundle's entry point (``bench/gpu_bundle.py`` copies it to ``DIR/run.py``)::

    python3 DIR/run.py --results OUT [--llava]     # on the GPU machine (about 7 minutes)
    python3 DIR/run.py --results OUT --smoke       # the same code path, tiny models, on a CPU
    python3 DIR/run.py --table OUT/gpu_bench.json  # the markdown table of a run

It needs only the standard library and pip to start; everything else the bundle carries
(docs/gpu-bundle.md). Nothing is installed outside ``DIR/work`` (or ``--work``).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))

from bench.gpu.orchestrate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(bundle_root=ROOT))
