"""Entry point: ``python -m neurons.miner ...`` runs the miner (``text3d.miner.main``)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python neurons/miner.py` from a checkout: make text3d importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from text3d.miner.main import main

if __name__ == "__main__":
    sys.exit(main())
